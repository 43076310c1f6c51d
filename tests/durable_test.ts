/**
 * `@seed/callbacks/durable` against a real nats-server with JetStream: a
 * requester process killed (SIGKILL) before its replies come, and the next
 * instance of its name receiving every reply once, typed, `recovered: true`;
 * the same across a server restart; a crash between a reply and its
 * acknowledgement; requests that expired while no instance ran; one live
 * instance per name; storage bounded by `maxAge`.
 */

import { connect, type NatsConnection } from "nats.ws";
import { assert, assertEquals, assertInstanceOf, assertRejects, assertThrows } from "@std/assert";
import {
  Endpoint,
  natsTransport,
  NoRespondersError,
  type ReplyInfo,
  type Transport,
} from "../mod.ts";
import { DurableError, durableTransport, type ExpiredRequest } from "../durable.ts";
import { retryLaterMs } from "../src/durable/transport.ts";
import { Approve, CheckStock, PlaceOrder } from "./helpers/contract_suite.ts";
import { Orphan } from "./helpers/durable_contracts.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { Process } from "./helpers/process.ts";
import { waitUntil } from "./helpers/wait.ts";

const ACK_WAIT = 1_000;
const REQUESTER = new URL("./helpers/durable_requester.ts", import.meta.url).pathname;

/** A JetStream server with its store in a directory of its own, kept across restarts. */
async function jetstreamServer(): Promise<NatsServer & { store: string }> {
  const store = await Deno.makeTempDir({ prefix: "durable-store-" });
  const server = await startNatsServer({
    config: `jetstream { store_dir: ${JSON.stringify(store)} }`,
  });
  const stop = server.stop.bind(server);
  return Object.assign(server, {
    store,
    stop: async () => {
      await stop();
      await Deno.remove(store, { recursive: true }).catch(() => {});
    },
    [Symbol.asyncDispose]: async () => {
      await stop();
      await Deno.remove(store, { recursive: true }).catch(() => {});
    },
  });
}

/** Responders that answer only once `gate` opens, and count what they received. */
async function responders(server: NatsServer, gate: Promise<void>) {
  const nc = await connect({ servers: server.wsUrl });
  const endpoint = new Endpoint(natsTransport(nc), { sendOnly: true });
  let received = 0;
  endpoint.handle(CheckStock, async ({ sku }) => {
    received++;
    if (sku === "expire") return await new Promise<number>(() => {}); // never answers
    await gate;
    return 5;
  });
  endpoint.handle(Approve, async () => {
    received++;
    await gate;
    return "Approved" as const;
  });
  endpoint.handle(PlaceOrder, async ({ sku, qty }) => {
    received++;
    await gate;
    return { orderId: `${sku}x${qty}`, eta: 2 };
  });
  endpoint.handle(Orphan, async ({ n }) => {
    received++;
    await gate;
    return { n };
  });
  await nc.flush();
  return {
    get received() {
      return received;
    },
    async close() {
      await endpoint.close();
      await nc.close();
    },
  };
}

/** Runs the requester process until it is ready. */
async function requester(
  server: NatsServer,
  name: string,
  mode: string,
  options: Record<string, unknown> = { ackWait: ACK_WAIT },
) {
  const sent: { id: string; subject: string }[] = [];
  const ready = Promise.withResolvers<void>();
  const replied = Promise.withResolvers<void>();
  const proc = new Process(Deno.execPath(), {
    args: ["run", "-A", REQUESTER, server.wsUrl, name, mode, JSON.stringify(options)],
    onStdoutLine: (line) => {
      const [word, id, subject] = line.split(" ");
      if (word === "sent") sent.push({ id: id!, subject: subject! });
      if (word === "ready") ready.resolve();
      if (word === "replied") replied.resolve();
    },
  });
  proc.status.then(() => ready.reject(new Error(`the requester exited:\n${proc.log}`)));
  ready.promise.catch(() => {});
  await ready.promise;
  return { sent, proc, replied: replied.promise };
}

/** What the next instance's reply handlers receive. */
function collect(endpoint: Endpoint) {
  const got: { subject: string; value: unknown; info: ReplyInfo }[] = [];
  for (const contract of [CheckStock, Approve, PlaceOrder]) {
    endpoint.onReply(
      contract,
      (value, info) => got.push({ subject: contract.subject, value, info }),
    );
  }
  return got;
}

async function consumerState(nc: NatsConnection, name: string) {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.consumers.info("CALLBACKS", name);
  return { pending: info.num_pending, unacked: info.num_ack_pending };
}

/** Waits until the durable name's consumer has nothing pending and nothing unacknowledged. */
async function acknowledged(nc: NatsConnection, name: string): Promise<void> {
  await waitUntil(`${name}'s replies acknowledged`, async () => {
    const state = await consumerState(nc, name);
    return state.pending === 0 && state.unacked === 0;
  });
}

for (const restartServer of [false, true]) {
  const where = restartServer ? ", across a server restart" : "";
  Deno.test(`durable - a killed requester's replies reach the next instance once, typed and recovered${where}`, async () => {
    await using server = await jetstreamServer();
    const gate = Promise.withResolvers<void>();
    let back = await responders(server, gate.promise);
    const nc = await connect({
      servers: server.wsUrl,
      reconnectTimeWait: 50,
      maxReconnectAttempts: -1,
    });
    try {
      const first = await requester(server, "checkout-1", "all");
      await waitUntil(
        "the responders to have the requests",
        () => Promise.resolve(back.received === 4),
      );
      first.proc.child.kill("SIGKILL");
      await first.proc.wait();
      gate.resolve(); // the responders answer while no requester runs
      await waitUntil(
        "the replies to be kept",
        async () => (await consumerState(nc, "checkout-1")).pending === 3,
      );
      if (restartServer) {
        await back.close();
        await server.restart();
        back = await responders(server, gate.promise);
        // The requester's connection is back once a round trip succeeds.
        await waitUntil("the reconnect", () => nc.flush().then(() => true, () => false));
      }
      // The next instance of the name.
      const transport = await durableTransport(nc, { name: "checkout-1", ackWait: ACK_WAIT });
      const endpoint = new Endpoint(transport);
      const got = collect(endpoint);
      await waitUntil("the recovered replies", () => Promise.resolve(got.length === 3));
      const bySubject = Object.fromEntries(got.map((g) => [g.subject, g]));
      assertEquals(bySubject["stock.check"]?.value, 5);
      assertEquals(bySubject["orders.approve"]?.value, "Approved");
      assertEquals(bySubject["orders.place"]?.value, { orderId: "A-1x2", eta: 2 });
      for (const { info, subject } of got) {
        assertEquals([info.late, info.recovered], [true, true]);
        const sent = first.sent.find((s) => s.id === info.id);
        assertEquals(sent?.subject, subject, "the id its request event carried");
      }
      // The request that expired while no instance ran is reported once.
      const expiring = first.sent.filter((s) => s.subject === "stock.check")
        .find((s) => !got.some((g) => g.info.id === s.id))!;
      let expired: ExpiredRequest[] = [];
      await waitUntil(
        "its deadline",
        async () => (expired = await transport.takeExpired()).length > 0,
      );
      assertEquals(expired.map((e) => [e.subject, e.id]), [["stock.check", expiring.id]]);
      assertEquals(await transport.takeExpired(), []);
      await acknowledged(nc, "checkout-1");
      await endpoint.close();
      await transport.close();
      // A third start: nothing is left to deliver.
      const third = await durableTransport(nc, { name: "checkout-1", ackWait: ACK_WAIT });
      const again = new Endpoint(third);
      const nothing = collect(again);
      await nc.flush();
      assertEquals(await consumerState(nc, "checkout-1"), { pending: 0, unacked: 0 });
      assertEquals(nothing, []);
      await again.close();
      await third.close();
    } finally {
      gate.resolve();
      await back.close();
      await nc.close();
    }
  });
}

Deno.test("durable - a crash between a reply and its acknowledgement delivers it again, once", async () => {
  await using server = await jetstreamServer();
  const back = await responders(server, Promise.resolve());
  const nc = await connect({ servers: server.wsUrl });
  try {
    const first = await requester(server, "crashy", "crash");
    await first.replied; // its callback ran, then the process exited before acknowledging
    await first.proc.wait();
    const transport = await durableTransport(nc, { name: "crashy", ackWait: ACK_WAIT });
    const endpoint = new Endpoint(transport);
    const got = collect(endpoint);
    // Delivered again once the unacknowledged delivery's ackWait has passed.
    await waitUntil("the redelivery", () => Promise.resolve(got.length === 1), 10_000);
    assertEquals(got[0]?.value, { orderId: "C-1x1", eta: 2 });
    assertEquals(got[0]?.info.recovered, true);
    await acknowledged(nc, "crashy");
    assertEquals(got.length, 1, "once");
    await endpoint.close();
    await transport.close();
  } finally {
    await back.close();
    await nc.close();
  }
});

Deno.test("durable - one live instance per name; a clean close frees it at once; a crash as soon as its connection is gone", async () => {
  await using server = await jetstreamServer();
  const nc = await connect({ servers: server.wsUrl });
  const nc2 = await connect({ servers: server.wsUrl });
  try {
    const first = await durableTransport(nc, { name: "solo" });
    const refused = await durableTransport(nc2, { name: "solo" }).catch((e) => e);
    assertInstanceOf(refused, DurableError);
    assertEquals(refused.reason, "name-in-use");
    await first.close();
    const second = await durableTransport(nc2, { name: "solo" });
    await second.close();
    // A crash: the holder's process dies; the name is free once the server sees it gone.
    const crashed = await requester(server, "solo", "none");
    crashed.proc.child.kill("SIGKILL");
    await crashed.proc.wait();
    // (the server may take a moment to see the dead socket)
    let third: Awaited<ReturnType<typeof durableTransport>> | undefined;
    await waitUntil("the crashed holder's name to be free", async () => {
      third = await durableTransport(nc, { name: "solo" });
      return true;
    });
    await third!.close();
  } finally {
    await nc.close();
    await nc2.close();
  }
});

/** `transport`, telling `onDecline` each time a kept reply is asked to come again later. */
function declining(transport: Transport, onDecline: () => void): Transport {
  return {
    publish: (subject, data, options) => transport.publish(subject, data, options),
    subscribe: (subject, onMessage, options) =>
      transport.subscribe(subject, (message) => {
        const retryLater = message.retryLater;
        onMessage(
          retryLater === undefined ? message : {
            subject: message.subject,
            reply: message.reply,
            data: message.data,
            status: message.status,
            header: (name) => message.header(name),
            requestSubject: message.requestSubject,
            retryLater: () => {
              onDecline();
              retryLater.call(message);
            },
          },
        );
      }, options),
    maxPayload: transport.maxPayload,
    get connected() {
      return transport.connected !== false;
    },
    watch: (listener) => transport.watch!(listener),
    flush: () => transport.flush!(),
    inboxPrefix: transport.inboxPrefix!,
    keepsReplies: true,
    forget: (id, replied) => transport.forget!(id, replied),
  };
}

Deno.test("durable - storage is bounded: a reply no handler takes expires at maxAge", async () => {
  await using server = await jetstreamServer();
  const gate = Promise.withResolvers<void>();
  const back = await responders(server, gate.promise);
  const nc = await connect({ servers: server.wsUrl });
  try {
    const jsm = await nc.jetstreamManager();
    // The stream is made with this maxAge by the first instance.
    const setup = await durableTransport(nc, {
      name: "bounded",
      maxAge: 3_000,
      stream: "SHORT",
      prefix: "_SHORT",
      ackWait: ACK_WAIT,
    });
    await setup.close();
    const first = await requester(server, "bounded", "orphan", {
      maxAge: 3_000,
      stream: "SHORT",
      prefix: "_SHORT",
      ackWait: ACK_WAIT,
    });
    // Answered once the requester is gone: its reply is kept for the next instance.
    await waitUntil("the request to arrive", () => Promise.resolve(back.received === 1));
    first.proc.child.kill("SIGKILL");
    await first.proc.wait();
    gate.resolve();
    await waitUntil(
      "the reply to be kept",
      async () => (await jsm.streams.info("SHORT")).state.last_seq >= 1,
    );
    const transport = await durableTransport(nc, {
      name: "bounded",
      maxAge: 3_000,
      stream: "SHORT",
      prefix: "_SHORT",
      ackWait: ACK_WAIT,
    });
    // No handler for its contract: it is delivered, declined (kept for later), and stays
    // stored until the stream drops it at maxAge.
    let declined = 0;
    const endpoint = new Endpoint(
      declining(transport, () => declined++),
      { logErrors: false },
    );
    await waitUntil("the reply to be delivered and declined", () => Promise.resolve(declined >= 1));
    assertEquals((await jsm.streams.info("SHORT")).state.messages, 1, "kept, not acknowledged");
    await waitUntil(
      "the stream to drop it",
      async () => (await jsm.streams.info("SHORT")).state.messages === 0,
      10_000,
    );
    await endpoint.close();
    await transport.close();
  } finally {
    await back.close();
    await nc.close();
  }
});

Deno.test("durable - without JetStream it fails at once, saying what to enable; bad options are refused", async () => {
  await using server = await startNatsServer();
  const nc = await connect({ servers: server.wsUrl });
  try {
    const error = await durableTransport(nc, { name: "x" }).catch((e) => e);
    assertInstanceOf(error, DurableError);
    assertEquals(error.reason, "no-jetstream");
    assert(/jetstream \{ store_dir/.test(error.message), error.message);
    await assertRejects(() => durableTransport(nc, { name: "a.b" }), TypeError, "name");
    await assertRejects(() => durableTransport(nc, { name: "x", maxAge: 5 }), RangeError, "maxAge");
  } finally {
    await nc.close();
  }
});

Deno.test("durable - alive, a reply settles its callback and is acknowledged; after a clean close with requests waiting, their replies reach the next instance", async () => {
  await using server = await jetstreamServer();
  const gate = Promise.withResolvers<void>();
  const back = await responders(server, gate.promise);
  const nc = await connect({ servers: server.wsUrl });
  try {
    const transport = await durableTransport(nc, { name: "shop", ackWait: ACK_WAIT });
    const endpoint = new Endpoint(transport);
    const live = endpoint.request(PlaceOrder, { sku: "L-1", qty: 1 });
    gate.resolve();
    assertEquals(await live, { orderId: "L-1x1", eta: 2 });
    await acknowledged(nc, "shop");
    // A clean shutdown while a request waits: the callback rejects, the reply is kept.
    await back.close(); // only the slow responders answer from here
    const held = Promise.withResolvers<void>();
    const slow = await responders(server, held.promise);
    const waiting = endpoint.request(Approve, { orderId: "o-9" }).catch((e) => e);
    await waitUntil("the request to arrive", () => Promise.resolve(slow.received === 1));
    await endpoint.close();
    await transport.close();
    assertEquals((await waiting).name, "ClosedError");
    held.resolve();
    await waitUntil(
      "the reply to be kept",
      async () => (await consumerState(nc, "shop")).pending === 1,
    );
    const next = await durableTransport(nc, { name: "shop", ackWait: ACK_WAIT });
    const again = new Endpoint(next);
    const got = collect(again);
    await waitUntil("the recovered reply", () => Promise.resolve(got.length === 1));
    assertEquals([got[0]?.subject, got[0]?.value, got[0]?.info.recovered], [
      "orders.approve",
      "Approved",
      true,
    ]);
    await again.close();
    await next.close();
    await slow.close();
  } finally {
    gate.resolve();
    await back.close();
    await nc.close();
  }
});

Deno.test("durable - takeExpired reports every expired request in one call; no-responders rejects at once; one endpoint per transport", async () => {
  await using server = await jetstreamServer();
  const nc = await connect({ servers: server.wsUrl });
  try {
    const transport = await durableTransport(nc, { name: "many", ackWait: ACK_WAIT });
    const endpoint = new Endpoint(transport);
    // Nobody listens: the server's status reaches the endpoint, as on a plain one.
    await assertRejects(() => endpoint.request(CheckStock, { sku: "x" }), NoRespondersError);
    assertThrows(() => new Endpoint(transport), TypeError, "already serves an endpoint");
    // A silent responder: five requests wait, then the endpoint closes (records kept).
    const silentNc = await connect({ servers: server.wsUrl });
    let heard = 0;
    silentNc.subscribe(CheckStock.subject, { callback: () => void heard++ });
    await silentNc.flush();
    const waiting = Array.from(
      { length: 5 },
      (_, i) => endpoint.request(CheckStock, { sku: `s${i}` }, { timeout: 1_000 }).catch((e) => e),
    );
    // Sent (each after its record is stored), then the endpoint closes.
    await waitUntil("the requests to be sent", () => Promise.resolve(heard === 5));
    await endpoint.close();
    await Promise.all(waiting);
    await transport.close();
    await silentNc.close();
    const next = await durableTransport(nc, { name: "many", ackWait: ACK_WAIT });
    let expired: ExpiredRequest[] = [];
    await waitUntil("their deadlines", async () => (expired = await next.takeExpired()).length > 0);
    assertEquals(expired.length, 5, "all of them at once");
    assertEquals(await next.takeExpired(), []);
    await next.close();
  } finally {
    await nc.close();
  }
});

Deno.test("durable - closing while replies arrive loses none: the next instance gets them all", async () => {
  await using server = await jetstreamServer();
  const gate = Promise.withResolvers<void>();
  const back = await responders(server, gate.promise);
  const nc = await connect({ servers: server.wsUrl });
  try {
    const transport = await durableTransport(nc, { name: "busy", ackWait: ACK_WAIT });
    const endpoint = new Endpoint(transport, { logErrors: false });
    const count = 20;
    const waiting = Array.from(
      { length: count },
      (_, i) => endpoint.request(PlaceOrder, { sku: `b${i}`, qty: 1 }).catch(() => {}),
    );
    await waitUntil("the responders to have them", () => Promise.resolve(back.received === count));
    gate.resolve(); // the replies come while the endpoint closes
    await endpoint.close();
    await transport.close();
    await Promise.all(waiting);
    const next = await durableTransport(nc, { name: "busy", ackWait: ACK_WAIT });
    const again = new Endpoint(next);
    const got = collect(again);
    await waitUntil("every reply", () => Promise.resolve(got.length === count), 10_000);
    assertEquals(new Set(got.map((g) => g.info.id)).size, count, "each once");
    await acknowledged(nc, "busy");
    await again.close();
    await next.close();
  } finally {
    gate.resolve();
    await back.close();
    await nc.close();
  }
});

Deno.test("durable - a reply no handler takes yet comes back after 1 s, then 2, 4… up to a minute", () => {
  // nats.ws counts deliveries in redeliveryCount: 1 the first time
  assertEquals([1, 2, 3, 4, 6, 7, 8, 50].map(retryLaterMs), [
    1_000,
    2_000,
    4_000,
    8_000,
    32_000,
    60_000,
    60_000,
    60_000,
  ]);
});
