import { headers as natsHeaders } from "nats.ws";
import { assert, assertEquals, assertRejects, assertStrictEquals } from "@std/assert";
import {
  DisconnectedError,
  Endpoint,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  InvalidRequestError,
  KIND_HEADER,
  natsTransport,
  RemoteError,
  TIMEOUT_HEADER,
} from "../mod.ts";
import { Approve, CheckStock, PlaceOrder } from "./helpers/contract_suite.ts";
import { natsFixture } from "./helpers/fixture.ts";

const text = (data: Uint8Array) => new TextDecoder().decode(data);
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("interop - a plain nats.ws requester gets int, enum and object replies from handle()", async () => {
  await using fx = await natsFixture();
  await using responder = new Endpoint(fx.responder);
  responder.handle(CheckStock, () => 5);
  responder.handle(Approve, () => "Approved");
  responder.handle(PlaceOrder, ({ sku }) => ({ orderId: sku, eta: 1.5 }));
  await fx.ready();

  const int = await fx.callerNc.request("stock.check", json({ sku: "A-1" }), { timeout: 5_000 });
  assertEquals([text(int.data), int.headers?.get(KIND_HEADER)], ["5", "int"]);
  const en = await fx.callerNc.request("orders.approve", json({ orderId: "o" }), {
    timeout: 5_000,
  });
  assertEquals([JSON.parse(text(en.data)), en.headers?.get(KIND_HEADER)], ["Approved", "enum"]);
  const obj = await fx.callerNc.request("orders.place", json({ sku: "A-1", qty: 1 }), {
    timeout: 5_000,
  });
  assertEquals(JSON.parse(text(obj.data)), { orderId: "A-1", eta: 1.5 });
  assertEquals(obj.headers?.get(KIND_HEADER), "object");
});

Deno.test("interop - a plain nats.ws requester gets a micro-style 400 for a bad body", async () => {
  await using fx = await natsFixture();
  await using responder = new Endpoint(fx.responder);
  responder.handle(PlaceOrder, () => ({ orderId: "o", eta: 1 }));
  await fx.ready();
  const reply = await fx.callerNc.request("orders.place", json({ sku: "A-1" }), { timeout: 5_000 });
  assertEquals(reply.headers?.get(ERROR_CODE_HEADER), "400");
  assert(reply.headers?.get(ERROR_HEADER).startsWith("invalid request: "));
});

Deno.test("interop - a plain nats.ws responder satisfies request() and sees the time budget", async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  const budgets: string[] = [];
  fx.responderNc.subscribe("stock.check", {
    callback: (_err, msg) => {
      budgets.push(msg.headers?.get(TIMEOUT_HEADER) ?? "", msg.headers?.get("X-Trace") ?? "");
      msg.respond(new TextEncoder().encode(String(JSON.parse(text(msg.data)).sku.length)));
    },
  });
  fx.responderNc.subscribe("orders.place", {
    callback: (_err, msg) => msg.respond(json({ orderId: "raw", eta: 2, note: "extra" })),
  });
  fx.responderNc.subscribe("orders.approve", {
    callback: (_err, msg) => msg.respond(json("Rejected")),
  });
  await fx.ready();
  assertStrictEquals(
    await caller.request(CheckStock, { sku: "ABCD" }, {
      timeout: 4_000,
      headers: { "X-Trace": "t-1", [TIMEOUT_HEADER]: "1" },
    }),
    4,
  );
  assertEquals(await caller.request(PlaceOrder, { sku: "x", qty: 1 }), { orderId: "raw", eta: 2 });
  assertEquals(await caller.request(Approve, { orderId: "o" }), "Rejected");
  assertEquals(budgets, ["4000", "t-1"], "the caller's headers travel; its budget wins");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("interop - a NATS micro error reply becomes a RemoteError with its JSON body", async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  fx.responderNc.subscribe("stock.check", {
    callback: (_err, msg) => {
      const h = natsHeaders();
      h.set(ERROR_HEADER, "out of stock");
      h.set(ERROR_CODE_HEADER, "409");
      msg.respond(json({ restock: "tomorrow" }), { headers: h });
    },
  });
  await fx.ready();
  const error = await assertRejects(() => caller.request(CheckStock, { sku: "x" }), RemoteError);
  assertEquals([error.code, error.description, error.data], [409, "out of stock", {
    restock: "tomorrow",
  }]);
});

Deno.test("interop - a closed connection rejects with DisconnectedError, nothing pending", async () => {
  await using fx = await natsFixture();
  const nc = fx.callerNc;
  await using caller = new Endpoint(natsTransport(nc));
  await nc.close();
  await assertRejects(
    () => caller.request(CheckStock, { sku: "x" }),
    DisconnectedError,
    "connection is closed",
  );
  assertStrictEquals(caller.pending, 0);
});

Deno.test("interop - a handler that gives up at the caller's deadline sends no reply", async () => {
  await using fx = await natsFixture();
  await using responder = new Endpoint(fx.responder);
  const gaveUp = Promise.withResolvers<void>();
  responder.handle(CheckStock, (_body, { signal }) =>
    new Promise<number>((_resolve, reject) => {
      signal.addEventListener("abort", () => {
        reject(signal.reason);
        gaveUp.resolve();
      }, { once: true });
    }));
  responder.handle(Approve, () => "Approved");
  await fx.ready();
  const inbox = `_INBOX.${crypto.randomUUID().replaceAll("-", "")}`;
  const received: string[] = [];
  const second = Promise.withResolvers<void>();
  fx.callerNc.subscribe(inbox, {
    callback: (_err, msg) => {
      received.push(msg.headers?.get(KIND_HEADER) ?? msg.headers?.get(ERROR_CODE_HEADER) ?? "?");
      second.resolve();
    },
  });
  const h = natsHeaders();
  h.set(TIMEOUT_HEADER, "50");
  fx.callerNc.publish("stock.check", json({ sku: "x" }), { reply: inbox, headers: h });
  await gaveUp.promise;
  // Replies from one responder connection arrive in order: had the first request been
  // answered, its reply would come before this one.
  fx.callerNc.publish("orders.approve", json({ orderId: "o" }), { reply: inbox });
  await second.promise;
  await fx.callerNc.flush();
  assertEquals(received, ["enum"]);
});

Deno.test("interop - max_payload counts headers; an oversized reply answers 500 at once", async () => {
  await using fx = await natsFixture({ config: "max_payload: 1024" });
  await using responder = new Endpoint(fx.responder);
  await using caller = new Endpoint(fx.caller, { timeout: 20_000 });
  responder.handle(PlaceOrder, ({ sku }) => ({ orderId: sku.repeat(100), eta: 1 }));
  await fx.ready();
  // 1014 bytes of body fit max_payload alone, not with the request's headers.
  const sku = "x".repeat(1014 - JSON.stringify({ sku: "", qty: 1 }).length);
  await assertRejects(
    () => caller.request(PlaceOrder, { sku, qty: 1 }),
    InvalidRequestError,
    "max_payload of 1024 bytes",
  );
  const error = await assertRejects(
    () => caller.request(PlaceOrder, { sku: "0123456789abcdef", qty: 1 }),
    RemoteError,
    "could not be sent",
  );
  assertEquals(error.code, 500);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("interop - a budget beyond what a timer holds means no early abort", async () => {
  await using fx = await natsFixture();
  await using responder = new Endpoint(fx.responder);
  responder.handle(CheckStock, async (_body, { signal, deadline }) => {
    await new Promise((resolve) => setTimeout(resolve, 30));
    return signal.aborted || deadline === undefined ? -1 : 1;
  });
  await fx.ready();
  const h = natsHeaders();
  h.set(TIMEOUT_HEADER, "99999999999");
  const reply = await fx.callerNc.request("stock.check", json({ sku: "x" }), {
    timeout: 5_000,
    headers: h,
  });
  assertEquals(text(reply.data), "1");
});

Deno.test("interop - close() leaves the caller's NATS connection open and its own subscriptions alone", async () => {
  await using fx = await natsFixture();
  const endpoint = new Endpoint(fx.caller);
  endpoint.handle(CheckStock, () => 1);
  const own = fx.callerNc.subscribe("app.own", { max: 1 });
  await endpoint.close();
  assertStrictEquals(fx.callerNc.isClosed(), false);
  assertStrictEquals(own.isClosed(), false);
  // The connection still carries the application's traffic.
  fx.responderNc.subscribe("app.echo", { callback: (_err, msg) => msg.respond(msg.data) });
  await fx.ready();
  const reply = await fx.callerNc.request("app.echo", json("still open"), { timeout: 5_000 });
  assertEquals(JSON.parse(text(reply.data)), "still open");
  own.unsubscribe();
});
