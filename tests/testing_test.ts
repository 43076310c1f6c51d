import * as v from "valibot";
import {
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  ClosedError,
  defineRequest,
  enumOf,
  int,
  InvalidReplyError,
  NoRespondersError,
  object,
  RemoteError,
  ReplyError,
  TimeoutError,
} from "../mod.ts";
import { CallbackStub } from "../testing.ts";

const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});
const Approve = defineRequest({
  subject: "orders.approve",
  request: v.object({ total: v.number() }),
  response: enumOf(["Approved", "Rejected"]),
});
const PlaceOrder = defineRequest({
  subject: "orders.place",
  request: v.object({ sku: v.string() }),
  response: object(v.object({ orderId: v.string() })),
});

Deno.test("testing - rules answer in order; the first match wins", async () => {
  await using stub = new CallbackStub();
  stub.when(CheckStock, ({ sku }) => sku === "A-1").reply(5)
    .when(CheckStock, ({ sku }) => sku.startsWith("A")).reply(1)
    .when(CheckStock).reply(0);
  const { endpoint } = stub;
  assertEquals(await endpoint.request(CheckStock, { sku: "A-1" }), 5);
  assertEquals(await endpoint.request(CheckStock, { sku: "A-2" }), 1);
  assertEquals(await endpoint.request(CheckStock, { sku: "B" }), 0);
  assertEquals(stub.bodiesOf(CheckStock), [{ sku: "A-1" }, { sku: "A-2" }, { sku: "B" }]);
  assertEquals(stub.unmatched, []);
  assertStrictEquals(endpoint.pending, 0);
});

Deno.test("testing - replies can be computed from the request, and delayed", async () => {
  await using stub = new CallbackStub();
  stub.when(Approve).reply(({ total }) => total > 100 ? "Rejected" : "Approved", { delay: 20 })
    .when(PlaceOrder).reply(({ sku }) => Promise.resolve({ orderId: `o-${sku}` }));
  assertEquals(await stub.endpoint.request(Approve, { total: 500 }), "Rejected");
  assertEquals(await stub.endpoint.request(Approve, { total: 5 }), "Approved");
  assertEquals(await stub.endpoint.request(PlaceOrder, { sku: "x" }), { orderId: "o-x" });
});

Deno.test("testing - a delayed answer arrives after an undelayed one requested later", async () => {
  await using stub = new CallbackStub();
  stub.when(CheckStock, ({ sku }) => sku === "slow").reply(1, { delay: 30 })
    .when(CheckStock, ({ sku }) => sku === "slow-fail").fail(new ReplyError(409, "later"), {
      delay: 30,
    })
    .when(CheckStock).reply(2);
  const order: string[] = [];
  const settled = (name: string, promise: Promise<unknown>) =>
    promise.then(() => order.push(name), () => order.push(name));
  // Requested in this order: were `delay` ignored, they would settle in it too.
  const slow = stub.endpoint.request(CheckStock, { sku: "slow" });
  const slowFail = stub.endpoint.request(CheckStock, { sku: "slow-fail" });
  const fast = stub.endpoint.request(CheckStock, { sku: "fast" });
  await Promise.all([settled("slow", slow), settled("slow-fail", slowFail), settled("fast", fast)]);
  assertEquals(order, ["fast", "slow", "slow-fail"]);
  assertEquals([await slow, await fast], [1, 2]);
  assertEquals((await assertRejects(() => slowFail, RemoteError)).code, 409);
});

Deno.test("testing - errors, no responders and silence reach the caller as over NATS", async () => {
  await using stub = new CallbackStub({ timeout: 50 });
  stub.when(CheckStock, ({ sku }) => sku === "404").fail(
    new ReplyError(404, "unknown sku", { data: { sku: "404" } }),
  )
    .when(CheckStock, ({ sku }) => sku === "none").noResponders()
    .when(CheckStock, ({ sku }) => sku === "slow").silence()
    .when(CheckStock, ({ sku }) => sku === "throw").reply(() => {
      throw new ReplyError(409, "busy");
    });
  const { endpoint } = stub;
  const remote = await assertRejects(
    () => endpoint.request(CheckStock, { sku: "404" }),
    RemoteError,
  );
  assertEquals([remote.code, remote.description, remote.data], [404, "unknown sku", {
    sku: "404",
  }]);
  await assertRejects(() => endpoint.request(CheckStock, { sku: "none" }), NoRespondersError);
  await assertRejects(() => endpoint.request(CheckStock, { sku: "slow" }), TimeoutError);
  const busy = await assertRejects(
    () => endpoint.request(CheckStock, { sku: "throw" }),
    RemoteError,
  );
  assertEquals(busy.code, 409);
  assertStrictEquals(endpoint.pending, 0);
});

Deno.test("testing - an unmatched request rejects at once with a clear error and is recorded", async () => {
  await using stub = new CallbackStub({ timeout: 20_000 });
  stub.when(CheckStock, ({ sku }) => sku === "A-1").reply(5);
  const error = await assertRejects(
    () => stub.endpoint.request(CheckStock, { sku: "B-2" }),
    RemoteError,
    'no rule matches stock.check {"sku":"B-2"}',
  );
  assertEquals(error.code, 501);
  await assertRejects(
    () => stub.endpoint.request(Approve, { total: 1 }),
    RemoteError,
    "orders.approve",
  );
  assertEquals(stub.unmatched.map((r) => r.subject), ["stock.check", "orders.approve"]);
  // The stub keeps answering what it knows.
  assertEquals(await stub.endpoint.request(CheckStock, { sku: "A-1" }), 5);
});

Deno.test("testing - a rule reply that breaks the contract answers 500 naming the rule, as handle() does", async () => {
  await using stub = new CallbackStub();
  stub.when(CheckStock).reply(1.5)
    .when(Approve).reply("Maybe" as "Approved")
    .when(PlaceOrder).reply(() => ({
      orderId: "o",
      toJSON() {
        throw new Error("no JSON");
      },
    }));
  for (
    const [request, rule] of [
      () => stub.endpoint.request(CheckStock, { sku: "x" }),
      () => stub.endpoint.request(Approve, { total: 1 }),
      () => stub.endpoint.request(PlaceOrder, { sku: "x" }),
    ].map((request, i) => [request, i + 1] as const)
  ) {
    const error = await assertRejects(request, RemoteError, `rule ${rule}`);
    assertEquals(error.code, 500);
    assertInstanceOf(stub.requests[rule - 1]!.error, InvalidReplyError);
  }
  // The string "3" is not an int: handle() would refuse it, and so does the stub.
  await using strict = new CallbackStub();
  strict.when(CheckStock).reply("3" as unknown as number);
  const error = await assertRejects(
    () => strict.endpoint.request(CheckStock, { sku: "s" }),
    RemoteError,
  );
  assertEquals(error.code, 500);
});

Deno.test("testing - bad rules are a TypeError or RangeError", async () => {
  await using stub = new CallbackStub();
  const rule = stub.when(CheckStock);
  rule.reply(1);
  assertThrows(() => rule.reply(2), TypeError, "a rule answers one way");
  assertThrows(() => stub.when(CheckStock).reply(1, { delay: -1 }), RangeError, "delay");
  assertThrows(
    () => stub.when(CheckStock).fail(new Error("x") as ReplyError),
    TypeError,
    "fail() takes a ReplyError",
  );
  // @ts-expect-error: not a contract
  assertThrows(() => stub.when({}), TypeError, "defineRequest");
  // A contract copied with a subject defineRequest would have refused: refused here too.
  const forged = { ...CheckStock, subject: "stock check" };
  assertThrows(() => stub.when(forged), TypeError, "is not a NATS subject");
  assertEquals(await stub.endpoint.request(CheckStock, { sku: "x" }), 1);
});

Deno.test("testing - disposing cancels delayed answers; pending callbacks reject", async () => {
  const stub = new CallbackStub();
  stub.when(CheckStock).reply(1, { delay: 60_000 });
  const promise = stub.endpoint.request(CheckStock, { sku: "x" });
  await stub[Symbol.asyncDispose]();
  await assertRejects(() => promise, ClosedError);
  assertStrictEquals(stub.endpoint.pending, 0);
});

Deno.test("testing - a matcher that throws answers 500 naming the rule; the exception is kept", async () => {
  await using stub = new CallbackStub();
  const boom = new TypeError("cannot read sku of undefined");
  stub.when(Approve).reply("Approved")
    .when(CheckStock, ({ sku }) => {
      if (sku === "bad") throw boom;
      return false;
    }).reply(1)
    .when(CheckStock).reply(2);
  const error = await assertRejects(
    () => stub.endpoint.request(CheckStock, { sku: "bad" }),
    RemoteError,
  );
  assertEquals(error.code, 500);
  assertEquals(
    error.description,
    "@seed/callbacks/testing: the matcher of rule 2 (when(stock.check)) threw: " +
      "TypeError: cannot read sku of undefined; it is stub.requests[0].error",
  );
  // Recorded under the rule's contract, not as unmatched; later rules were not tried.
  assertEquals(stub.requests.length, 1);
  assertStrictEquals(stub.requests[0]!.error, boom);
  assertStrictEquals(stub.requests[0]!.contract, CheckStock);
  assertEquals(stub.bodiesOf(CheckStock), [{ sku: "bad" }]);
  assertEquals(stub.unmatched, []);
  // The matcher returning normally lets the next rule answer; nothing is recorded as an error.
  assertEquals(await stub.endpoint.request(CheckStock, { sku: "ok" }), 2);
  assertEquals("error" in stub.requests[1]!, false);
  assertStrictEquals(stub.endpoint.pending, 0);
});

Deno.test("testing - a reply function that throws answers 500 naming the rule; a ReplyError is an answer", async () => {
  await using stub = new CallbackStub();
  const bug = new RangeError("no stock table");
  stub.when(CheckStock, ({ sku }) => sku === "bug").reply(() => {
    throw bug;
  })
    .when(CheckStock).reply(() => Promise.reject(new ReplyError(409, "busy")));
  const error = await assertRejects(
    () => stub.endpoint.request(CheckStock, { sku: "bug" }),
    RemoteError,
    "the reply function of rule 1 (when(stock.check)) threw: RangeError: no stock table",
  );
  assertEquals(error.code, 500);
  assertStrictEquals(stub.requests[0]!.error, bug);
  const busy = await assertRejects(
    () => stub.endpoint.request(CheckStock, { sku: "x" }),
    RemoteError,
  );
  assertEquals([busy.code, busy.description], [409, "busy"]);
  assertEquals("error" in stub.requests[1]!, false);
});

Deno.test("testing - a ReplyError from a reply function carries its data, as from a real responder", async () => {
  await using stub = new CallbackStub();
  stub.when(CheckStock).reply(() => {
    throw new ReplyError(409, "conflict", { data: { why: "reserved" } });
  });
  const error = await assertRejects(
    () => stub.endpoint.request(CheckStock, { sku: "x" }),
    RemoteError,
  );
  assertEquals([error.code, error.description, error.data], [409, "conflict", { why: "reserved" }]);
});

Deno.test("testing - a reply that cannot be encoded answers 500 naming the rule, not a crash", async () => {
  await using stub = new CallbackStub();
  stub.when(PlaceOrder).reply(() => ({ orderId: 1n }) as unknown as { orderId: string })
    .when(CheckStock).reply(() => {
      throw new ReplyError(409, "conflict", { data: { n: 2n } });
    });
  const error = await assertRejects(
    () => stub.endpoint.request(PlaceOrder, { sku: "x" }),
    RemoteError,
    "the reply of rule 1 (when(orders.place)) does not match the contract",
  );
  assertEquals(error.code, 500);
  assertInstanceOf(stub.requests[0]!.error, InvalidReplyError);
  const data = await assertRejects(
    () => stub.endpoint.request(CheckStock, { sku: "x" }),
    RemoteError,
    "the ReplyError data of rule 2 (when(stock.check)) could not be encoded",
  );
  assertEquals(data.code, 500);
  // The same for a rule's fail() whose data cannot be encoded.
  stub.when(Approve).fail(new ReplyError(409, "conflict", { data: { n: 3n } }));
  await assertRejects(
    () => stub.endpoint.request(Approve, { total: 1 }),
    RemoteError,
    "the ReplyError data of rule 3 (when(orders.approve)) could not be encoded",
  );
  assertInstanceOf(stub.requests[2]!.error, TypeError);
  // The stub keeps answering.
  const Later = defineRequest({ ...CheckStock, subject: "stock.later" });
  stub.when(Later).reply(4);
  assertEquals(await stub.endpoint.request(Later, { sku: "x" }), 4);
  assertEquals(stub.endpoint.pending, 0);
});
