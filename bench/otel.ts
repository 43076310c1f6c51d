/**
 * What tracing costs: object requests at 100 in flight through an endpoint
 * that is not instrumented, one instrumented with no SDK registered (the
 * `@opentelemetry/api` no-op tracer), and one instrumented with the SDK as a
 * user installs it (an in-memory exporter, emptied after each sample, the W3C
 * propagator and the context manager), in the same run against one nats-server and the same
 * responder, library turns alternating (ABAB). Ratios are against the
 * endpoint that is not instrumented.
 *
 *     deno run -A bench/otel.ts [--quick]
 *
 * @module
 */

import { context, propagation, trace } from "@opentelemetry/api";
import { connect } from "nats.ws";
import { Endpoint, natsTransport } from "../mod.ts";
import { instrument } from "../otel.ts";
import { wsFactory } from "../deno.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { registerSdk } from "../tests/helpers/otel_sdk.ts";
import { BODY, median, PlaceOrder, run, type Sample } from "./lib.ts";

const quick = Deno.args.includes("--quick");
const ROUNDS = quick ? 1 : 5;
const SAMPLE_MS = quick ? 100 : 500;

/** Requests per second of `a` and `b`, ABAB, and the median of the rounds' ratios a/b. */
async function compare(
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  afterEach: () => void = () => {},
) {
  await run(a, 100, SAMPLE_MS / 2);
  await run(b, 100, SAMPLE_MS / 2);
  afterEach();
  const ratios: number[] = [];
  const rates = { a: [] as number[], b: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    const as: Sample[] = [];
    const bs: Sample[] = [];
    for (let k = 0; k < 4; k++) {
      const aTurn = (k + round) % 2 === 0;
      (aTurn ? as : bs).push(await run(aTurn ? a : b, 100, SAMPLE_MS / 2));
      afterEach();
    }
    const rate = (xs: Sample[]) =>
      xs.reduce((t, x) => t + x.ops, 0) / xs.reduce((t, x) => t + x.ms, 0) * 1000;
    rates.a.push(rate(as));
    rates.b.push(rate(bs));
    ratios.push(rate(as) / rate(bs));
  }
  return { a: median(rates.a), b: median(rates.b), ratio: median(ratios) };
}

/** The measures. */
export async function otelBench() {
  await using server = await startNatsServer();
  const options = { servers: server.wsUrl, wsFactory };
  const connections = await Promise.all([1, 2, 3].map(() => connect(options)));
  const [rc, pc, tc] = connections as [
    typeof connections[0],
    typeof connections[0],
    typeof connections[0],
  ];
  const responder = new Endpoint(natsTransport(rc), { sendOnly: true });
  responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
  await rc.flush();
  const plain = new Endpoint(natsTransport(pc));
  const traced = new Endpoint(natsTransport(tc));
  const tracing = instrument(traced);
  try {
    const send = (endpoint: Endpoint) => () => endpoint.request(PlaceOrder, BODY);
    const noSdk = await compare(send(traced), send(plain));
    // The SDK as a user installs it (docs/otel.md): the W3C propagator and the context
    // manager too, so each request writes its traceparent. The exporter is emptied after each
    // sample, so later ones do not carry the earlier spans.
    const exporter = registerSdk();
    const withSdk = await compare(send(traced), send(plain), () => exporter.reset());
    return { noSdk, withSdk };
  } finally {
    tracing.stop();
    trace.disable();
    propagation.disable();
    context.disable();
    await traced.close();
    await plain.close();
    await responder.close();
    for (const nc of connections) await nc.close();
  }
}

if (import.meta.main) {
  const r = await otelBench();
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(JSON.stringify(r, null, 2));
  console.log([
    "| object requests at 100 in flight | not instrumented, req/s | instrumented, req/s | ratio |",
    "| --- | ---: | ---: | ---: |",
    `| instrumented, no SDK registered (no-op tracer) | ${f(r.noSdk.b)} | ${f(r.noSdk.a)} | ${
      r.noSdk.ratio.toFixed(2)
    } |`,
    `| instrumented, SDK with an in-memory exporter | ${f(r.withSdk.b)} | ${f(r.withSdk.a)} | ${
      r.withSdk.ratio.toFixed(2)
    } |`,
  ].join("\n"));
}
