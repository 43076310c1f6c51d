/**
 * Past one server: a 3-node cluster on loopback, requesters and responders
 * spread over its nodes, nodes killed (SIGKILL) with requests in flight.
 * Every request settles exactly once, with a reply or a typed error; an
 * idempotent request whose reply was lost in the gap is sent again and
 * answered, its handler run once; requests made during the gap are held and
 * sent; `pending` ends at 0.
 */

import * as v from "valibot";
import { assert, assertEquals, assertInstanceOf, assertStrictEquals } from "@std/assert";
import {
  defineRequest,
  DisconnectedError,
  Endpoint,
  int,
  type NatsConnectionLike,
  natsTransport,
  type SettleEvent,
} from "../mod.ts";
import { connectWs } from "./helpers/connect.ts";
import { type NatsCluster, startCluster, startLeaf } from "./helpers/nats_cluster.ts";
import { waitUntil } from "./helpers/wait.ts";
import { nextConnection } from "./helpers/spy.ts";

const body = v.object({ n: v.number() });
const Reserve = defineRequest({
  subject: "cluster.reserve",
  request: body,
  response: int(),
  idempotent: true,
});
const Charge = defineRequest({ subject: "cluster.charge", request: body, response: int() });

type Connection = Awaited<ReturnType<typeof connectWs>>;

/** Connects to `urls` (the first one first), reconnecting after `delay` ms to the next. */
function connectTo(urls: string[], delay = 50): Promise<Connection> {
  return connectWs(urls[0]!, {
    servers: urls,
    noRandomize: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: delay,
    reconnectDelayHandler: () => delay,
  });
}

/** Answered by the k-th responder at once: once it answers, the caller's node knows of it. */
const probe = (k: number) =>
  defineRequest({ subject: `cluster.probe.${k}`, request: v.null(), response: int() });

/** Waits until the caller's node routes to `responders` responders (their probes answer). */
async function reachable(caller: Endpoint, responders: number): Promise<void> {
  for (let k = 1; k <= responders; k++) {
    await waitUntil(
      `responder ${k} reachable`,
      () => caller.request(probe(k), null).then(() => true, () => false),
    );
  }
}

/**
 * Responders on `nc` that answer `n + 1`, count their runs per request, and
 * wait for `gate`; and its probe, registered last.
 */
function responder(
  nc: Connection,
  runs: Map<string, number>,
  gate: { promise: Promise<void> },
  k: number,
  contracts: (typeof Charge)[] = [Reserve, Charge],
) {
  const endpoint = new Endpoint(natsTransport(nc as unknown as NatsConnectionLike), {
    sendOnly: true,
  });
  for (const contract of contracts) {
    endpoint.handle(contract, async ({ n }) => {
      const key = `${contract.subject}/${n}`;
      runs.set(key, (runs.get(key) ?? 0) + 1);
      await gate.promise;
      return n + 1;
    });
  }
  endpoint.handle(probe(k), () => 0);
  return endpoint;
}

async function closeAll(
  endpoints: Endpoint[],
  connections: Connection[],
  cluster: NatsCluster,
): Promise<void> {
  for (const endpoint of endpoints) await endpoint.close();
  for (const nc of connections) await nc.close();
  await cluster.stop();
}

Deno.test("cluster - queue groups balance requests across nodes", async () => {
  const cluster = await startCluster(3);
  const [n1, n2, n3] = cluster.nodes as [
    typeof cluster.nodes[0],
    typeof cluster.nodes[0],
    typeof cluster.nodes[0],
  ];
  const connections = await Promise.all([n1, n2, n3].map((node) => connectTo([node.wsUrl])));
  const [callerNc, nc2, nc3] = connections as [Connection, Connection, Connection];
  const served = [0, 0];
  const endpoints = [nc2, nc3].map((nc, i) => {
    const endpoint = new Endpoint(natsTransport(nc), { sendOnly: true });
    endpoint.handle(Charge, ({ n }) => {
      served[i]!++;
      return n + 1;
    });
    return endpoint;
  });
  const caller = new Endpoint(natsTransport(callerNc));
  try {
    await Promise.all([nc2.flush(), nc3.flush()]);
    await cluster.routed();
    // The interest has reached node 1 once a request finds a responder.
    await waitUntil(
      "a responder reachable from node 1",
      () => caller.request(Charge, { n: 0 }).then(() => true, () => false),
    );
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, n) => caller.request(Charge, { n })),
    );
    assertEquals(replies, Array.from({ length: 100 }, (_, n) => n + 1));
    assert(served[0]! > 10 && served[1]! > 10, `both nodes' responders served: ${served}`);
    assertStrictEquals(caller.pending, 0);
  } finally {
    await closeAll([caller, ...endpoints], connections, cluster);
  }
});

Deno.test("cluster - the requester's node killed with requests in flight: idempotent ones are sent again and answered, handler run once; others wait for a DisconnectedError; held ones go out", async () => {
  const cluster = await startCluster(3);
  const urls = cluster.wsUrls;
  const [n1] = cluster.nodes;
  const runs = new Map<string, number>();
  const gate = Promise.withResolvers<void>();
  // The requester reconnects 300 ms after the drop: answers given inside that gap are lost.
  const callerNc = await connectTo(urls, 300);
  const nc2 = await connectTo([urls[1]!, urls[2]!]);
  const nc3 = await connectTo([urls[2]!, urls[1]!]);
  const connections = [callerNc, nc2, nc3];
  // One instance answers the idempotent contract: its memory of answers is its own (a resend
  // that a queue group hands to another instance runs there; see docs/cluster.md).
  const responders = [responder(nc2, runs, gate, 1), responder(nc3, runs, gate, 2, [Charge])];
  const caller = new Endpoint(natsTransport(callerNc), { timeout: 3_000 });
  try {
    await Promise.all([nc2.flush(), nc3.flush()]);
    await cluster.routed();
    await reachable(caller, 2);
    const settles = new Map<string, SettleEvent[]>();
    caller.addEventListener("settle", (e) => settles.set(e.id, [...settles.get(e.id) ?? [], e]));

    const count = 40;
    const idempotent = Array.from({ length: count }, (_, n) => caller.request(Reserve, { n }));
    const plain = Array.from({ length: count }, (_, n) => caller.request(Charge, { n }));
    const outcomes = [...idempotent, ...plain].map((p) => p.then((v) => v, (e) => e));
    // Every request has reached a responder, whose handler waits at the gate.
    await waitUntil("every request at the gate", () => Promise.resolve(runs.size >= 2 * count));
    const down = nextConnection(caller, "disconnect");
    await n1!.kill();
    await down;
    // Answers now: the requester's server is gone, so they are lost.
    gate.resolve();
    // Made during the gap: held, sent after the reconnect.
    const held = Array.from({ length: 10 }, (_, n) => caller.request(Charge, { n: 1_000 + n }));
    const results = await Promise.all(outcomes);
    const idempotentResults = results.slice(0, count);
    const plainResults = results.slice(count);
    assertEquals(idempotentResults, Array.from({ length: count }, (_, n) => n + 1));
    for (let n = 0; n < count; n++) {
      assertEquals(runs.get(`${Reserve.subject}/${n}`), 1, `handler runs for reserve ${n}`);
    }
    for (const result of plainResults) {
      // Not idempotent: its reply was lost in the gap, and it is not sent again.
      assertInstanceOf(result, DisconnectedError);
    }
    assertEquals(await Promise.all(held), Array.from({ length: 10 }, (_, n) => 1_001 + n));
    // After failover, new requests succeed.
    assertEquals(await caller.request(Reserve, { n: 5_000 }), 5_001);
    for (const [id, events] of settles) assertEquals(events.length, 1, `one settle for ${id}`);
    assertStrictEquals(caller.pending, 0);
  } finally {
    gate.resolve();
    await closeAll([caller, ...responders], connections, cluster);
  }
});

Deno.test("cluster - a responder's node killed with requests in flight: it answers after its reconnect, the other takes new requests", async () => {
  const cluster = await startCluster(3);
  const urls = cluster.wsUrls;
  const [, n2] = cluster.nodes;
  const runs = new Map<string, number>();
  const gate = Promise.withResolvers<void>();
  const callerNc = await connectTo([urls[0]!]);
  const nc2 = await connectTo([urls[1]!, urls[2]!]);
  const nc3 = await connectTo([urls[2]!, urls[0]!]);
  const connections = [callerNc, nc2, nc3];
  const r2 = responder(nc2, runs, gate, 1);
  const r3 = responder(nc3, runs, gate, 2);
  const caller = new Endpoint(natsTransport(callerNc), { timeout: 5_000 });
  try {
    await Promise.all([nc2.flush(), nc3.flush()]);
    await cluster.routed();
    await reachable(caller, 2);
    const count = 60;
    const inFlight = Array.from({ length: count }, (_, n) => caller.request(Charge, { n }));
    await waitUntil("every request at the gate", () => Promise.resolve(runs.size >= count));
    const down = nextConnection(r2, "disconnect");
    const back = nextConnection(r2, "reconnect");
    await n2!.kill();
    await down;
    // Answered while node 2's responder is disconnected: held, sent after its reconnect.
    gate.resolve();
    await back;
    assertEquals(await Promise.all(inFlight), Array.from({ length: count }, (_, n) => n + 1));
    // New requests find a responder (node 3's, or node 2's on its new server).
    const after = await Promise.all(
      Array.from({ length: 20 }, (_, n) => caller.request(Charge, { n: 100 + n })),
    );
    assertEquals(after, Array.from({ length: 20 }, (_, n) => 101 + n));
    for (const [key, n] of runs) assertEquals(n, 1, `handler runs for ${key}`);
    assertStrictEquals(caller.pending, 0);
  } finally {
    gate.resolve();
    await closeAll([caller, r2, r3], connections, cluster);
  }
});

Deno.test("cluster - a requester on a leaf node (nats.ws, as a browser) reaches responders in the hub; the leaf restarting is a failover like any other", async () => {
  const cluster = await startCluster(2, { leafnodes: true });
  const leaf = await startLeaf(cluster.nodes);
  const runs = new Map<string, number>();
  const gate = Promise.withResolvers<void>();
  const [h1, h2] = cluster.wsUrls as [string, string];
  const nc1 = await connectTo([h1, h2]);
  const nc2 = await connectTo([h2, h1]);
  const callerNc = await connectTo([leaf.wsUrl]);
  const connections = [callerNc, nc1, nc2];
  const responders = [responder(nc1, runs, gate, 1), responder(nc2, runs, gate, 2, [Charge])];
  const caller = new Endpoint(natsTransport(callerNc), { timeout: 10_000 });
  try {
    await Promise.all([nc1.flush(), nc2.flush()]);
    await reachable(caller, 2);
    // The probes crossed the leaf connection both ways: requests out, replies back.
    const count = 20;
    const inFlight = Array.from({ length: count }, (_, n) => caller.request(Reserve, { n }));
    await waitUntil("every request at the gate", () => Promise.resolve(runs.size >= count));
    const down = nextConnection(caller, "disconnect");
    await leaf.kill();
    await down;
    gate.resolve(); // answered while the leaf is down: lost
    const held = Array.from({ length: 5 }, (_, n) => caller.request(Charge, { n: 100 + n }));
    await leaf.restart();
    await leaf.connected();
    assertEquals(await Promise.all(inFlight), Array.from({ length: count }, (_, n) => n + 1));
    assertEquals(await Promise.all(held), Array.from({ length: 5 }, (_, n) => 101 + n));
    for (let n = 0; n < count; n++) {
      assertEquals(runs.get(`${Reserve.subject}/${n}`), 1, `handler runs for reserve ${n}`);
    }
    assertStrictEquals(caller.pending, 0);
  } finally {
    gate.resolve();
    await leaf.stop();
    await closeAll([caller, ...responders], connections, cluster);
  }
});
