/**
 * HTTP gateway: synchronous-looking HTTP endpoints (`Deno.serve`) that await
 * callbacks over NATS. The HTTP handler sends a request, waits for the
 * responder's reply and answers with it; a client that disconnects aborts the
 * callback (the request's `signal` is the callback's signal).
 *
 *   GET  /stock/:sku            CheckStock  (int)     200 { "left": 5 }
 *   POST /orders {sku, qty}     PlaceOrder  (object)  201 { "orderId": "…", "eta": 2 }
 *   POST /orders/:id/approve    Approve     (enum)    200 { "orderId": "…", "decision": "Approved" }
 *
 * Errors: invalid request 400, no responders 503, timeout 504, remote error
 * 502 (with its code and description), invalid reply 502, NATS connection
 * lost or closed 503 with `retry-after` ("messaging unavailable, retry"; a
 * request in flight when it dropped may or may not have been processed).
 *
 *   deno run --allow-net --allow-env examples/gateway.ts --nats ws://127.0.0.1:8080
 *   NATS_URL=ws://127.0.0.1:8080 PORT=8000 deno run --allow-net --allow-env examples/gateway.ts
 *
 * Deno 2.9 prints a one-time notice when a handler reads `request.signal`
 * (it also aborts after a successful response, the "legacy" behaviour); that
 * is harmless here, since a callback has settled before its response is sent.
 * `--unstable-no-legacy-abort` opts in to the new behaviour and silences it.
 *
 * The responders run elsewhere (`endpoint.handle(CheckStock, …)` in another
 * process); without them every call answers 503.
 *
 * @module
 */

import * as v from "valibot";
import { connect } from "nats.ws";
import { wsFactory } from "../deno.ts";
import {
  ClosedError,
  defineRequest,
  DisconnectedError,
  Endpoint,
  enumOf,
  int,
  InvalidReplyError,
  InvalidRequestError,
  type NatsConnectionLike,
  natsTransport,
  NoRespondersError,
  object,
  PendingLimitError,
  RemoteError,
  type RequestOf,
  TimeoutError,
} from "../mod.ts";

// Contracts: the responders import the same ones.
/** `stock.check`: how many of a SKU are left. */
export const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.pipe(v.string(), v.minLength(1)) }),
  response: int(),
});
/** `orders.place`: places an order, answers its id and the days until delivery. */
export const PlaceOrder = defineRequest({
  subject: "orders.place",
  request: v.object({
    sku: v.pipe(v.string(), v.minLength(1)),
    qty: v.pipe(v.number(), v.integer(), v.minValue(1)),
  }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});
/** `orders.approve`: approves or rejects an order. */
export const Approve = defineRequest({
  subject: "orders.approve",
  request: v.object({ orderId: v.pipe(v.string(), v.minLength(1)) }),
  response: enumOf(["Approved", "Rejected"]),
});

/** Options of {@linkcode startGateway}. */
export interface GatewayOptions {
  /** A connection to use; it stays yours (not closed by the gateway). */
  nc?: NatsConnectionLike;
  /** A NATS websocket URL to connect to when `nc` is absent; the gateway closes that connection. */
  natsUrl?: string;
  /** HTTP port; 0 picks a free one. Default 8000. */
  port?: number;
  /** Default `127.0.0.1`. */
  hostname?: string;
  /** Shuts the gateway down when it aborts. */
  signal?: AbortSignal;
  /** How long a callback waits for its reply, in milliseconds. Default 10 000. */
  timeout?: number;
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/** A running gateway. */
export interface Gateway extends AsyncDisposable {
  /** The HTTP server. */
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  /** The one endpoint every HTTP request sends its callback through (events: `settle`, …). */
  readonly endpoint: Endpoint;
  /** `http://<hostname>:<port>` */
  readonly url: string;
  /** Resolves once the server and the endpoint are closed (and an owned connection). */
  readonly finished: Promise<void>;
  /** Stops accepting requests, closes the endpoint (what waits answers 503), waits for the server. Idempotent. */
  shutdown(): Promise<void>;
}

/**
 * Starts the gateway: one {@linkcode Endpoint} for the server's lifetime,
 * closed on shutdown.
 */
export async function startGateway(options: GatewayOptions = {}): Promise<Gateway> {
  if (!options.nc && !options.natsUrl) {
    throw new TypeError("startGateway needs a NATS connection: nc or natsUrl");
  }
  // wsFactory: Deno's own WebSocket stalls 40 ms per batch of NATS traffic (docs/deno.md).
  const connectOptions = { servers: options.natsUrl!, wsFactory };
  const owned = options.nc ? undefined : await connect(connectOptions);
  const nc: NatsConnectionLike = options.nc ?? owned!;
  const endpoint = new Endpoint(natsTransport(nc), { timeout: options.timeout ?? 10_000 });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      port: options.port ?? 8000,
      hostname: options.hostname ?? "127.0.0.1",
      onListen: options.onListen ?? (() => {}),
    }, (request) => route(endpoint, request));
  } catch (error) {
    await endpoint.close();
    await owned?.close();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      options.signal?.removeEventListener("abort", onAbort);
      const stopped = server.shutdown(); // stop accepting; waits for requests in flight
      await endpoint.close(); // callbacks still waiting reject with ClosedError: 503
      await stopped;
      await owned?.close();
    })();
  const onAbort = () => void shutdown();
  if (options.signal?.aborted) await shutdown();
  else options.signal?.addEventListener("abort", onAbort, { once: true });

  const { hostname, port } = server.addr;
  return {
    server,
    endpoint,
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    get finished() {
      return server.finished.then(() => stopping);
    },
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

const routes = {
  stock: new URLPattern({ pathname: "/stock/:sku" }),
  orders: new URLPattern({ pathname: "/orders" }),
  approve: new URLPattern({ pathname: "/orders/:id/approve" }),
};

/** Routes one HTTP request to its callback. */
async function route(endpoint: Endpoint, request: Request): Promise<Response> {
  const { signal } = request;
  try {
    let match = routes.stock.exec(request.url);
    if (match) {
      if (request.method !== "GET") return methodNotAllowed("GET");
      const sku = decodeURIComponent(match.pathname.groups.sku ?? "");
      const left = await endpoint.request(CheckStock, { sku }, { signal });
      return json(200, { left });
    }
    if (routes.orders.test(request.url)) {
      if (request.method !== "POST") return methodNotAllowed("POST");
      let body: unknown;
      try {
        body = await request.json();
      } catch {
        return json(400, { error: "BadRequest", message: "the body is not JSON" });
      }
      const order = await endpoint.request(PlaceOrder, body as RequestOf<typeof PlaceOrder>, {
        signal,
      });
      return json(201, order, { location: `/orders/${encodeURIComponent(order.orderId)}` });
    }
    match = routes.approve.exec(request.url);
    if (match) {
      if (request.method !== "POST") return methodNotAllowed("POST");
      const orderId = decodeURIComponent(match.pathname.groups.id ?? "");
      const decision = await endpoint.request(Approve, { orderId }, { signal });
      return json(200, { orderId, decision });
    }
    return json(404, {
      error: "NotFound",
      message: `no route for ${new URL(request.url).pathname}`,
    });
  } catch (error) {
    return errorResponse(error, signal);
  }
}

/** Maps a callback's rejection to an HTTP response. */
function errorResponse(error: unknown, signal: AbortSignal): Response {
  if (signal.aborted && error === signal.reason) {
    // The client went away; nobody reads this. 499 as nginx logs it.
    return json(499, { error: "ClientClosedRequest" });
  }
  if (error instanceof InvalidRequestError) {
    return json(400, {
      error: error.name,
      message: error.message,
      issues: error.issues.map((issue) => issue.message),
    });
  }
  if (error instanceof RemoteError) {
    return json(502, {
      error: error.name,
      code: error.code,
      description: error.description,
      ...(error.data === undefined ? {} : { data: error.data }),
    });
  }
  if (error instanceof InvalidReplyError) {
    return json(502, { error: error.name, message: error.message });
  }
  if (error instanceof TimeoutError) {
    return json(504, { error: error.name, message: error.message });
  }
  if (error instanceof DisconnectedError) {
    // NATS is down or this connection is closed: the gateway cannot deliver, a retry may.
    return json(503, {
      error: error.name,
      message: "messaging unavailable, retry",
      detail: error.message,
    }, { "retry-after": "1" });
  }
  if (
    error instanceof NoRespondersError || error instanceof PendingLimitError ||
    error instanceof ClosedError
  ) {
    return json(503, { error: (error as Error).name, message: (error as Error).message });
  }
  console.error("gateway: unexpected error", error);
  return json(500, { error: "InternalServerError" });
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers });
}

function methodNotAllowed(allow: string): Response {
  return json(405, { error: "MethodNotAllowed" }, { allow });
}

if (import.meta.main) {
  const index = Deno.args.indexOf("--nats");
  const natsUrl = (index === -1 ? undefined : Deno.args[index + 1]) ?? Deno.env.get("NATS_URL") ??
    "ws://127.0.0.1:8080";
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let gateway: Gateway;
  try {
    gateway = await startGateway({
      natsUrl,
      port: Number(Deno.env.get("PORT") ?? 8000),
      signal: stop.signal,
      onListen: ({ hostname, port }) => {
        console.log(`gateway: http://${hostname}:${port} -> NATS at ${natsUrl}`);
      },
    });
  } catch (error) {
    console.error(
      `gateway: could not start with NATS at ${natsUrl} (${(error as Error).message}).\n` +
        `Is nats-server running with websocket enabled on that port (websocket { port: 8080, no_tls: true })?\n` +
        `The URL is the websocket port (ws://…:8080), not the client port (4222). ` +
        `Or run everything at once: deno task example:gateway`,
    );
    Deno.exit(1);
  }
  await gateway.finished;
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  console.log("gateway: stopped");
}
