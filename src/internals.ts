/**
 * What the add-on entry points (`@seed/callbacks/micro` and the like) use of
 * an endpoint beyond its public API. Not exported from `mod.ts`: an
 * application never needs it.
 *
 * @module
 */

import type { Registration } from "./options.ts";
import type { Transport } from "./transport.ts";

/**
 * Told once per request a responder served: how long it took (from arrival
 * to its answer, handler awaits included), and the answer's headers
 * (`undefined` when it sent none: the caller had stopped waiting).
 */
export type ServeObserver = (
  milliseconds: number,
  headers: Readonly<Record<string, string>> | undefined,
) => void;

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
