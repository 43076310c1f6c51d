import * as v from "valibot";
import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import { defineRequest, Endpoint, natsTransport, object } from "../mod.ts";
import { connectWs } from "./helpers/connect.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const Quote = defineRequest({
  subject: "load.quote",
  request: v.object({ i: v.number() }),
  response: object(v.object({ i: v.number(), by: v.number() })),
});

Deno.test("load - 10,000 concurrent requests over a queue group of 3 responders all settle correctly", async () => {
  await using server = await startNatsServer();
  const connections = await Promise.all([0, 1, 2, 3].map(() => connectWs(server)));
  try {
    const [callerNc, ...responderNcs] = connections;
    const responders = responderNcs.map((nc) => new Endpoint(natsTransport(nc)));
    const served = [0, 0, 0];
    responders.forEach((r, by) => r.handle(Quote, ({ i }) => (served[by]!++, { i, by })));
    await Promise.all(responderNcs.map((nc) => nc.flush()));
    await using caller = new Endpoint(natsTransport(callerNc!), {
      maxPending: 10_000,
      timeout: 60_000,
    });
    let late = 0;
    caller.addEventListener("late-reply", () => late++);
    const replies = await Promise.all(
      Array.from({ length: 10_000 }, (_, i) => caller.request(Quote, { i })),
    );
    replies.forEach((reply, i) => assertEquals(reply.i, i));
    assertEquals(served.reduce((a, b) => a + b), 10_000);
    assert(served.every((n) => n > 0), `every responder served some: ${served}`);
    assertEquals(late, 0);
    assertStrictEquals(caller.pending, 0);
    for (const r of responders) await r.close();
  } finally {
    for (const nc of connections) await nc.close();
  }
});

Deno.test("load - a bounded soak returns the heap to its baseline", async () => {
  // Runs bench/soak.ts in its own process with --expose-gc; SOAK_SECONDS / SOAK_REQUESTS bound it.
  const seconds = Deno.env.get("SOAK_SECONDS") ?? "8";
  const requests = Deno.env.get("SOAK_REQUESTS") ?? "1000000";
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--v8-flags=--expose-gc",
      new URL("../bench/soak.ts", import.meta.url).pathname,
      "--seconds",
      seconds,
      "--requests",
      requests,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(stdout);
  assertEquals(code, 0, new TextDecoder().decode(stderr) + out);
  const result = JSON.parse(out.trim().split("\n").at(-1)!);
  console.log(
    `soak: ${result.requests} requests in ${result.seconds.toFixed(1)} s; heap ` +
      `${(result.baseline / 2 ** 20).toFixed(1)} MiB before, ${
        (result.peak / 2 ** 20).toFixed(1)
      } MiB peak, ` +
      `${(result.after / 2 ** 20).toFixed(1)} MiB after; ${result.timeouts} timeouts, ` +
      `${result.aborts} aborts`,
  );
  assert(result.requests > 1000, `only ${result.requests} requests`);
  assertEquals(result.pending, 0);
  assertEquals(result.errors, 0);
  // One in 20 timed out and one in 20 was aborted, each with its own error.
  assertEquals(result.timeouts, Math.floor(result.requests / 20));
  assertEquals(result.aborts, Math.floor((result.requests + 10) / 20));
  // Back to baseline: within 5 MiB of it once everything settled and GC ran.
  assert(result.after - result.baseline < 5 * 2 ** 20, JSON.stringify(result));
});
