/**
 * The HTTP side of the Worker examples, shared by both: routes matched to
 * typed callback requests, and failures mapped to HTTP statuses.
 *
 *   GET  /stock/:sku            → CheckStock  (int)    `{ "result": 5 }`
 *   POST /orders {sku, qty}     → PlaceOrder  (object) 201 `{ "result": { "orderId": …, "eta": … } }`,
 *                                 with `location: /orders/<orderId>`, as the gateway answers
 *   POST /orders/:id/approve    → Approve     (enum)   `{ "result": "Approved" }`
 *
 * Failures: 400 invalid request, 504 timeout, 503 no responders, 502 remote
 * error or invalid reply; NATS unreachable or lost is 503 with `retry-after`
 * through the Durable Object (a long-lived connection, as the gateway's) and
 * 502 with a connection per request. The body is
 * `{ "error": { "name", "message", … } }`.
 *
 * @module
 */

import * as v from "valibot";
import {
  ClosedError,
  type Contract,
  defineRequest,
  DisconnectedError,
  enumOf,
  int,
  InvalidReplyError,
  InvalidRequestError,
  NoRespondersError,
  object,
  PendingLimitError,
  RemoteError,
  type ReplyOf,
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

/** What sends the callback requests: an `Endpoint` or an `edgeEndpoint`. */
export interface Requester {
  request<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options?: RequestOptions,
  ): Promise<ReplyOf<C>>;
  /** Closes what the requester opened for this HTTP request, if anything. */
  close?(): Promise<void>;
}

/** A route matched to a callback request. */
export type Call = (endpoint: Requester, options: RequestOptions) => Promise<unknown>;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** A failure's response: `{ "error": { name, message, … } }`. */
export function problem(
  status: number,
  name: string,
  message: string,
  extra: object = {},
  headers: Record<string, string> = {},
): Response {
  return json(status, { error: { name, message, ...extra } }, headers);
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

/** `?timeout=` first, then the `TIMEOUT_MS` binding; `undefined` for the default. */
function timeoutOf(url: URL, fallback: string | undefined): number | undefined {
  const text = url.searchParams.get("timeout") ?? fallback;
  if (text === undefined || text === "") return undefined;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms <= 0) {
    throw new BadRequest(`timeout must be a positive integer of milliseconds, got ${text}`);
  }
  return ms;
}

/** How a Worker's connection to NATS is held, for what a lost one answers. */
export type Held = "long-lived" | "per-request";

/** Maps a callback failure to an HTTP response; rethrows what is not a callback outcome. */
function failure(err: unknown, held: Held): Response {
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
  if (err instanceof DisconnectedError) {
    // A long-lived connection comes back: a passing outage. One per request: a bad gateway.
    return held === "long-lived"
      ? problem(503, err.name, err.message, {}, { "retry-after": "1" })
      : problem(502, err.name, err.message);
  }
  if (err instanceof ClosedError || err instanceof PendingLimitError) {
    return problem(503, err.name, err.message, {}, { "retry-after": "1" });
  }
  throw err;
}

/**
 * Serves one HTTP request: matches the route, opens a requester with `open`
 * (and closes it after), runs the call, answers with the result or the
 * failure's status.
 */
export async function serve(
  request: Request,
  options: {
    timeoutMs: string | undefined;
    held: Held;
    /** The requester for this HTTP request, or the response that says why there is none. */
    open: () => Promise<Requester | Response>;
    /** Maps the requester's own failures first (`undefined`: not one of them). */
    failure?: (err: unknown) => Response | undefined;
  },
): Promise<Response> {
  const url = new URL(request.url);
  let call: Call;
  let timeout: number | undefined;
  try {
    const matched = await route(request, url);
    if (matched instanceof Response) return matched;
    call = matched;
    timeout = timeoutOf(url, options.timeoutMs);
  } catch (err) {
    return failure(err, options.held);
  }
  const endpoint = await options.open();
  if (endpoint instanceof Response) return endpoint;
  try {
    // request.signal aborts when the client goes away (where the runtime supports it).
    const signal = (request as { signal?: AbortSignal }).signal;
    const result = await call(endpoint, {
      ...(signal ? { signal } : {}),
      ...(timeout === undefined ? {} : { timeout }),
    });
    // A placed order is created: 201 with its location, as the gateway answers.
    const orderId = (result as { orderId?: unknown } | null)?.orderId;
    if (request.method === "POST" && url.pathname === "/orders" && typeof orderId === "string") {
      return json(201, { result }, { location: `/orders/${encodeURIComponent(orderId)}` });
    }
    return json(200, { result });
  } catch (err) {
    return options.failure?.(err) ?? failure(err, options.held);
  } finally {
    await endpoint.close?.();
  }
}
