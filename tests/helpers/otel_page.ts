/// <reference lib="dom" />
/**
 * A browser page's script for the tracing test: it traces its endpoint with
 * `@seed/callbacks/otel` over `@opentelemetry/api` alone (no SDK in the
 * page: a parent span context of its own, a small stack context manager and a
 * W3C `traceparent` propagator), makes one request to the NATS server at
 * `?ws=`, and writes the trace it sent and the reply into `<body data-…>`.
 */

import * as v from "valibot";
import { connect } from "nats.ws";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
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
} catch (error) {
  document.body.dataset.reply = `error: ${error}`;
}
document.body.dataset.trace = `${traceId} ${spanId}`;
