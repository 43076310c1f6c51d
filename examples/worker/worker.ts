/**
 * A Cloudflare Worker that turns HTTP requests into typed callback requests
 * (routes and statuses in ./routes.ts), sent through `CallbacksObject`: a
 * Durable Object that holds one NATS connection for every request of the
 * Worker, so no request opens a connection of its own.
 *
 * Bindings: `CALLBACKS` (the Durable Object namespace of `CallbacksObject`,
 * exported below), `NATS_SERVERS` (NATS WebSocket URLs, comma-separated; the
 * object reads it, with `NATS_TOKEN`, `NATS_USER`/`NATS_PASSWORD` or
 * `NATS_CREDS` where the server wants credentials), `TIMEOUT_MS` (optional;
 * `?timeout=<ms>` overrides it per request).
 *
 * Without Durable Objects, ./per_request.ts opens a connection per request.
 * Bundle it with esbuild (format esm, everything bundled) and run it with
 * workerd or wrangler; `tests/helpers/workerd.ts` shows a workerd config.
 *
 * @module
 */

import {
  type CallbacksNamespace,
  CallbacksObject,
  edgeEndpoint,
  EdgeError,
} from "../../cloudflare.ts";
import { problem, serve } from "./routes.ts";

export { CallbacksObject };
export { Approve, CheckStock, PlaceOrder } from "./routes.ts";

/** The Worker's bindings. */
export interface Env {
  /** The Durable Object namespace `CallbacksObject` is bound to. */
  CALLBACKS: CallbacksNamespace;
  /** NATS WebSocket URLs, comma-separated: read by the object. */
  NATS_SERVERS?: string;
  /** Callback timeout in milliseconds (text); 30 s when absent. */
  TIMEOUT_MS?: string;
}

/** The part of a fetch handler's context the Worker uses. */
interface Context {
  waitUntil(promise: Promise<unknown>): void;
}

/** What the deployment must change: its settings or versions (500), NATS refusing the object (502). */
function edgeFailure(err: unknown): Response | undefined {
  if (!(err instanceof EdgeError)) return undefined;
  const status = err.reason === "config" || err.reason === "protocol" ? 500 : 502;
  return problem(status, err.name, err.message, { reason: err.reason });
}

export default {
  fetch(request: Request, env: Env, ctx: Context): Promise<Response> {
    return serve(request, {
      timeoutMs: env.TIMEOUT_MS,
      held: "long-lived",
      // waitUntil: an aborted request's "stop waiting" reaches the object after the response.
      open: () =>
        Promise.resolve(edgeEndpoint(env.CALLBACKS, { waitUntil: (p) => ctx.waitUntil(p) })),
      failure: edgeFailure,
    });
  },
};
