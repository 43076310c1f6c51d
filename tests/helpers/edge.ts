/**
 * What the Cloudflare edge tests share: contracts of each reply kind, a
 * responder process side (in Deno, over a real nats-server) with a slow
 * handler and replies that break the contract, and a Durable Object
 * namespace made of a `CallbacksObject` in this process, whose stub copies
 * every message as RPC or `fetch` would.
 *
 * @module
 */

import type { NatsConnection } from "nats.ws";
import { Endpoint, natsTransport, ReplyError } from "../../mod.ts";
import {
  type CallbacksNamespace,
  CallbacksObject,
  type CallbacksStub,
  type EdgeRequest,
} from "../../cloudflare.ts";
import { connectWs } from "./connect.ts";
import { EdgeApprove, EdgeOrder, EdgeStock } from "./edge_contracts.ts";
import { type NatsServer, startNatsServer } from "./nats_server.ts";

/** The Deno side of the edge tests: the responders, on their own connection. */
export interface EdgeResponders extends AsyncDisposable {
  readonly nc: NatsConnection;
  /** Requests the stock handler received, by sku. */
  readonly received: string[];
  /** Resolves when the slow handler next receives a request. */
  nextSlow(): Promise<void>;
  /** Resolves when the slow handler's `ctx.signal` next aborts. */
  nextSlowAbort(): Promise<void>;
}

/** Starts the responders of the edge contracts on `server`. */
export async function startResponders(server: NatsServer): Promise<EdgeResponders> {
  // Back soon after a server restart, within the object's retries of a no-responders answer.
  const nc = await connectWs(server, { reconnectTimeWait: 100, reconnectJitter: 50 });
  const responder = new Endpoint(natsTransport(nc));
  const received: string[] = [];
  const slow: (() => void)[] = [];
  const slowAborts: (() => void)[] = [];
  responder.handle(EdgeStock, async ({ sku }, ctx) => {
    received.push(sku);
    if (sku === "slow") {
      for (const resolve of slow.splice(0)) resolve();
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      for (const resolve of slowAborts.splice(0)) resolve();
      return 0;
    }
    if (sku === "Z-9") throw new ReplyError(404, "unknown sku", { data: { sku } });
    return sku === "A-1" ? 5 : 0;
  });
  responder.handle(
    EdgeApprove,
    ({ orderId }) => orderId.startsWith("o-") ? "Approved" : "Rejected",
  );
  // A raw responder, so that it can break the contract (the object passes it on; the Worker
  // refuses it).
  const encoder = new TextEncoder();
  nc.subscribe(EdgeOrder.subject, {
    queue: "q",
    callback: (_error, msg) => {
      const { sku, qty } = JSON.parse(new TextDecoder().decode(msg.data));
      const orderId = qty === 0 ? 42 : `${sku}x${qty}`;
      msg.respond(encoder.encode(JSON.stringify({ orderId, eta: 2 })));
    },
  });
  await nc.flush();
  return {
    nc,
    received,
    nextSlow: () => new Promise((resolve) => slow.push(resolve)),
    nextSlowAbort: () => new Promise((resolve) => slowAborts.push(resolve)),
    async [Symbol.asyncDispose]() {
      await responder.close();
      await nc.close();
    },
  };
}

/** Options of {@linkcode namespaceOf}. */
export interface NamespaceOptions {
  /** `false`: a stub without RPC methods (a Worker before 2024-04-03): `fetch` only. */
  rpc?: boolean;
}

/** A namespace of one object, with a count of the messages its stubs sent. */
export interface TestNamespace extends CallbacksNamespace {
  /** Messages sent to the object (requests and cancels), and the names asked for. */
  readonly sent: { requests: number; cancels: number; names: string[] };
}

/**
 * A Durable Object namespace whose every name is `object`; its stubs copy
 * each message with `structuredClone` (RPC) or through JSON (`fetch`), as
 * crossing to a Durable Object does.
 */
export function namespaceOf(
  object: CallbacksObject,
  options: NamespaceOptions = {},
): TestNamespace {
  const sent = { requests: 0, cancels: 0, names: [] as string[] };
  const fetch = async (input: string, init?: RequestInit) => {
    const request = new Request(input, init);
    if (new URL(request.url).pathname === "/cancel") sent.cancels++;
    else sent.requests++;
    const response = await object.fetch(request);
    return new Response(await response.text(), {
      status: response.status,
      headers: response.headers,
    });
  };
  const stub: CallbacksStub = options.rpc === false ? { fetch } : {
    fetch,
    request: async (message) => {
      sent.requests++;
      return structuredClone(await object.request(structuredClone(message)));
    },
    cancel: (id) => {
      sent.cancels++;
      return object.cancel(structuredClone(id));
    },
  };
  return {
    sent,
    idFromName: (name) => {
      sent.names.push(name);
      return name;
    },
    get: () => stub,
  };
}

/**
 * A TCP gate in front of a port on 127.0.0.1: while shut it closes every
 * connection it accepts (NATS looks unreachable), once opened it pipes them
 * through. Lets a test make NATS unreachable for one client only.
 */
export class Gate implements AsyncDisposable {
  /** Whether connections pass. */
  open = false;
  /** Connections it closed at once while shut. */
  refused = 0;
  readonly #listener: Deno.Listener;
  readonly #target: number;
  readonly #conns = new Set<Deno.Conn>();
  readonly #work: Promise<void>[] = [];
  readonly #accepting: Promise<void>;

  /** @param target The port it forwards to. */
  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** Its port. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (!this.open) {
          conn.close();
          this.refused++;
          continue;
        }
        this.#work.push(this.#forward(conn));
      }
    } catch {
      // closed
    }
  }

  async #forward(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    let pumps: Promise<void>[] = [];
    try {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      this.#conns.add(upstream);
      pumps = [pump(conn, upstream), pump(upstream, conn)];
      await Promise.race(pumps);
      this.#close(upstream);
    } catch {
      // the target is not there
    } finally {
      this.#close(conn);
      await Promise.all(pumps);
    }
  }

  #close(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // closed
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    for (const conn of [...this.#conns]) this.#close(conn);
    await Promise.all(this.#work);
  }
}

async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buffer);
      if (n === null) return;
      let written = 0;
      while (written < n) written += await to.write(buffer.subarray(written, n));
    }
  } catch {
    // closed
  }
}

/** A nats-server, the responders and a callbacks object connected to it. */
export interface Edge extends AsyncDisposable {
  server: NatsServer;
  object: CallbacksObject;
  responders: EdgeResponders;
}

/** Starts an {@linkcode Edge}; `env` adds to the object's bindings. */
export async function edge(env: Record<string, string> = {}): Promise<Edge> {
  const server = await startNatsServer();
  const stack = new AsyncDisposableStack();
  stack.defer(() => server.stop());
  try {
    const responders = stack.use(await startResponders(server));
    const object = stack.use(new CallbacksObject({}, { NATS_SERVERS: server.wsUrl, ...env }));
    const owned = stack.move();
    return { server, object, responders, [Symbol.asyncDispose]: () => owned.disposeAsync() };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}

/** A request message as `edgeEndpoint` sends it, with `change` applied. */
export function message(change: Record<string, unknown> = {}): EdgeRequest {
  return {
    v: 1,
    id: crypto.randomUUID(),
    subject: EdgeStock.subject,
    body: JSON.stringify({ sku: "A-1" }),
    timeout: 2_000,
    response: { kind: "int" },
    ...change,
  } as EdgeRequest;
}
