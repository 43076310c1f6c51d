/**
 * `@seed/callbacks/micro` against a real nats-server, seen through the
 * official NATS micro client (`@nats-io/services`): discovery by name and by
 * id, every field of PING, INFO and STATS, counters after a known mix,
 * reset, two instances, stop, a service of the official library on the same
 * subject, and the published JSON Schemas checked by a standard validator.
 */

import * as v from "valibot";
import { Svcm } from "./deps/services.ts";
import { Ajv } from "./deps/ajv.ts";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  ClosedError,
  defineRequest,
  DisconnectedError,
  Endpoint,
  int,
  memoryTransport,
  type NatsConnectionLike,
  natsTransport,
  NoRespondersError,
  RemoteError,
  ReplyError,
  type Schema,
} from "../mod.ts";
import { addService, type EndpointStats, type Service, type ServiceStats } from "../micro.ts";
import { MAX_SERVICE_NAME } from "../src/micro/protocol.ts";
import { connectCore, connectWs } from "./helpers/connect.ts";
import { Approve, CheckStock, PlaceOrder } from "./helpers/contract_suite.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { waitUntil } from "./helpers/wait.ts";

type CoreConnection = Awaited<ReturnType<typeof connectCore>>;
type SvcmConnection = ConstructorParameters<typeof Svcm>[0];

/** The official client's answers to one discovery request, all of them. */
async function discover<T>(
  nc: CoreConnection,
  verb: "ping" | "info" | "stats",
  name?: string,
  id?: string,
): Promise<T[]> {
  // The services package pins a prerelease of nats-core: its connection type differs by
  // version only; the connection is the same at run time.
  const client = new Svcm(nc as unknown as SvcmConnection).client();
  const found: T[] = [];
  try {
    for await (const answer of await client[verb](name, id)) found.push(answer as T);
  } catch (error) {
    // Nobody answers: the server says "no responders".
    if (!/no responders|503/i.test(String((error as Error)?.message ?? error))) throw error;
  }
  return found;
}

/** The STATS entry of a CheckStock endpoint that has served nothing (yet, or since a reset). */
function unused(name: string): EndpointStats {
  return {
    name,
    subject: "stock.check",
    queue_group: "q",
    num_requests: 0,
    num_errors: 0,
    last_error: "",
    processing_time: 0,
    average_processing_time: 0,
  };
}

/** A nats-server, a service connection (nats.ws) and a tooling connection (nats-core). */
async function setup(): Promise<
  AsyncDisposable & {
    server: NatsServer;
    nc: Awaited<ReturnType<typeof connectWs>>;
    endpoint: Endpoint;
    tool: CoreConnection;
  }
> {
  const server = await startNatsServer();
  const nc = await connectWs(server);
  const tool = await connectCore(server);
  const endpoint = new Endpoint(natsTransport(nc));
  return {
    server,
    nc,
    endpoint,
    tool,
    async [Symbol.asyncDispose]() {
      await endpoint.close();
      await Promise.all([nc.close(), tool.close()]);
      await server.stop();
    },
  };
}

Deno.test("micro - the official client finds the service by name and by id, every field filled", async () => {
  await using fx = await setup();
  const svc = await addService(fx.endpoint, {
    name: "inventory",
    version: "1.2.0-rc.1+build.5",
    description: "Stock levels",
    metadata: { team: "stock" },
  });
  svc.handle(CheckStock, () => 5, { name: "check-stock" });
  svc.handle(Approve, () => "Approved", { metadata: { owner: "orders" } });
  await svc.handle(PlaceOrder, () => ({ orderId: "o-1", eta: 3 }), { queue: false }).ready;
  assertMatch(svc.id, /^[0-9A-Za-z]{22}$/);

  const identity = {
    name: "inventory",
    id: svc.id,
    version: "1.2.0-rc.1+build.5",
    metadata: { team: "stock" },
  };
  const ping = { ...identity, type: "io.nats.micro.v1.ping_response" };
  assertEquals(await discover(fx.tool, "ping"), [ping]);
  assertEquals(await discover(fx.tool, "ping", "inventory"), [ping]);
  assertEquals(await discover(fx.tool, "ping", "inventory", svc.id), [ping]);
  assertEquals(await discover(fx.tool, "ping", "other"), []);
  assertEquals(await discover(fx.tool, "ping", "inventory", "not-this-one"), []);

  const [info] = await discover<Record<string, unknown>>(fx.tool, "info", "inventory", svc.id);
  assertEquals(info, svc.info() as unknown as Record<string, unknown>);
  const { endpoints, ...rest } = info as { endpoints: Record<string, unknown>[] };
  assertEquals(rest, {
    ...identity,
    type: "io.nats.micro.v1.info_response",
    description: "Stock levels",
  });
  assertEquals(endpoints.map(({ metadata: _, ...e }) => e), [
    { name: "check-stock", subject: "stock.check", queue_group: "q" },
    // The default name is made from the subject.
    { name: "orders-approve", subject: "orders.approve", queue_group: "q" },
    // No queue group: every instance answers.
    { name: "orders-place", subject: "orders.place", queue_group: "" },
  ]);
  const metadata = endpoints.map((e) => e.metadata as Record<string, string>);
  assertEquals(metadata.map((m) => m.kind), ["int", "enum", "object"]);
  assertEquals(metadata[1]!.owner, "orders");
  for (const m of metadata) {
    assertEquals(Object.keys(m).filter((key) => key.endsWith("_schema")).sort(), [
      "request_schema",
      "response_schema",
    ]);
    for (const value of Object.values(m)) assertStrictEquals(typeof value, "string");
  }

  const [stats] = await discover<ServiceStats>(fx.tool, "stats", "inventory");
  assertEquals(stats, svc.stats());
  assertEquals(stats!.type, "io.nats.micro.v1.stats_response");
  assert(!Number.isNaN(Date.parse(stats!.started)) && stats!.started.endsWith("Z"));
  assertEquals(stats!.endpoints[0], unused("check-stock"));
  await svc.stop();
});

Deno.test("micro - stats count every request and error reply, with last_error and nanoseconds", async () => {
  await using fx = await setup();
  await using caller = new Endpoint(natsTransport(fx.tool as unknown as NatsConnectionLike));
  const svc = await addService(fx.endpoint, { name: "inventory", version: "1.0.0" });
  let reported = 0;
  fx.endpoint.addEventListener("error", (event) => {
    event.preventDefault();
    reported++;
  });
  await svc.handle(CheckStock, async ({ sku }) => {
    if (sku === "boom") throw new Error("a bug");
    if (sku === "slow") await new Promise((resolve) => setTimeout(resolve, 20));
    if (sku === "gone") throw new ReplyError(409, "out of stock");
    if (sku === "wrong") return 1.5; // against the contract: 500
    return 5;
  }).ready;

  for (const sku of ["a", "b", "slow"]) assertEquals(await caller.request(CheckStock, { sku }), 5);
  const failures: [string, number][] = [["boom", 500], ["wrong", 500], ["gone", 409]];
  for (const [sku, code] of failures) {
    const error = await caller.request(CheckStock, { sku }).catch((e) => e);
    assertInstanceOf(error, RemoteError);
    assertEquals(error.code, code);
  }
  // An invalid request, from a plain NATS client: answered 400, counted.
  const bad = await fx.tool.request("stock.check", "not json", { timeout: 5_000 });
  assertEquals(bad.headers?.get("Nats-Service-Error-Code"), "400");
  // The 409 again, last, so last_error names it.
  await caller.request(CheckStock, { sku: "gone" }).catch(() => {});

  const [remote] = await discover<ServiceStats>(fx.tool, "stats", "inventory", svc.id);
  const local = svc.stats();
  assertEquals(remote, local);
  const [counted] = local.endpoints;
  assertEquals(counted!.num_requests, 8);
  assertEquals(counted!.num_errors, 5);
  assertEquals(counted!.last_error, "409:out of stock");
  assert(Number.isInteger(counted!.processing_time));
  // The slow handler awaited 20 ms: the time covers the whole handler run.
  assert(counted!.processing_time >= 15_000_000, `${counted!.processing_time} ns`);
  assertEquals(
    counted!.average_processing_time,
    Math.floor(counted!.processing_time / counted!.num_requests),
  );
  assertEquals(reported, 2, "the handler's bug and its reply against the contract");

  const before = local.started;
  // a reset a millisecond later at least, so that its start differs
  await waitUntil(
    "the clock to pass the start",
    () => Promise.resolve(new Date().toISOString() > before),
  );
  svc.reset();
  const [zeroed] = await discover<ServiceStats>(fx.tool, "stats", "inventory");
  assertEquals(zeroed!.endpoints[0], unused("stock-check"));
  assert(Date.parse(zeroed!.started) > Date.parse(before), "reset restarts the clock");
  assertStrictEquals(caller.pending, 0);
  await svc.stop();
});

Deno.test("micro - two instances of a service are both discovered and share requests through the queue group", async () => {
  await using fx = await setup();
  const otherNc = await connectWs(fx.server);
  await using other = new Endpoint(natsTransport(otherNc));
  await using caller = new Endpoint(natsTransport(fx.tool as unknown as NatsConnectionLike));
  try {
    const first = await addService(fx.endpoint, { name: "inventory", version: "1.0.0" });
    const second = await addService(other, { name: "inventory", version: "1.0.0" });
    assertNotEquals(first.id, second.id);
    await first.handle(CheckStock, () => 1).ready;
    await second.handle(CheckStock, () => 2).ready;
    const pings = await discover<{ id: string }>(fx.tool, "ping", "inventory");
    assertEquals(pings.map((p) => p.id).sort(), [first.id, second.id].sort());
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => caller.request(CheckStock, { sku: `s${i}` })),
    );
    const counts = [first, second].map((s) => s.stats().endpoints[0]!.num_requests);
    assertEquals(counts[0]! + counts[1]!, 60, "each request served once");
    assertEquals(answers.filter((a) => a === 1).length, counts[0]);
    assert(counts[0]! > 0 && counts[1]! > 0, `both served: ${counts}`);
    const stats = await discover<ServiceStats>(fx.tool, "stats", "inventory");
    assertEquals(stats.length, 2);
    await Promise.all([first.stop(), second.stop()]);
  } finally {
    await other.close();
    await otherNc.close();
  }
});

Deno.test("micro - stop() removes the service from discovery and stops its handlers; the endpoint stays open", async () => {
  await using fx = await setup();
  await using caller = new Endpoint(natsTransport(fx.tool as unknown as NatsConnectionLike));
  const svc = await addService(fx.endpoint, { name: "inventory", version: "1.0.0" });
  let aborted: unknown;
  const started = Promise.withResolvers<void>();
  await svc.handle(CheckStock, async (_body, { signal }) => {
    started.resolve();
    await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    aborted = signal.reason;
    return 0;
  }).ready;
  const inFlight = caller.request(CheckStock, { sku: "a" });
  await started.promise;
  assertEquals((await discover(fx.tool, "ping", "inventory")).length, 1);
  await svc.stop();
  await svc.stop(); // idempotent
  assert(svc.stopped);
  assertInstanceOf(aborted, ClosedError);
  assertEquals(await inFlight, 0, "the running handler still answered");
  assertEquals(await discover(fx.tool, "ping"), []);
  assertEquals(await discover(fx.tool, "info", "inventory", svc.id), []);
  await assertRejects(() => caller.request(CheckStock, { sku: "a" }), NoRespondersError);
  assertThrows(() => svc.handle(Approve, () => "Approved"), ClosedError, "stopped");
  assert(!fx.endpoint.closed);
  // The endpoint can handle the subject again, outside any service.
  await fx.endpoint.handle(CheckStock, () => 9).ready;
  assertEquals(await caller.request(CheckStock, { sku: "a" }), 9);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("micro - closing the endpoint stops its services", async () => {
  await using fx = await setup();
  const svc = await addService(fx.endpoint, { name: "inventory", version: "1.0.0" });
  svc.handle(CheckStock, () => 1);
  await fx.endpoint.close();
  assert(svc.stopped);
  assertEquals(svc.info().endpoints, []);
  // The unsubscriptions reach the server before a round trip on the same connection ends.
  await fx.nc.flush();
  assertEquals(await discover(fx.tool, "ping", "inventory"), []);
  await assertRejects(
    () => addService(fx.endpoint, { name: "inventory", version: "1.0.0" }),
    ClosedError,
    "closed",
  );
});

Deno.test("micro - a service of the official library and one of ours share a subject: each request answered once", async () => {
  await using fx = await setup();
  const theirsNc = await connectCore(fx.server);
  await using caller = new Endpoint(natsTransport(fx.tool as unknown as NatsConnectionLike));
  try {
    const theirs = await new Svcm(theirsNc as unknown as SvcmConnection).add({
      name: "inventory",
      version: "1.0.0",
    });
    theirs.addEndpoint("check-stock", {
      subject: CheckStock.subject,
      handler: (_error, msg) => void msg.respond("7"),
    });
    const ours = await addService(fx.endpoint, { name: "inventory", version: "1.0.0" });
    await ours.handle(CheckStock, () => 5, { name: "check-stock" }).ready;
    await theirsNc.flush();
    let late = 0;
    caller.addEventListener("late-reply", () => late++);
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => caller.request(CheckStock, { sku: `s${i}` })),
    );
    await caller.request(CheckStock, { sku: "last" });
    assertEquals(late, 0, "no request was answered twice");
    assert(answers.includes(5) && answers.includes(7), `both answered: ${new Set(answers)}`);
    const stats = await discover<ServiceStats>(fx.tool, "stats", "inventory");
    const served = stats.map((s) => s.endpoints[0]!.num_requests);
    assertEquals(served.length, 2, "both instances discovered");
    assertEquals(served[0]! + served[1]!, 61);
    await Promise.all([theirs.stop(), ours.stop()]);
  } finally {
    await theirsNc.close();
  }
});

Deno.test("micro - the published JSON Schemas pass good bodies and refuse bad ones in a standard validator", async () => {
  await using endpoint = new Endpoint(memoryTransport());
  await using svc = await addService(endpoint, { name: "shop", version: "1.0.0" });
  svc.handle(CheckStock, () => 1);
  svc.handle(Approve, () => "Approved");
  svc.handle(PlaceOrder, () => ({ orderId: "o", eta: 1 }));
  const ajv = new Ajv({ strict: false });
  const schemas = (name: string) => {
    const metadata = svc.info().endpoints.find((e) => e.name === name)!.metadata;
    return {
      request: ajv.compile(JSON.parse(metadata.request_schema!)),
      response: ajv.compile(JSON.parse(metadata.response_schema!)),
    };
  };
  const stock = schemas("stock-check");
  assert(stock.request({ sku: "A-1" }));
  assert(!stock.request({ sku: 1 }) && !stock.request({}) && !stock.request("A-1"));
  assert(stock.response(5) && stock.response(-3) && stock.response(Number.MAX_SAFE_INTEGER));
  assert(!stock.response(1.5) && !stock.response("5") && !stock.response(2 ** 53));

  const approve = schemas("orders-approve");
  assert(approve.request({ orderId: "A" }) && !approve.request({ orderId: null }));
  assert(approve.response("Approved") && approve.response("Rejected"));
  assert(!approve.response("Maybe") && !approve.response(0));

  const place = schemas("orders-place");
  // qty is an integer of at least 1 in the contract: its checks are in the schema too.
  assert(place.request({ sku: "A", qty: 2 }));
  assert(!place.request({ sku: "A", qty: 0 }) && !place.request({ sku: "A", qty: 1.5 }));
  assert(!place.request({ sku: "A" }));
  assert(place.response({ orderId: "o-1", eta: 3 }));
  assert(!place.response({ orderId: "o-1" }) && !place.response({ orderId: 1, eta: 3 }));
});

Deno.test("micro - a schema JSON Schema cannot express is left out; the endpoint still serves", async () => {
  const Custom = defineRequest({
    subject: "custom.check",
    request: v.object({ at: v.date() }),
    response: int(),
  });
  // A Standard Schema of another library, without a JSON Schema of its own.
  const foreign: Schema = {
    "~standard": {
      version: 1,
      vendor: "other",
      validate: (value: unknown) => ({ value }),
    },
  } as Schema;
  // One that publishes its own (Standard JSON Schema).
  const described = {
    "~standard": {
      version: 1,
      vendor: "described",
      validate: (value: unknown) => ({ value }),
      jsonSchema: { input: () => ({ type: "object", title: "own" }) },
    },
  } as unknown as Schema;
  const Foreign = defineRequest({ subject: "foreign.check", request: foreign, response: int() });
  const Described = defineRequest({ subject: "own.check", request: described, response: int() });
  await using endpoint = new Endpoint(memoryTransport());
  await using svc = await addService(endpoint, { name: "odd", version: "0.1.0" });
  svc.handle(Custom, () => 1);
  svc.handle(Foreign, () => 2);
  svc.handle(Described, () => 3);
  const [custom, other, own] = svc.info().endpoints.map((e) => e.metadata);
  assertEquals(custom, { kind: "int", response_schema: custom!.response_schema! });
  assertEquals(other, { kind: "int", response_schema: other!.response_schema! });
  assertEquals(JSON.parse(own!.request_schema!), { type: "object", title: "own" });
  assertEquals(await endpoint.request(Foreign, {}), 2);
});

Deno.test("micro - names, versions and metadata the protocol forbids are clear errors, and nothing else breaks", async () => {
  await using endpoint = new Endpoint(memoryTransport());
  const good = { name: "inventory", version: "1.0.0" };
  for (const name of ["", "in ventory", "a.b", "a*", "ünï", 3, undefined]) {
    await assertRejects(
      () => addService(endpoint, { ...good, name: name as string }),
      TypeError,
      "letters, digits",
    );
  }
  for (const version of ["", "1.0", "v1.0.0", "01.0.0", "1.0.0-", 1]) {
    await assertRejects(
      () => addService(endpoint, { ...good, version: version as string }),
      TypeError,
      "semantic version",
    );
  }
  for (const metadata of [{ team: 1 }, ["a"], "team", null]) {
    await assertRejects(
      () => addService(endpoint, { ...good, metadata: metadata as never }),
      TypeError,
      "string values",
    );
  }
  await assertRejects(
    () => addService(endpoint, { ...good, description: 5 as unknown as string }),
    TypeError,
    "description",
  );
  await assertRejects(
    () => addService({} as Endpoint, good),
    TypeError,
    "needs an Endpoint",
  );
  await assertRejects(() => addService(endpoint, null as never), TypeError, "name, version");

  await using svc: Service = await addService(endpoint, good);
  assertThrows(
    () => svc.handle(CheckStock, () => 1, { name: "check stock" }),
    TypeError,
    "letters",
  );
  svc.handle(CheckStock, () => 1, { name: "check" });
  assertThrows(
    () => svc.handle(Approve, () => "Approved", { name: "check" }),
    TypeError,
    "already has an endpoint named check",
  );
  assertThrows(
    () => svc.handle(Approve, () => "Approved", { metadata: { kind: "x" } }),
    TypeError,
    "kind is the service's own",
  );
  assertThrows(
    () => svc.handle(Approve, () => "Approved", { queue: "a b" }),
    TypeError,
    "queue",
  );
  // Nothing half-registered: the refused names are free, and the service still serves.
  svc.handle(Approve, () => "Approved");
  assertEquals(svc.info().endpoints.map((e) => e.name), ["check", "orders-approve"]);
  assertEquals(await endpoint.request(CheckStock, { sku: "a" }), 1);
  assertEquals(await endpoint.request(Approve, { orderId: "a" }), "Approved");
  assertEquals(svc.stats().endpoints.map((e) => e.num_requests), [1, 1]);
});

Deno.test("micro - an endpoint's registration stops it alone, and the discovery subjects answer nothing without a reply subject", async () => {
  const transport = memoryTransport();
  await using endpoint = new Endpoint(transport);
  await using svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
  const check = svc.handle(CheckStock, () => 1);
  svc.handle(Approve, () => "Approved");
  check.stop();
  check.stop();
  assertEquals(svc.info().endpoints.map((e) => e.name), ["orders-approve"]);
  await assertRejects(() => endpoint.request(CheckStock, { sku: "a" }), NoRespondersError);
  // A PING published without a reply subject is ignored, not answered to "".
  transport.publish("$SRV.PING", new Uint8Array());
  assertEquals(await endpoint.request(Approve, { orderId: "a" }), "Approved");
  assert(!svc.stopped);
});

Deno.test("micro - a user who may not subscribe to $SRV gets the server's refusal from addService, and the endpoint still serves", async () => {
  await using server = await startNatsServer({
    config: `authorization { users: [ { user: "u", password: "p", permissions: {
      subscribe: { deny: ["$SRV.>"] } } } ] }`,
  });
  const nc = await connectWs(server, { user: "u", pass: "p" });
  try {
    await using endpoint = new Endpoint(natsTransport(nc));
    let reported = 0;
    endpoint.addEventListener("error", (event) => {
      event.preventDefault();
      reported++;
    });
    const refused = await addService(endpoint, { name: "inventory", version: "1.0.0" })
      .catch((e) => e);
    assertMatch(String(refused?.message), /permissions/i);
    assertEquals(reported, 1, "one error event for the nine refused subscriptions");
    // The endpoint still handles and answers.
    await endpoint.handle(CheckStock, () => 4).ready;
    assertEquals(await endpoint.request(CheckStock, { sku: "a" }), 4);
    await nc.close();
    // Once the connection is closed, addService says so.
    await assertRejects(
      () => addService(endpoint, { name: "inventory", version: "1.0.0" }),
      DisconnectedError,
    );
  } finally {
    await nc.close();
  }
});

Deno.test("micro - stop() while the server is down resolves at once, and the service is gone once it is back", async () => {
  await using server = await startNatsServer();
  const nc = await connectWs(server, { reconnectTimeWait: 50, maxReconnectAttempts: -1 });
  try {
    await using endpoint = new Endpoint(natsTransport(nc));
    const svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
    await svc.handle(CheckStock, () => 1).ready;
    const down = new Promise<void>((resolve) => {
      const unwatch = natsTransport(nc).watch!((status) => {
        if (status === "disconnect") {
          unwatch();
          resolve();
        }
      });
    });
    await server.kill();
    await down;
    await svc.stop();
    assert(svc.stopped);
    await server.restart();
    // The client is back (it has this subscription); the service's were not sent again.
    await endpoint.handle(Approve, () => "Approved").ready;
    const tool = await connectCore(server);
    try {
      assertEquals(await discover(tool, "ping", "inventory"), []);
    } finally {
      await tool.close();
    }
  } finally {
    await nc.close();
  }
});

Deno.test("micro - a name too long for the $SRV subjects is a RangeError; the longest allowed works on a real server", async () => {
  await using fx = await setup();
  const longest = "n".repeat(MAX_SERVICE_NAME);
  await assertRejects(
    () => addService(fx.endpoint, { name: `${longest}n`, version: "1.0.0" }),
    RangeError,
    `at most ${MAX_SERVICE_NAME}`,
  );
  const svc = await addService(fx.endpoint, { name: longest, version: "1.0.0" });
  const [ping] = await discover<{ name: string }>(fx.tool, "ping", longest, svc.id);
  assertEquals(ping?.name, longest);
  await svc.stop();
  // The connection is as it was: a request still finds its responder.
  await fx.endpoint.handle(CheckStock, () => 2).ready;
  assertEquals(await fx.endpoint.request(CheckStock, { sku: "a" }), 2);
});

Deno.test("micro - metadata that is not a plain object of strings is refused, whatever it is", async () => {
  await using endpoint = new Endpoint(memoryTransport());
  const throwing = Object.defineProperty({}, "team", {
    enumerable: true,
    get() {
      throw new Error("boom");
    },
  });
  for (const metadata of [new Map([["team", "stock"]]), new Date(), throwing]) {
    await assertRejects(
      () =>
        addService(endpoint, { name: "inventory", version: "1.0.0", metadata: metadata as never }),
      TypeError,
      "plain object of string values",
    );
  }
  const bare = Object.assign(Object.create(null), { team: "stock" });
  await using svc = await addService(endpoint, {
    name: "inventory",
    version: "1.0.0",
    metadata: bare,
  });
  assertEquals(svc.ping().metadata, { team: "stock" });
});

Deno.test("micro - closing the endpoint while addService waits rejects it with ClosedError", async () => {
  await using fx = await setup();
  const adding = addService(fx.endpoint, { name: "inventory", version: "1.0.0" });
  await fx.endpoint.close();
  await assertRejects(() => adding, ClosedError, "closed");
});
