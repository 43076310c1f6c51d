/**
 * `@seed/callbacks/otel` with the SDK a user would install
 * (`@opentelemetry/sdk-trace-base`'s in-memory exporter, the W3C propagator,
 * the async-hooks context manager), over a real nats-server: one trace from a
 * caller through a handler and its own request to a second handler; error
 * statuses; `traceparent` on the wire and continued from a plain requester;
 * held and resent requests as events; disposing.
 */

import * as v from "valibot";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { headers as natsHeaders } from "nats.ws";
import { exported, registerSdk } from "./helpers/otel_sdk.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  defineRequest,
  Endpoint,
  int,
  InvalidRequestError,
  memoryTransport,
  natsTransport,
  NoRespondersError,
  object,
  ReplyError,
  TimeoutError,
} from "../mod.ts";
import { instrument } from "../otel.ts";
import { memoryFixture, natsFixture } from "./helpers/fixture.ts";
import { connectWs } from "./helpers/connect.ts";

const exporter = registerSdk();

const Quote = defineRequest({
  subject: "otel.quote",
  request: v.object({ sku: v.string() }),
  response: object(v.object({ price: v.number() })),
});
const Stock = defineRequest({
  subject: "otel.stock",
  request: v.object({ sku: v.string() }),
  response: int(),
});

type Finished = ReturnType<typeof exporter.getFinishedSpans>[number];
const parentOf = (span: Finished): string | undefined =>
  (span as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId;
const byName = (name: string) => exporter.getFinishedSpans().find((s) => s.name === name)!;

Deno.test("otel - a caller, a handler and the handler's own request to a second handler are one trace", async () => {
  exporter.reset();
  await using fx = await natsFixture();
  const third = await connectWs(fx.server);
  try {
    await using caller = new Endpoint(fx.caller);
    await using front = new Endpoint(fx.responder);
    await using back = new Endpoint(natsTransport(third));
    // Registered before instrument: traced all the same.
    front.handle(Quote, async ({ sku }) => {
      const left = await front.request(Stock, { sku });
      return { price: left * 10 };
    });
    using _c = instrument(caller, { attributes: { "service.part": "caller" } });
    using _f = instrument(front);
    using _b = instrument(back);
    // Registered after.
    await back.handle(Stock, () => 4).ready;
    await fx.ready();
    const tracer = trace.getTracer("test");
    const quote = await tracer.startActiveSpan("http POST /quote", async (span) => {
      try {
        return await caller.request(Quote, { sku: "A-1" });
      } finally {
        span.end();
      }
    });
    assertEquals(quote, { price: 40 });
    const spans = exporter.getFinishedSpans();
    assertEquals(spans.map((s) => s.name).sort(), [
      "http POST /quote",
      "process otel.quote",
      "process otel.stock",
      "send otel.quote",
      "send otel.stock",
    ]);
    const http = byName("http POST /quote");
    const sendQuote = byName("send otel.quote");
    const processQuote = byName("process otel.quote");
    const sendStock = byName("send otel.stock");
    const processStock = byName("process otel.stock");
    const traceId = http.spanContext().traceId;
    for (const span of spans) assertEquals(span.spanContext().traceId, traceId, span.name);
    assertEquals(parentOf(sendQuote), http.spanContext().spanId);
    assertEquals(parentOf(processQuote), sendQuote.spanContext().spanId);
    assertEquals(parentOf(sendStock), processQuote.spanContext().spanId);
    assertEquals(parentOf(processStock), sendStock.spanContext().spanId);
    assertEquals([sendQuote.kind, processQuote.kind], [SpanKind.CLIENT, SpanKind.SERVER]);
    assertEquals(sendQuote.attributes["messaging.system"], "nats");
    assertEquals(sendQuote.attributes["messaging.destination.name"], "otel.quote");
    assertEquals(sendQuote.attributes["messaging.operation.type"], "send");
    assertEquals(sendQuote.attributes["service.part"], "caller");
    assertEquals(sendQuote.attributes["callbacks.outcome"], "reply");
    assert(Number(sendQuote.attributes["messaging.message.body.size"]) > 0);
    assertEquals(
      sendQuote.attributes["messaging.message.id"],
      processQuote.attributes["messaging.message.id"],
    );
    assertEquals(processQuote.attributes["messaging.operation.type"], "process");
    for (const span of spans) assertEquals(span.status.code, SpanStatusCode.UNSET, span.name);
    await exported();
  } finally {
    await third.close();
  }
});

for (const makeFixture of [natsFixture, memoryFixture]) {
  const where = makeFixture === natsFixture ? "nats" : "memory";
  Deno.test(`otel - every outcome but a reply sets the error status; an error reply's code is on the handler's span (${where})`, async () => {
    exporter.reset();
    await using fx = await makeFixture();
    await using caller = new Endpoint(fx.caller);
    await using responder = new Endpoint(fx.responder);
    using _c = instrument(caller);
    using _r = instrument(responder);
    await responder.handle(Stock, ({ sku }) => {
      if (sku === "gone") throw new ReplyError(409, "out of stock");
      return new Promise<number>(() => {}); // never answers
    }).ready;
    await fx.ready();
    await caller.request(Stock, { sku: "gone" }).catch(() => {});
    await caller.request(Stock, { sku: "slow" }, { timeout: 50 }).catch((e) =>
      assert(e instanceof TimeoutError)
    );
    await caller.request(Quote, { sku: "x" }).catch((e) => assert(e instanceof NoRespondersError));
    const sends = exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT);
    assertEquals(sends.map((s) => s.attributes["callbacks.outcome"]), [
      "remote-error",
      "timeout",
      "no-responders",
    ]);
    assertEquals(sends.map((s) => s.attributes["error.type"]), ["409", "timeout", "no-responders"]);
    for (const span of sends) {
      assertEquals(span.status.code, SpanStatusCode.ERROR);
      assertEquals(span.events.filter((e) => e.name === "exception").length, 1, span.name);
    }
    const served = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    assertEquals([served.status.code, served.attributes["error.type"]], [
      SpanStatusCode.ERROR,
      "409",
    ]);
    assertEquals(served.status.message, "out of stock");
    await exported();
  });
}

Deno.test("otel - traceparent is on the wire for a plain subscriber, and a plain requester's is continued", async () => {
  exporter.reset();
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  using _c = instrument(caller);
  let seen: string | undefined;
  const raw = fx.responderNc.subscribe(Stock.subject, {
    callback: (_e, m) => {
      seen = m.headers?.get("traceparent");
      const h = natsHeaders();
      h.set("Callback-Kind", "int");
      m.respond(new TextEncoder().encode("3"), { headers: h });
    },
  });
  await fx.ready();
  assertEquals(await caller.request(Stock, { sku: "a" }), 3);
  const sent = byName("send otel.stock");
  assertEquals(seen, `00-${sent.spanContext().traceId}-${sent.spanContext().spanId}-01`);
  raw.unsubscribe();

  // A plain nats.ws requester with a traceparent of its own.
  await using responder = new Endpoint(fx.responder);
  using _r = instrument(responder);
  await responder.handle(Stock, () => 8).ready;
  await fx.ready();
  const h = natsHeaders();
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  h.set("traceparent", `00-${traceId}-00f067aa0ba902b7-01`);
  const answer = await fx.callerNc.request(
    Stock.subject,
    new TextEncoder().encode(JSON.stringify({ sku: "b" })),
    { headers: h, timeout: 5_000 },
  );
  assertEquals(new TextDecoder().decode(answer.data), "8");
  const processed = byName("process otel.stock");
  assertEquals(processed.spanContext().traceId, traceId);
  assertEquals(parentOf(processed), "00f067aa0ba902b7");
  await exported();
});

Deno.test("otel - a held and resent request is one span with events; disposing stops tracing; one instrumentation per endpoint", async () => {
  exporter.reset();
  const bus = memoryTransport();
  await using caller = new Endpoint(bus);
  await using responder = new Endpoint(bus);
  responder.handle(Stock, () => 1);
  const tracing = instrument(caller);
  assertThrows(() => instrument(caller), TypeError, "already traced");
  bus.disconnect();
  const held = caller.request(Stock, { sku: "a" });
  bus.reconnect();
  assertEquals(await held, 1);
  const [span] = exporter.getFinishedSpans();
  assertEquals(exporter.getFinishedSpans().length, 1, "one span, not a new trace per send");
  assertEquals(span!.events.map((e) => e.name), ["held", "resent"]);
  tracing[Symbol.dispose]();
  tracing.stop();
  assertEquals(await caller.request(Stock, { sku: "b" }), 1);
  assertEquals(exporter.getFinishedSpans().length, 1, "no span once disposed");
  using again = instrument(caller); // free again
  // A gather is one span too.
  exporter.reset();
  const all = await Array.fromAsync(caller.requestMany(Stock, { sku: "c" }, { max: 1 }));
  assertEquals(all.length, 1);
  const [gather] = exporter.getFinishedSpans();
  assertEquals([gather?.name, gather?.attributes["callbacks.gather"]], ["send otel.stock", true]);
  assertEquals(gather?.attributes["callbacks.outcome"], "reply");
  again.stop();
  await exported();
});

Deno.test("otel - the trace headers count against max_payload; a broken tracer leaves requests untraced, not broken", async () => {
  exporter.reset();
  const bus = memoryTransport({ maxPayload: 300 });
  await using caller = new Endpoint(bus);
  await using responder = new Endpoint(bus);
  responder.handle(Stock, () => 2);
  // Fits without the trace context, not with it.
  const sku = "x".repeat(180);
  assertEquals(await caller.request(Stock, { sku }), 2);
  const tracing = instrument(caller);
  await assertRejects(() => caller.request(Stock, { sku }), InvalidRequestError, "max_payload");
  assertEquals(caller.pending, 0);
  const [unsent] = exporter.getFinishedSpans();
  assertEquals([unsent?.attributes["callbacks.outcome"], unsent?.status.code], [
    "unsent",
    SpanStatusCode.ERROR,
  ]);
  tracing.stop();
  // A tracer that throws: the request goes out untraced.
  using _broken = instrument(caller, {
    tracer: {
      startSpan() {
        throw new Error("broken tracer");
      },
    },
  });
  assertEquals(await caller.request(Stock, { sku: "y" }), 2);
  assertEquals(caller.pending, 0);
  await exported();
});
