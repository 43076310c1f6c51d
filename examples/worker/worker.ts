/**
 * A Cloudflare Worker that turns HTTP requests into typed callback requests
 * over WebSocket NATS:
 *
 *   GET  /stock/:sku            → CheckStock  (int)    `{ "result": 5 }`
 *   POST /orders {sku, qty}     → PlaceOrder  (object) 201 `{ "result": { "orderId": …, "eta": … } }`,
 *                                 with `location: /orders/<orderId>`, as the gateway answers
 *   POST /orders/:id/approve    → Approve     (enum)   `{ "result": "Approved" }`
 *
 * Failures map to HTTP statuses: 504 timeout, 503 no responders, 400 invalid
 * request, 502 remote error, invalid reply or NATS unreachable (`ConnectError`
 * when the connection cannot be opened, `DisconnectedError` when it drops
 * while the request waits); the body is `{ "error": { "name", "message", … } }`.
 *
 * Bindings: `NATS_URL` (a `ws://` or `wss://` NATS websocket URL, required)
 * and `TIMEOUT_MS` (optional; `?timeout=<ms>` overrides it per request).
 * The NATS connection is opened and closed inside each request: Workers do
 * not let I/O objects outlive the request that created them.
 *
 * Bundle it with esbuild (format esm, everything bundled) and run it with
 * workerd or wrangler; `tests/helpers/workerd.ts` shows a workerd config.
 *
 * @module
 */

import * as v from "valibot";
import { connect, type NatsConnection } from "nats.ws";
import {
  defineRequest,
  DisconnectedError,
  Endpoint,
  enumOf,
  int,
  InvalidReplyError,
  InvalidRequestError,
  natsTransport,
  NoRespondersError,
  object,
  RemoteError,
  type RequestOf,
  type RequestOptions,
  TimeoutError,
} from "../../mod.ts";

/** Stock left for a SKU. */
export const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});

/** Places an order. */
export const PlaceOrder = defineRequest({
  subject: "orders.place",
  request: v.object({ sku: v.string(), qty: v.number() }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});

/** Approves or rejects an order. */
export const Approve = defineRequest({
  subject: "orders.approve",
  request: v.object({ orderId: v.string() }),
  response: enumOf(["Approved", "Rejected"]),
});

/** The Worker's bindings. */
export interface Env {
  /** NATS websocket URL, e.g. `ws://127.0.0.1:8080`. */
  NATS_URL: string;
  /** Callback timeout in milliseconds (text); the endpoint's default (30 s) when absent. */
  TIMEOUT_MS?: string;
}

/** A route matched to a callback request, run once the connection is open. */
type Call = (endpoint: Endpoint, options: RequestOptions) => Promise<unknown>;

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function problem(status: number, name: string, message: string, extra: object = {}): Response {
  return json(status, { error: { name, message, ...extra } });
}

/** A request the Worker refuses before anything is sent (400). */
class BadRequest extends Error {
  override name = "BadRequest";
}

/** Matches method and path to a call, or answers 404/405 (or throws BadRequest). */
async function route(request: Request, url: URL): Promise<Call | Response> {
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  const allow = (method: string) =>
    request.method === method ? undefined : problem(405, "MethodNotAllowed", `use ${method}`);

  if (parts.length === 2 && parts[0] === "stock") {
    const sku = parts[1]!;
    return allow("GET") ?? ((endpoint, options) => endpoint.request(CheckStock, { sku }, options));
  }
  if (parts.length === 1 && parts[0] === "orders") {
    const refused = allow("POST");
    if (refused) return refused;
    let body: unknown;
    try {
      body = await request.json();
    } catch (err) {
      throw new BadRequest("the body is not JSON", { cause: err });
    }
    // The endpoint validates the body against the contract: InvalidRequestError → 400.
    return (endpoint, options) =>
      endpoint.request(PlaceOrder, body as RequestOf<typeof PlaceOrder>, options);
  }
  if (parts.length === 3 && parts[0] === "orders" && parts[2] === "approve") {
    const orderId = parts[1]!;
    return allow("POST") ??
      ((endpoint, options) => endpoint.request(Approve, { orderId }, options));
  }
  return problem(404, "NotFound", `no route for ${request.method} ${url.pathname}`);
}

/** `?timeout=` first, then the `TIMEOUT_MS` binding; `undefined` for the endpoint's default. */
function timeoutOf(url: URL, env: Env): number | undefined {
  const text = url.searchParams.get("timeout") ?? env.TIMEOUT_MS;
  if (text === undefined || text === "") return undefined;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms <= 0) {
    throw new BadRequest(`timeout must be a positive integer of milliseconds, got ${text}`);
  }
  return ms;
}

/** Maps a callback failure to an HTTP response; rethrows what is not a callback outcome. */
function failure(err: unknown): Response {
  if (err instanceof BadRequest) return problem(400, err.name, err.message);
  if (err instanceof InvalidRequestError) {
    return problem(400, err.name, err.message, { issues: err.issues.map((i) => i.message) });
  }
  if (err instanceof TimeoutError) return problem(504, err.name, err.message);
  if (err instanceof NoRespondersError) return problem(503, err.name, err.message);
  if (err instanceof RemoteError) {
    return problem(502, err.name, err.message, { code: err.code, description: err.description });
  }
  if (err instanceof InvalidReplyError) return problem(502, err.name, err.message);
  // The connection dropped while the request waited: NATS is the unreachable upstream.
  if (err instanceof DisconnectedError) return problem(502, err.name, err.message);
  throw err;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    let call: Call;
    let timeout: number | undefined;
    try {
      const matched = await route(request, url);
      if (matched instanceof Response) return matched;
      call = matched;
      timeout = timeoutOf(url, env);
    } catch (err) {
      return failure(err);
    }
    if (!env.NATS_URL) return problem(500, "ConfigError", "the NATS_URL binding is not set");

    // One connection per request: a Worker cannot keep sockets between requests.
    let nc: NatsConnection;
    try {
      nc = await connect({ servers: env.NATS_URL, reconnect: false });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      return problem(502, "ConnectError", `cannot reach NATS at ${env.NATS_URL}: ${reason}`);
    }
    try {
      await using endpoint = new Endpoint(
        natsTransport(nc),
        timeout === undefined ? {} : { timeout },
      );
      // request.signal aborts when the client goes away (where the runtime supports it).
      const signal = (request as { signal?: AbortSignal }).signal;
      const result = await call(endpoint, signal ? { signal } : {});
      // A placed order is created: 201 with its location, as the gateway answers.
      const orderId = (result as { orderId?: unknown } | null)?.orderId;
      if (request.method === "POST" && url.pathname === "/orders" && typeof orderId === "string") {
        const response = json(201, { result });
        response.headers.set("location", `/orders/${encodeURIComponent(orderId)}`);
        return response;
      }
      return json(200, { result });
    } catch (err) {
      return failure(err);
    } finally {
      await nc.close();
    }
  },
};
