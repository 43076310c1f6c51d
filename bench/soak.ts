/**
 * A bounded soak: object requests over NATS, 200 in flight, for --seconds or
 * --requests, whichever comes first. Prints one JSON line: requests, seconds,
 * heap before (baseline), at its peak and after settling (after GC), pending
 * and errors. Run with --v8-flags=--expose-gc for meaningful heap numbers.
 *
 *   deno run -A --v8-flags=--expose-gc bench/soak.ts --seconds 60
 *
 * @module
 */

import * as v from "valibot";
import { defineRequest, Endpoint, natsTransport, object } from "../mod.ts";
import { connectWs } from "../tests/helpers/connect.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";

const Quote = defineRequest({
  subject: "soak.quote",
  request: v.object({ sku: v.string(), qty: v.number() }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(Deno.args[i + 1]);
}

const seconds = arg("seconds", 60);
const limit = arg("requests", 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return Deno.memoryUsage().heapUsed;
};

await using server = await startNatsServer();
const callerNc = await connectWs(server);
const responderNc = await connectWs(server);
let requests = 0;
let errors = 0;
let peak = 0;
let baseline = 0;
let after = 0;
let pending = -1;
const started = performance.now();
try {
  await using responder = new Endpoint(natsTransport(responderNc));
  responder.handle(Quote, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, eta: 2 }));
  await responderNc.flush();
  await using caller = new Endpoint(natsTransport(callerNc), { timeout: 10_000 });
  // Warm up, then take the baseline.
  for (let i = 0; i < 2_000; i++) await caller.request(Quote, { sku: "w", qty: i });
  baseline = heap();
  const end = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end && requests < limit) {
      requests++;
      try {
        await caller.request(Quote, { sku: "A-1", qty: requests });
      } catch {
        errors++;
      }
      if (requests % 20_000 === 0) peak = Math.max(peak, Deno.memoryUsage().heapUsed);
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  pending = caller.pending;
  after = heap();
} finally {
  await callerNc.close();
  await responderNc.close();
}
console.log(JSON.stringify({
  requests,
  seconds: (performance.now() - started) / 1000,
  baseline,
  peak: Math.max(peak, after),
  after,
  pending,
  errors,
}));
