import * as v from "valibot";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
} from "@std/assert";
import {
  type ConnectionEvent,
  defineRequest,
  DisconnectedError,
  Endpoint,
  int,
  memoryTransport,
  natsTransport,
  type RequestEvent,
  type SettleEvent,
  TIMEOUT_HEADER,
} from "../mod.ts";
import { connectWs } from "./helpers/connect.ts";
import { startNatsServer } from "./helpers/nats_server.ts";
import { nextEvent, spy } from "./helpers/spy.ts";

const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});

function statuses(endpoint: Endpoint): string[] {
  const seen: string[] = [];
  endpoint.addEventListener("connection", (event: ConnectionEvent) => seen.push(event.status));
  return seen;
}

Deno.test("reconnect - a request made while disconnected is held, then sent with what is left of its budget", async () => {
  const bus = memoryTransport();
  const spied = spy(bus);
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(spied.transport);
  responder.handle(CheckStock, () => 7);
  const seen = statuses(caller);
  bus.disconnect();
  let requested = 0;
  caller.addEventListener("request", () => requested++);
  const promise = caller.request(CheckStock, { sku: "x" }, { timeout: 5_000 });
  await new Promise((resolve) => setTimeout(resolve, 30));
  assertEquals([caller.pending, requested, spied.published.length], [1, 0, 0]);
  bus.reconnect();
  assertEquals(await promise, 7);
  assertEquals(seen, ["disconnect", "reconnect"]);
  assertEquals(requested, 1);
  const budget = Number(spied.published[0]!.headers![TIMEOUT_HEADER]);
  assert(budget < 5_000 && budget > 4_000, `budget ${budget}`);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - a request held for its whole timeout fails with DisconnectedError, nothing sent", async () => {
  const bus = memoryTransport();
  const spied = spy(bus);
  await using caller = new Endpoint(spied.transport);
  bus.disconnect();
  const settled = nextEvent<SettleEvent>(caller, "settle");
  await assertRejects(
    () => caller.request(CheckStock, { sku: "x" }, { timeout: 40 }),
    DisconnectedError,
    "nothing was sent",
  );
  assertEquals((await settled).outcome, "disconnected");
  bus.reconnect();
  assertEquals(spied.published, []);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - an in-flight request lost across a disconnect fails with DisconnectedError at its deadline", async () => {
  const bus = memoryTransport();
  bus.subscribe("stock.check", () => {}); // received, never answered: as if the reply was lost
  await using caller = new Endpoint(bus);
  const promise = caller.request(CheckStock, { sku: "x" }, { timeout: 60 });
  bus.disconnect();
  bus.reconnect();
  await assertRejects(() => promise, DisconnectedError, "may or may not have been processed");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - a 503 just after a reconnect is retried until the responders are back", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus, { timeout: 10_000 });
  bus.disconnect();
  const sent: RequestEvent[] = [];
  caller.addEventListener("request", (event: RequestEvent) => sent.push(event));
  const promise = caller.request(CheckStock, { sku: "x" });
  bus.reconnect();
  // The responder's subscription comes back a little later than the caller's.
  await new Promise((resolve) => setTimeout(resolve, 120));
  responder.handle(CheckStock, () => 3);
  assertEquals(await promise, 3);
  assert(sent.length >= 2, `sent ${sent.length} times`);
  assertEquals(new Set(sent.map((e) => e.id)).size, 1, "the same request, sent again");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - nats-server killed and restarted: held requests go out, handlers keep answering", async () => {
  await using server = await startNatsServer();
  const options = { reconnectTimeWait: 50, maxReconnectAttempts: -1 } as const;
  const callerNc = await connectWs(server, options);
  const responderNc = await connectWs(server, options);
  try {
    await using responder = new Endpoint(natsTransport(responderNc));
    await using caller = new Endpoint(natsTransport(callerNc), { timeout: 10_000 });
    responder.handle(CheckStock, ({ sku }) => sku.length);
    await responderNc.flush();
    assertEquals(await caller.request(CheckStock, { sku: "ab" }), 2);

    const seen = statuses(caller);
    const down = nextEvent<ConnectionEvent>(caller, "connection");
    await server.kill();
    assertEquals((await down).status, "disconnect");
    const held = caller.request(CheckStock, { sku: "abc" });
    const short = caller.request(CheckStock, { sku: "x" }, { timeout: 50 });
    await assertRejects(() => short, DisconnectedError, "was down");
    const up = nextEvent<ConnectionEvent>(caller, "connection");
    await server.restart();
    assertEquals((await up).status, "reconnect");
    assertEquals(await held, 3, "held while down, answered after the restart");
    assertEquals(await caller.request(CheckStock, { sku: "abcd" }), 4);
    assertEquals(seen, ["disconnect", "reconnect"]);
    assertStrictEquals(caller.pending, 0);
  } finally {
    await callerNc.close();
    await responderNc.close();
  }
});

Deno.test("reconnect - closing the connection rejects everything pending with DisconnectedError at once", async () => {
  await using server = await startNatsServer();
  const nc = await connectWs(server);
  await using caller = new Endpoint(natsTransport(nc), { timeout: 20_000 });
  const blackHole = await connectWs(server);
  try {
    blackHole.subscribe("stock.check", { callback: () => {} });
    await blackHole.flush();
    const promise = caller.request(CheckStock, { sku: "x" });
    const closed = nextEvent<ConnectionEvent>(caller, "connection");
    await nc.close();
    assertInstanceOf(await promise.catch((e) => e), DisconnectedError);
    assertEquals((await closed).status, "close");
    assertStrictEquals(caller.pending, 0);
  } finally {
    await blackHole.close();
  }
});
