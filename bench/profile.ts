/**
 * CPU profile of the request path at 1000 in flight over NATS: the caller
 * (library `endpoint.request` with an object contract, or raw nats.ws
 * `nc.request` + `JSON.parse`) runs in this process under V8's sampling
 * profiler (`node:inspector`); the responder (plain nats.ws answering in the
 * library's wire format) runs in a subprocess so it stays out of the profile.
 *
 *     deno run -A bench/profile.ts [--mode library|raw|raw-notraces] [--seconds 10] [--out file.cpuprofile]
 *
 * Prints the top 15 functions by self time.
 *
 * @module
 */

import { Session } from "node:inspector/promises";
import { headers as natsHeaders } from "nats.ws";
import { Endpoint, KIND_HEADER, natsTransport } from "../mod.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { BODY, connectBench, decoder, encoder, ORDER, PlaceOrder, SUBJECT } from "./lib.ts";
import { type CpuProfile, topTable } from "./cpuprofile_top.ts";

const flag = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 && Deno.args[i + 1] !== undefined ? Deno.args[i + 1]! : fallback;
};

async function responder(url: string): Promise<void> {
  const nc = await connectBench(url);
  const h = natsHeaders();
  h.set(KIND_HEADER, "object");
  const reply = encoder.encode(JSON.stringify(ORDER));
  nc.subscribe(SUBJECT.object, { callback: (_e, m) => m.respond(reply, { headers: h }) });
  await nc.flush();
  console.log("ready");
  await nc.closed();
}

async function main(): Promise<void> {
  const mode = flag("--mode", "library");
  const seconds = Number(flag("--seconds", "10"));
  const out = flag("--out", `/tmp/callbacks-${mode}.cpuprofile`);
  await using server = await startNatsServer();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--responder", server.wsUrl],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (!(await reader.read()).value?.includes("ready"));
  await reader.cancel();

  const nc = await connectBench(server.wsUrl, undefined, {
    noAsyncTraces: mode === "raw-notraces",
  });
  const endpoint = new Endpoint(natsTransport(nc), { maxPending: 10_000 });
  const data = () => encoder.encode(JSON.stringify(BODY));
  const send = mode.startsWith("raw")
    ? async () =>
      JSON.parse(
        decoder.decode((await nc.request(SUBJECT.object, data(), { timeout: 30_000 })).data),
      )
    : () => endpoint.request(PlaceOrder, BODY);
  const window = async (ms: number) => {
    let ops = 0;
    const end = performance.now() + ms;
    const worker = async () => {
      while (performance.now() < end) {
        await send();
        ops++;
      }
    };
    await Promise.all(Array.from({ length: 1000 }, worker));
    return ops;
  };
  await window(2_000); // warm up

  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  const t = performance.now();
  const ops = await window(seconds * 1000);
  const elapsed = performance.now() - t;
  const { profile } = await session.post("Profiler.stop") as { profile: CpuProfile };
  session.disconnect();
  await Deno.writeTextFile(out, JSON.stringify(profile));
  console.log(
    `${mode}: ${ops} requests in ${(elapsed / 1000).toFixed(1)} s = ${
      Math.round(ops / elapsed * 1000)
    } req/s at 1000 in flight (profiled); profile in ${out}\n`,
  );
  console.log(topTable(profile, 15));

  await endpoint.close();
  await nc.close();
  await server.stop();
  await child.status;
}

if (import.meta.main) {
  if (Deno.args[0] === "--responder") await responder(Deno.args[1]!);
  else await main();
}
