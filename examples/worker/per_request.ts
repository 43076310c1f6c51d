/**
 * The same Worker (routes and statuses in ./routes.ts) for accounts without
 * Durable Objects: each HTTP request opens its own NATS connection, makes
 * its callback request and closes the connection, since a Worker cannot
 * keep a socket between requests. Every request pays for the connection
 * (TCP, TLS, WebSocket upgrade, NATS handshake); ./worker.ts does not.
 *
 * Bindings: `NATS_SERVERS` (NATS WebSocket URLs, comma-separated, required)
 * and `TIMEOUT_MS` (optional; `?timeout=<ms>` overrides it per request). A
 * connection that cannot be opened answers 502 `ConnectError`.
 *
 * @module
 */

import { connect } from "nats.ws";
import { Endpoint, natsTransport } from "../../mod.ts";
import { problem, type Requester, serve } from "./routes.ts";

export { Approve, CheckStock, PlaceOrder } from "./routes.ts";

/** The Worker's bindings. */
export interface Env {
  /** NATS WebSocket URLs, comma-separated, e.g. `ws://127.0.0.1:8080`. */
  NATS_SERVERS: string;
  /** Callback timeout in milliseconds (text); 30 s when absent. */
  TIMEOUT_MS?: string;
}

/** One connection and endpoint for one HTTP request, closed after it. */
async function open(env: Env): Promise<Requester | Response> {
  if (!env.NATS_SERVERS) {
    return problem(500, "ConfigError", "the NATS_SERVERS binding is not set");
  }
  const servers = env.NATS_SERVERS.split(",").map((s) => s.trim());
  try {
    const nc = await connect({ servers, reconnect: false });
    const endpoint = new Endpoint(natsTransport(nc));
    return {
      request: (contract, body, options) => endpoint.request(contract, body, options),
      close: async () => {
        await endpoint.close();
        await nc.close();
      },
    };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return problem(502, "ConnectError", `cannot reach NATS at ${env.NATS_SERVERS}: ${reason}`);
  }
}

export default {
  fetch(request: Request, env: Env): Promise<Response> {
    return serve(request, {
      timeoutMs: env.TIMEOUT_MS,
      held: "per-request",
      open: () => open(env),
    });
  },
};
