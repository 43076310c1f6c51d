/**
 * What the add-on entry points (`@seed/callbacks/micro` and the like) use of
 * an endpoint beyond its public API. Not exported from `mod.ts`: an
 * application never needs it.
 *
 * @module
 */

import type { Registration } from "./options.ts";
import type { Transport, TransportMessage } from "./transport.ts";

/**
 * Told once per request a responder served: how long it took (from arrival
 * to its answer, handler awaits included), and the answer's headers
 * (`undefined` when it sent none: the caller had stopped waiting).
 */
export type ServeObserver = (
  milliseconds: number,
  headers: Readonly<Record<string, string>> | undefined,
) => void;

/** A request's trace, made by a {@linkcode Hooks.request} hook. */
export interface RequestTrace {
  /** Something happened to it on its way: `held`, `resent`, `retry`. */
  event(name: string): void;
  /** It settled (or could not be sent: `unsent`). */
  end(outcome: string, error: unknown): void;
}

/** A served request's trace, made by a {@linkcode Hooks.serve} hook. */
export interface ServeTrace {
  /** Runs the handler inside the trace's context. */
  run<T>(fn: () => T): T;
  /** It was answered with these headers (`undefined`: no answer was sent). */
  end(headers: Readonly<Record<string, string>> | undefined): void;
}

/**
 * Hooks an add-on sets on an endpoint (tracing); read at each request and
 * each serve. They run where the endpoint cannot fail (sending, settling,
 * serving), so neither a hook nor what it returns may throw.
 */
export interface Hooks {
  /** A request is about to be published; `headers` may be added to. */
  request?: (request: {
    readonly subject: string;
    readonly id: string;
    readonly headers: Record<string, string>;
    readonly bytes: number;
    readonly gather: boolean;
  }) => RequestTrace;
  /** A handler is about to serve a request. */
  serve?: (request: { readonly subject: string; readonly message: TransportMessage }) => ServeTrace;
}

/**
 * An endpoint's inner parts, for add-ons. Besides these, `Endpoint.handle()`
 * reads an `observe` option ({@linkcode ServeObserver}) that is not in its
 * public type.
 */
export interface EndpointInternals {
  /** The endpoint's transport. */
  readonly transport: Transport;
  /** A registration the endpoint stops when it closes. */
  register(stop: () => void, ready?: Promise<void>): Registration;
  /** Reports an error outside any caller's promise, as the endpoint's `error` event. */
  report(subject: string, error: unknown): void;
  /** The endpoint's hooks, set and unset by add-ons. */
  readonly hooks: Hooks;
}

/** Filled by the `Endpoint` constructor. */
export const INTERNALS: WeakMap<object, EndpointInternals> = new WeakMap();

/** The inner parts of an endpoint; throws `TypeError` for anything else. */
export function internalsOf(endpoint: unknown, where: string): EndpointInternals {
  const internals = INTERNALS.get(endpoint as object);
  if (internals === undefined) {
    throw new TypeError(`${where} needs an Endpoint from @seed/callbacks`);
  }
  return internals;
}
