/**
 * Traces across the request: W3C trace context in the request's headers and
 * OpenTelemetry spans on both sides, so a request and its handling (and the
 * handler's own requests) are one trace in your tracing backend.
 *
 * Built on `@opentelemetry/api` 1.9 (the range `@opentelemetry/sdk-trace-base`
 * 2.x accepts, so an application's SDK and this entry point share one global
 * registration). It uses the global tracer provider and propagator unless
 * given a tracer; for a handler's own spans and requests to join its span
 * across `await`s, register a context manager (in Deno and Node,
 * `AsyncLocalStorageContextManager` from `@opentelemetry/context-async-hooks`).
 *
 * @example Tracing an endpoint
 * ```ts ignore
 * import { Endpoint, natsTransport } from "@seed/callbacks";
 * import { instrument } from "@seed/callbacks/otel";
 *
 * await using endpoint = new Endpoint(natsTransport(nc));
 * using _tracing = instrument(endpoint);
 * ```
 *
 * @module
 */

import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import type { Endpoint } from "./src/endpoint.ts";

import { internalsOf } from "./src/internals.ts";
import type { TransportMessage } from "./src/transport.ts";
import { ERROR_CODE_HEADER, ERROR_HEADER } from "./src/wire.ts";

/** A tracer: `@opentelemetry/api`'s `Tracer` (what `trace.getTracer()` gives). */
export interface TracerLike {
  /** Starts a span. */
  startSpan(name: string, options?: unknown, context?: unknown): unknown;
}

/** Span attributes: names to strings, numbers, booleans or arrays of them. */
export type SpanAttributes = Readonly<
  Record<string, string | number | boolean | readonly (string | number | boolean)[]>
>;

/** Options of {@linkcode instrument}. */
export interface InstrumentOptions {
  /** The tracer; by default the global provider's `@seed/callbacks` tracer. */
  tracer?: TracerLike;
  /** Attributes added to every span. */
  attributes?: SpanAttributes;
}

/** The instrumentation of one endpoint: `stop()` (or disposing) removes it. */
export interface Instrumentation extends Disposable {
  /** Removes the instrumentation; requests and handlers from then on are not traced. Idempotent. */
  stop(): void;
}

/**
 * Traces an endpoint's requests (`request()`, `requestMany()`) and the
 * requests its handlers serve, whether registered before or after.
 *
 * - Each request is a `CLIENT` span `send <subject>`, a child of the active
 *   context, from publish to settle, whose W3C `traceparent`/`tracestate` go
 *   in the request's headers; every outcome but a reply sets the error status
 *   and records the error; held, resent and retried requests are events on it.
 * - Each request served is a `SERVER` span `process <subject>` continuing the
 *   caller's trace, covering decode, validation, handler and reply; the
 *   handler runs with it active; an error reply sets the error status and
 *   `error.type` to its code.
 *
 * Attributes follow OpenTelemetry's messaging conventions: `messaging.system`
 * (`nats`), `messaging.destination.name`, `messaging.operation.name` and
 * `.type`, `messaging.message.id`, `messaging.message.body.size`; and
 * `callbacks.outcome` on a request span.
 *
 * @param endpoint The endpoint to trace.
 * @param options `tracer`, `attributes`.
 * @returns The instrumentation; dispose it to stop tracing.
 * @throws {TypeError} Not an endpoint; the endpoint is already traced.
 *
 * @example Tracing while a block runs
 * ```ts
 * import { assert } from "@std/assert";
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * import { instrument } from "@seed/callbacks/otel";
 * await using endpoint = new Endpoint(memoryTransport());
 * {
 *   using tracing = instrument(endpoint);
 *   assert(typeof tracing.stop === "function");
 * }
 * ```
 */
export function instrument(endpoint: Endpoint, options: InstrumentOptions = {}): Instrumentation {
  const { hooks } = internalsOf(endpoint, "instrument");
  if (hooks.request || hooks.serve) {
    throw new TypeError("instrument: this endpoint is already traced; stop that first");
  }
  const tracer = (options.tracer as Tracer | undefined) ?? trace.getTracer("@seed/callbacks");
  const common = (options.attributes ?? {}) as Attributes;
  hooks.request = ({ subject, id, headers, bytes, gather }) => {
    let span: Span | undefined;
    try {
      // CLIENT and SERVER, not PRODUCER and CONSUMER: the requester waits for the reply.
      span = tracer.startSpan(`send ${subject}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          ...common,
          "messaging.system": "nats",
          "messaging.destination.name": subject,
          "messaging.operation.name": "send",
          "messaging.operation.type": "send",
          "messaging.message.id": id,
          "messaging.message.body.size": bytes,
          ...(gather ? { "callbacks.gather": true } : {}),
        },
      }, context.active());
      propagation.inject(trace.setSpan(context.active(), span), headers, {
        set: (carrier, key, value) => void (carrier[key] = value),
      });
    } catch {
      // Tracing never stops a request.
    }
    return {
      event: (name) => {
        try {
          span?.addEvent(name);
        } catch {
          // Tracing never stops a request.
        }
      },
      end: (outcome, error) => {
        if (!span) return;
        try {
          span.setAttribute("callbacks.outcome", outcome);
          if (outcome !== "reply") {
            // An error reply's code, else the outcome (`timeout`, `no-responders`, `abort`, …).
            const code = (error as { code?: unknown } | null)?.code;
            span.setAttribute(
              "error.type",
              outcome === "remote-error" && code !== undefined ? String(code) : outcome,
            );
            span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
            span.recordException(error instanceof Error ? error : String(error));
          }
          span.end();
        } catch {
          // Tracing never stops a request.
        }
      },
    };
  };
  hooks.serve = ({ subject, message }) => {
    let span: Span | undefined;
    let active: Context | undefined;
    try {
      active = context.active();
      const parent = propagation.extract(active, message, {
        keys: () => [],
        // Exact names first; a Go client's header carrier sends them capitalised.
        get: (carrier: TransportMessage, key) =>
          carrier.header(key) ?? carrier.header(key[0]!.toUpperCase() + key.slice(1)),
      });
      const reply = message.reply;
      span = tracer.startSpan(`process ${subject}`, {
        kind: SpanKind.SERVER,
        attributes: {
          ...common,
          "messaging.system": "nats",
          "messaging.destination.name": subject,
          "messaging.operation.name": "process",
          "messaging.operation.type": "process",
          "messaging.message.id": reply.slice(reply.lastIndexOf(".") + 1),
          "messaging.message.body.size": message.data.length,
        },
      }, parent);
      active = trace.setSpan(parent, span);
    } catch {
      // An unreadable request: served untraced.
    }
    return {
      run: (fn) => {
        if (active === undefined) return fn();
        let ran = false;
        try {
          return context.with(active, () => {
            ran = true;
            return fn();
          });
        } catch (error) {
          if (ran) throw error; // the handler's own exception
          return fn(); // a context manager that failed: run untraced
        }
      },
      end: (headers) => {
        if (!span) return;
        try {
          const code = headers?.[ERROR_CODE_HEADER];
          if (code !== undefined) {
            span.setAttribute("error.type", code);
            span.setStatus({
              code: SpanStatusCode.ERROR,
              message: headers?.[ERROR_HEADER] ?? code,
            });
          }
          span.end();
        } catch {
          // Tracing never stops an answer.
        }
      },
    };
  };
  let active = true;
  const stop = () => {
    if (!active) return;
    active = false;
    delete hooks.request;
    delete hooks.serve;
  };
  return { stop, [Symbol.dispose]: stop };
}
