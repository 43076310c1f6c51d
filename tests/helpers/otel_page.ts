/// <reference lib="dom" />
/**
 * A browser page's script for the tracing test: it traces its endpoint with
 * `@seed/callbacks/otel` over `@opentelemetry/api` and a small recording
 * tracer of its own (a stand-in for a browser SDK: new span ids, children of
 * the active span), a stack context manager and a W3C `traceparent`
 * propagator; makes one request to the NATS server at `?ws=` inside a parent
 * span; and writes the trace id, its `send` span's id and kind, and the reply
 * into `<body data-…>`.
 */

import * as v from "valibot";
import { connect } from "nats.ws";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanOptions,
  trace,
  TraceFlags,
} from "@opentelemetry/api";
import { defineRequest, Endpoint, int, natsTransport } from "../../mod.ts";
import { instrument } from "../../otel.ts";

/** The contract the Deno responder answers. */
const Traced = defineRequest({
  subject: "otel.browser",
  request: v.object({ from: v.string() }),
  response: int(),
});

const stack: Context[] = [ROOT_CONTEXT];
context.setGlobalContextManager({
  active: () => stack[stack.length - 1]!,
  with(ctx, fn, thisArg, ...args) {
    stack.push(ctx);
    try {
      return fn.call(thisArg, ...args);
    } finally {
      stack.pop();
    }
  },
  bind: (_ctx, target) => target,
  enable() {
    return this;
  },
  disable() {
    return this;
  },
});
propagation.setGlobalPropagator({
  inject(ctx, carrier, setter) {
    const span = trace.getSpanContext(ctx);
    if (span) {
      setter.set(carrier, "traceparent", `00-${span.traceId}-${span.spanId}-0${span.traceFlags}`);
    }
  },
  extract: (ctx) => ctx,
  fields: () => ["traceparent"],
});

/** Spans ended on the page: name, span id, kind. */
const ended: { name: string; spanId: string; kind: number }[] = [];
trace.setGlobalTracerProvider({
  getTracer: () => ({
    startSpan(name: string, options?: SpanOptions, ctx?: Context): Span {
      const parent = trace.getSpanContext(ctx ?? context.active());
      const own = {
        traceId: parent?.traceId ?? hex(16),
        spanId: hex(8),
        traceFlags: TraceFlags.SAMPLED,
      };
      const span: Span = {
        spanContext: () => own,
        setAttribute: () => span,
        setAttributes: () => span,
        addEvent: () => span,
        addLink: () => span,
        addLinks: () => span,
        setStatus: () => span,
        updateName: () => span,
        end: () => void ended.push({ name, spanId: own.spanId, kind: options?.kind ?? 0 }),
        isRecording: () => true,
        recordException: () => {},
      };
      return span;
    },
    startActiveSpan: () => {
      throw new Error("not used");
    },
  }),
});

const hex = (bytes: number) =>
  [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
const traceId = hex(16);
const spanId = hex(8);
try {
  const nc = await connect({ servers: new URL(location.href).searchParams.get("ws")! });
  const endpoint = new Endpoint(natsTransport(nc));
  instrument(endpoint);
  const parent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: TraceFlags.SAMPLED,
  });
  const reply = await context.with(
    parent,
    () => endpoint.request(Traced, { from: "page" }, { timeout: 5_000 }),
  );
  document.body.dataset.reply = String(reply);
  const send = ended.find((span) => span.name === "send otel.browser");
  document.body.dataset.send = `${send?.spanId} ${send?.kind}`;
} catch (error) {
  document.body.dataset.reply = `error: ${error}`;
}
document.body.dataset.trace = `${traceId} ${spanId}`;
