/**
 * What a durable endpoint costs: the same object request through a plain
 * endpoint (`natsTransport`) and a durable one (`durableTransport`), in the
 * same run against one nats-server with JetStream and the same responder:
 * sequential round trip p50/p99 (alternating chunks) and throughput at 100
 * in flight (ABAB rounds); and the server storage per waiting request (its
 * record) and per kept reply.
 *
 *     deno run -A bench/durable.ts [--quick]
 *
 * @module
 */

import { connect } from "nats.ws";
import { Endpoint, natsTransport } from "../mod.ts";
import { durableTransport } from "../durable.ts";
import { wsFactory } from "../deno.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { BODY, median, percentile, PlaceOrder, run, type Sample } from "./lib.ts";
import { waitUntil } from "../tests/helpers/wait.ts";

const quick = Deno.args.includes("--quick");
const ROUNDS = quick ? 1 : 5;
const SAMPLE_MS = quick ? 100 : 500;
const LATENCY = quick ? 100 : 2_000;
const CHUNK = quick ? 20 : 100;
const STORED = quick ? 100 : 1_000;

/** The measures. */
export interface DurableBench {
  latency: { plain: { p50: number; p99: number }; durable: { p50: number; p99: number } };
  throughput: { inflight: number; plainRps: number; durableRps: number; ratio: number };
  storage: { bytesPerWaitingRequest: number; bytesPerKeptReply: number };
}

/** Runs every measure against a fresh JetStream server. */
export async function durableBench(): Promise<DurableBench> {
  const store = await Deno.makeTempDir({ prefix: "durable-bench-" });
  await using server = await startNatsServer({
    config: `jetstream { store_dir: ${JSON.stringify(store)} }`,
  });
  // Through the wsFactory Deno users should use (TCP_NODELAY), for both.
  const options = { servers: server.wsUrl, wsFactory };
  const rc = await connect(options);
  const pc = await connect(options);
  const dc = await connect(options);
  const responder = new Endpoint(natsTransport(rc), { sendOnly: true });
  responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
  await rc.flush();
  const plain = new Endpoint(natsTransport(pc), { timeout: 30_000 });
  const transport = await durableTransport(dc, { name: "bench" });
  const durable = new Endpoint(transport, { timeout: 30_000 });
  try {
    const send = (endpoint: Endpoint) => () => endpoint.request(PlaceOrder, BODY);
    // Sequential round trips, in alternating chunks.
    const times = { plain: [] as number[], durable: [] as number[] };
    for (let done = 0; done < LATENCY; done += CHUNK) {
      for (const [which, endpoint] of [["plain", plain], ["durable", durable]] as const) {
        for (let i = 0; i < CHUNK; i++) {
          const t = performance.now();
          await endpoint.request(PlaceOrder, BODY);
          times[which].push(performance.now() - t);
        }
      }
    }
    const stats = (xs: number[]) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99) });
    // Throughput at 100 in flight, ABAB.
    const ratios: number[] = [];
    const rates = { plain: [] as number[], durable: [] as number[] };
    await run(send(plain), 100, SAMPLE_MS / 2);
    await run(send(durable), 100, SAMPLE_MS / 2);
    for (let round = 0; round < ROUNDS; round++) {
      const a: Sample[] = [];
      const b: Sample[] = [];
      for (let k = 0; k < 4; k++) {
        const durableTurn = (k + round) % 2 === 0;
        (durableTurn ? a : b).push(
          await run(send(durableTurn ? durable : plain), 100, SAMPLE_MS / 2),
        );
      }
      const rate = (xs: Sample[]) =>
        xs.reduce((t, x) => t + x.ops, 0) / xs.reduce((t, x) => t + x.ms, 0) * 1000;
      rates.durable.push(rate(a));
      rates.plain.push(rate(b));
      ratios.push(rate(a) / rate(b));
    }
    // Storage: the records of waiting requests, then the replies kept while their name is away.
    const jsm = await dc.jetstreamManager();
    const state = async (stream: string) => (await jsm.streams.info(stream)).state;
    const recordsBefore = await state("KV_CALLBACKS_PENDING");
    const repliesBefore = await state("CALLBACKS");
    const away = await durableTransport(dc, { name: "bench-away" });
    const gate = Promise.withResolvers<void>();
    const Slow = { ...PlaceOrder, subject: "bench.durable.slow" };
    responder.handle(Slow, async ({ sku, qty }) => {
      await gate.promise;
      return { orderId: `${sku}x${qty}`, eta: 2 };
    });
    await rc.flush();
    const leaving = new Endpoint(away, { timeout: 60_000 });
    const waiting = Array.from(
      { length: STORED },
      () => leaving.request(Slow, BODY).catch(() => {}),
    );
    // Recorded (one record each), then sent.
    await waitUntil(
      "every request recorded",
      async () => (await state("KV_CALLBACKS_PENDING")).messages >= recordsBefore.messages + STORED,
    );
    await dc.flush();
    const bytesPerWaitingRequest =
      ((await state("KV_CALLBACKS_PENDING")).bytes - recordsBefore.bytes) /
      STORED;
    await leaving.close(); // a clean shutdown: the records stay, the replies will be kept
    await Promise.all(waiting);
    await away.close();
    gate.resolve();
    let kept = await state("CALLBACKS");
    for (let i = 0; i < 100 && kept.messages - repliesBefore.messages < STORED; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      kept = await state("CALLBACKS");
    }
    const bytesPerKeptReply = (kept.bytes - repliesBefore.bytes) /
      Math.max(1, kept.messages - repliesBefore.messages);
    return {
      latency: { plain: stats(times.plain), durable: stats(times.durable) },
      throughput: {
        inflight: 100,
        plainRps: median(rates.plain),
        durableRps: median(rates.durable),
        ratio: median(ratios),
      },
      storage: { bytesPerWaitingRequest, bytesPerKeptReply },
    };
  } finally {
    await durable.close();
    await plain.close();
    await transport.close();
    await responder.close();
    for (const nc of [rc, pc, dc]) await nc.close();
    await server.stop();
    await Deno.remove(store, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const r = await durableBench();
  const ms = (n: number) => n.toFixed(3);
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(JSON.stringify(r, null, 2));
  console.log([
    "| measure | plain | durable | durable/plain |",
    "| --- | ---: | ---: | ---: |",
    `| sequential round trip p50, ms | ${ms(r.latency.plain.p50)} | ${
      ms(r.latency.durable.p50)
    } | ${(r.latency.durable.p50 / r.latency.plain.p50).toFixed(2)} |`,
    `| sequential round trip p99, ms | ${ms(r.latency.plain.p99)} | ${
      ms(r.latency.durable.p99)
    } | ${(r.latency.durable.p99 / r.latency.plain.p99).toFixed(2)} |`,
    `| object requests at 100 in flight, req/s | ${f(r.throughput.plainRps)} | ${
      f(r.throughput.durableRps)
    } | ${r.throughput.ratio.toFixed(2)} |`,
    `| server storage per waiting request (its record), bytes | | ${
      f(r.storage.bytesPerWaitingRequest)
    } | |`,
    `| server storage per kept reply, bytes | | ${f(r.storage.bytesPerKeptReply)} | |`,
  ].join("\n"));
}
