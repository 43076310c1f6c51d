/**
 * Callbacks from Cloudflare Workers without a NATS connection per request.
 * A Worker cannot keep a socket between requests; a Durable Object can.
 * `CallbacksObject` is that object: it holds one NATS connection and one
 * endpoint and serves the callbacks of many Worker requests at once.
 * `edgeEndpoint` is the Worker's side: `request()` with the same contracts,
 * types and errors as `Endpoint.request`, the body and the reply validated
 * in the Worker.
 *
 * The object reads `NATS_SERVERS` (comma-separated WebSocket URLs) from its
 * environment, and `NATS_TOKEN`, `NATS_USER` + `NATS_PASSWORD` or
 * `NATS_CREDS` (a `.creds` file's text) where the server wants credentials.
 * Worker and object speak over Durable Object RPC (compatibility date
 * 2024-04-03 or later), or over the object's `fetch` before that.
 *
 * @example A Worker whose callbacks go through the object
 * ```ts ignore
 * import { CallbacksObject, edgeEndpoint } from "@seed/callbacks/cloudflare";
 * export { CallbacksObject }; // bound as a Durable Object namespace, e.g. CALLBACKS
 *
 * export default {
 *   async fetch(request: Request, env: Env, ctx: ExecutionContext) {
 *     // options: shard, timeout, and waitUntil so an abort's message outlives the response
 *     const endpoint = edgeEndpoint(env.CALLBACKS, { waitUntil: (p) => ctx.waitUntil(p) });
 *     const left = await endpoint.request(CheckStock, { sku: "A-1" }, { timeout: 2_000 });
 *     return Response.json({ left });
 *   },
 * };
 * ```
 *
 * @module
 */

import { EdgeError } from "./src/errors.ts";
import { type EdgeStats, Relay, type RelayConnection } from "./src/cloudflare/relay.ts";
import { EDGE_VERSION, type EdgeAnswer, type EdgeRequest } from "./src/cloudflare/protocol.ts";
import { settingsOf } from "./src/cloudflare/settings.ts";
import { openNats } from "./src/transports/nats.ts";
import { errorText } from "./src/wire.ts";

export { EdgeError } from "./src/errors.ts";
export type { EdgeErrorReason } from "./src/errors.ts";
export { EDGE_GRACE_MS, edgeEndpoint } from "./src/cloudflare/edge_endpoint.ts";
export type {
  CallbacksNamespace,
  CallbacksStub,
  EdgeEndpoint,
  EdgeEndpointOptions,
} from "./src/cloudflare/edge_endpoint.ts";
export type { EdgeStats } from "./src/cloudflare/relay.ts";
export type {
  EdgeAnswer,
  EdgeErrorData,
  EdgeRequest,
  EdgeResponse,
} from "./src/cloudflare/protocol.ts";
export type { CallbacksEnv } from "./src/cloudflare/settings.ts";

/** A Durable Object class: what `CallbacksObject` extends. */
export type DurableObjectBase = new (ctx: unknown, env: unknown) => Record<never, never>;

/**
 * workerd's `DurableObject` (from `cloudflare:workers`), which a class must
 * extend for its methods to be Durable Object RPC; a plain class elsewhere
 * (Deno, Node), where the object can run for tests. Looked up at run time:
 * `cloudflare:workers` exists only in workerd.
 */
async function durableObjectBase(): Promise<DurableObjectBase> {
  const workers = "cloudflare:workers";
  try {
    const module = await import(workers) as { DurableObject?: unknown };
    if (typeof module.DurableObject === "function") {
      return module.DurableObject as DurableObjectBase;
    }
  } catch {
    // not workerd
  }
  return class {
    constructor(_ctx: unknown, _env: unknown) {}
  };
}

/**
 * What {@linkcode CallbacksObject} extends: workerd's `DurableObject`, or a
 * plain class outside workerd.
 */
export const DurableObjectClass: DurableObjectBase = await durableObjectBase();

/** What NATS answers to credentials it refuses (nats.ws error codes). */
const REFUSED = /AUTHORIZATION|AUTHENTICATION_EXPIRED|CREDS/;

/** How the object connects: nats.ws, reconnecting for as long as it lives. */
function relayFor(env: unknown): Relay {
  const settings = settingsOf(env);
  if (settings instanceof EdgeError) {
    return new Relay({ servers: "(none)", open: () => Promise.reject(settings) });
  }
  const { token, user, pass, creds, inboxPrefix, shown } = settings;
  return new Relay({
    servers: shown,
    endpoint: inboxPrefix === undefined ? {} : { inboxPrefix },
    // One attempt; the relay tries again while NATS cannot be reached.
    open: async (): Promise<RelayConnection> => {
      try {
        return await openNats({
          servers: [...settings.servers],
          name: "@seed/callbacks cloudflare",
          timeout: 5_000,
          // Once connected, it reconnects for as long as the object lives.
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          ...(token === undefined ? {} : { token }),
          ...(user === undefined ? {} : { user, pass }),
          ...(creds === undefined ? {} : { creds }),
        });
      } catch (cause) {
        if (!REFUSED.test(String((cause as { code?: unknown } | null)?.code))) throw cause;
        throw new EdgeError(
          `NATS at ${shown} refused the callbacks object's connection (${errorText(cause)}): ` +
            `check the credentials (NATS_TOKEN, NATS_USER and NATS_PASSWORD, NATS_CREDS)`,
          { reason: "connect", cause },
        );
      }
    },
  });
}

/**
 * A Durable Object that holds one NATS connection and one endpoint, opened
 * on its first request, and sends the callbacks of many Worker requests over
 * it. Re-export it from the Worker and bind it as a Durable Object namespace;
 * Workers reach it through {@linkcode edgeEndpoint}.
 *
 * A request that arrives while the connection opens, or while it is down,
 * waits for it within its deadline (then `DisconnectedError`); a connection
 * closed for good (or an object evicted and started again) is opened again
 * by the next request.
 *
 * @example Its settings missing: the Worker is told what to set
 * ```ts
 * import { assert } from "@std/assert";
 * import { CallbacksObject, EdgeError } from "@seed/callbacks/cloudflare";
 * import { defineRequest, int } from "@seed/callbacks";
 * import * as v from "valibot";
 *
 * const CheckStock = defineRequest({
 *   subject: "stock.check",
 *   request: v.object({ sku: v.string() }),
 *   response: int(),
 * });
 * // What workerd does for a Worker's first request (outside workerd, a plain class):
 * await using object = new CallbacksObject({}, {});
 * const answer = await object.request({
 *   v: 1,
 *   id: "1",
 *   subject: CheckStock.subject,
 *   body: JSON.stringify({ sku: "A-1" }),
 *   timeout: 1_000,
 *   response: { kind: "int" },
 * });
 * assert(answer.error?.name === "EdgeError" && answer.error.reason === "config");
 * assert(answer.error.message.includes("NATS_SERVERS"));
 * ```
 *
 * @example Bound in wrangler.toml
 * ```toml
 * [[durable_objects.bindings]]
 * name = "CALLBACKS"
 * class_name = "CallbacksObject"
 *
 * [[migrations]]
 * tag = "v1"
 * new_classes = ["CallbacksObject"]
 *
 * [vars]
 * NATS_SERVERS = "wss://nats.example.com"
 * ```
 */
export class CallbacksObject extends DurableObjectClass implements AsyncDisposable {
  readonly #relay: Relay;

  /**
   * Made by the runtime.
   *
   * @param ctx The object's state.
   * @param env The Worker's bindings: `NATS_SERVERS` and the credentials.
   */
  constructor(ctx: unknown, env: unknown) {
    super(ctx, env);
    this.#relay = relayFor(env);
  }

  /**
   * RPC: sends a Worker's request (validated and encoded by the Worker).
   * Never rejects: the answer carries the reply's value or the error.
   *
   * @param message The request, as `edgeEndpoint` sends it.
   * @returns The reply's value, or the error the request settled with.
   */
  request(message: EdgeRequest): Promise<EdgeAnswer> {
    return this.#relay.request(message);
  }

  /**
   * RPC: stops waiting for a request the Worker gave up on.
   *
   * @param id The request's id, from its message.
   */
  cancel(id: string): void {
    this.#relay.cancel(id);
  }

  /**
   * RPC: whether the connection is open, the requests waiting, the
   * connections opened so far.
   *
   * @returns The object's numbers.
   */
  stats(): EdgeStats {
    return this.#relay.stats();
  }

  /**
   * The same over `fetch`, for Workers without Durable Object RPC:
   * `POST /request` and `POST /cancel` with the message as JSON,
   * `GET /stats`.
   *
   * @param request The HTTP request from a stub.
   * @returns The answer as JSON.
   */
  async fetch(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (request.method === "GET" && pathname === "/stats") return Response.json(this.stats());
    if (request.method !== "POST" || (pathname !== "/request" && pathname !== "/cancel")) {
      return new Response("POST /request, POST /cancel or GET /stats", { status: 404 });
    }
    let message: unknown;
    try {
      message = await request.json();
    } catch {
      message = undefined; // answered as a message it cannot read
    }
    if (pathname === "/cancel") {
      const { v, id } = (message ?? {}) as { v?: unknown; id?: unknown };
      if (v === EDGE_VERSION) this.cancel(id as string);
      return new Response(null, { status: 204 });
    }
    return Response.json(await this.#relay.request(message));
  }

  /** Closes the connection (the runtime never does: it evicts the object). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#relay.close();
  }
}
