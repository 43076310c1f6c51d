/**
 * Sizing inputs, measured: N nats.ws connections in this process (over
 * WebSocket, as browsers connect), each with an `Endpoint` and a few
 * callbacks waiting on a subject whose responder never answers, against one
 * nats-server. Reports, per connection: the server's resident memory (from
 * its `/varz`), the client's heap (after a forced GC), and the server-side
 * subscriptions (from `/connz`): what docs/sizing.md projects from.
 *
 *     deno run -A --v8-flags=--expose-gc bench/sizing.ts [--connections 1000] [--pending 3]
 *
 * @module
 */

import { monitorUrl } from "../tests/helpers/monitor.ts";
import { connect, type NatsConnection } from "nats.ws";
import * as v from "valibot";
import { defineRequest, Endpoint, int, natsTransport } from "../mod.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { gc } from "./lib.ts";

const flag = (name: string, fallback: number) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
};
const CONNECTIONS = flag("--connections", 1_000);
const PENDING = flag("--pending", 3);
const SUBSCRIPTIONS = 20_000;

const Silent = defineRequest({ subject: "sizing.silent", request: v.number(), response: int() });

/** The sizing report. */
export interface Sizing {
  connections: number;
  /** Server resident memory per inbox-like wildcard subscription, measured on one connection. */
  serverBytesPerSubscription: number;
  pendingPerEndpoint: number;
  serverRssBaseline: number;
  serverRssLoaded: number;
  serverBytesPerConnection: number;
  serverSubscriptions: number;
  subscriptionsPerConnection: number;
  clientHeapBaseline: number;
  clientHeapLoaded: number;
  clientBytesPerConnection: number;
  openMs: number;
}

/** Measures with `connections` connections and `pending` waiting callbacks on each. */
export async function sizing(connections: number, pending: number): Promise<Sizing> {
  await using server = await startNatsServer({ config: 'http: "127.0.0.1:-1"' });
  const url = await monitorUrl(server);
  const monitor = async <T>(path: string): Promise<T> =>
    await (await fetch(`${url}${path}`)).json() as T;

  // A responder that holds the subject and never answers, so callbacks wait.
  const silent = await connect({ servers: server.wsUrl });
  silent.subscribe(Silent.subject, { callback: () => {} });
  await silent.flush();

  gc();
  const baseline = await monitor<{ mem: number; subscriptions: number }>("/varz");
  const serverRssBaseline = baseline.mem;
  const clientHeapBaseline = Deno.memoryUsage().heapUsed;
  const opened: { nc: NatsConnection; endpoint: Endpoint; waiting: Promise<unknown>[] }[] = [];
  const began = performance.now();
  try {
    for (let i = 0; i < connections; i++) {
      const nc = await connect({ servers: server.wsUrl, maxReconnectAttempts: 0 });
      const endpoint = new Endpoint(natsTransport(nc), { timeout: 600_000 });
      const waiting = Array.from(
        { length: pending },
        (_, n) => endpoint.request(Silent, n).catch(() => {}),
      );
      opened.push({ nc, endpoint, waiting });
    }
    await Promise.all(opened.map(({ nc }) => nc.flush()));
    const openMs = performance.now() - began;
    gc();
    const clientHeapLoaded = Deno.memoryUsage().heapUsed;
    const varz = await monitor<{ mem: number; subscriptions: number; connections: number }>(
      "/varz",
    );
    if (varz.connections !== connections + 1) {
      throw new Error(`the server has ${varz.connections} connections, not ${connections + 1}`);
    }
    const serverSubscriptions = varz.subscriptions - baseline.subscriptions;
    // Subscriptions alone: one more connection with as many inbox-like wildcard subscriptions.
    const many = await connect({ servers: server.wsUrl, maxReconnectAttempts: 0 });
    let serverBytesPerSubscription: number;
    try {
      const before = (await monitor<{ mem: number }>("/varz")).mem;
      for (let i = 0; i < SUBSCRIPTIONS; i++) {
        many.subscribe(`_INBOX.${crypto.randomUUID().replaceAll("-", "")}.*`, {
          callback: () => {},
        });
      }
      await many.flush();
      serverBytesPerSubscription = ((await monitor<{ mem: number }>("/varz")).mem - before) /
        SUBSCRIPTIONS;
    } finally {
      await many.close();
    }
    return {
      connections,
      serverBytesPerSubscription,
      pendingPerEndpoint: pending,
      serverRssBaseline,
      serverRssLoaded: varz.mem,
      serverBytesPerConnection: (varz.mem - serverRssBaseline) / connections,
      serverSubscriptions,
      subscriptionsPerConnection: serverSubscriptions / connections,
      clientHeapBaseline,
      clientHeapLoaded,
      clientBytesPerConnection: (clientHeapLoaded - clientHeapBaseline) / connections,
      openMs,
    };
  } finally {
    for (const { nc, endpoint, waiting } of opened) {
      await endpoint.close();
      await Promise.all(waiting);
      await nc.close();
    }
    await silent.close();
  }
}

if (import.meta.main) {
  const result = await sizing(CONNECTIONS, PENDING);
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  console.log(JSON.stringify(result, null, 2));
  console.log(
    [
      `| measure (${result.connections} connections, ${result.pendingPerEndpoint} waiting callbacks each) | value |`,
      "| --- | ---: |",
      `| server resident memory per connection (/varz mem) | ${
        kb(result.serverBytesPerConnection)
      } |`,
      `| server subscriptions per connection (/varz) | ${result.subscriptionsPerConnection} |`,
      `| server resident memory per inbox subscription (${SUBSCRIPTIONS} on one connection) | ${
        Math.round(result.serverBytesPerSubscription)
      } B |`,
      `| client heap per connection + endpoint + callbacks | ${
        kb(result.clientBytesPerConnection)
      } |`,
      `| time to open them all, one after another | ${Math.round(result.openMs)} ms |`,
    ].join("\n"),
  );
}
