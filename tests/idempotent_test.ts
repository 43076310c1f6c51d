/**
 * Idempotent contracts: a request in flight when the connection drops is
 * sent again (same id) once it is back, and responders answer a repeated id
 * from memory instead of running the handler again. In memory, where a
 * drop is driven by hand; over a cluster with real failovers in
 * cluster_test.ts.
 */

import * as v from "valibot";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertStrictEquals,
  assertThrows,
} from "@std/assert";
import {
  defineRequest,
  DisconnectedError,
  Endpoint,
  int,
  memoryTransport,
  type RequestEvent,
  type Transport,
} from "../mod.ts";
import { waitUntil } from "./helpers/wait.ts";

const Reserve = defineRequest({
  subject: "stock.reserve",
  request: v.object({ sku: v.string() }),
  response: int(),
  idempotent: true,
});
const Charge = defineRequest({
  subject: "payments.charge",
  request: v.object({ sku: v.string() }),
  response: int(),
});

/**
 * The responder's side of a shared bus, blind to its drops: what it publishes
 * while the bus is down is lost, as a reply is lost in NATS when the caller's
 * server goes away while the responder's stays up.
 */
function blind(bus: Transport): Transport {
  return {
    publish: (subject, data, options) => bus.publish(subject, data, options),
    subscribe: (subject, onMessage, options) => bus.subscribe(subject, onMessage, options),
    maxPayload: bus.maxPayload,
  };
}

/**
 * A handler that waits for `release` and counts its runs; `answered` resolves
 * once its answer has been handed to the transport (or held).
 */
function gated() {
  const release = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  const state = { runs: 0 };
  const handler = async () => {
    state.runs++;
    started.resolve();
    await release.promise;
    finished.resolve();
    return 42;
  };
  // The responder publishes (or holds) the answer in the microtasks after the handler returns:
  // a macrotask after it finished, that is done.
  const answered = () =>
    finished.promise.then(() => new Promise((resolve) => setTimeout(resolve, 0)));
  return { release, started, answered, state, handler };
}

Deno.test("idempotent - a reply lost in a drop: the request is sent again with the same id and answered from memory", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(blind(bus));
  await using caller = new Endpoint(bus);
  const { release, started, answered, state, handler } = gated();
  responder.handle(Reserve, handler);
  const ids: string[] = [];
  caller.addEventListener("request", (e: RequestEvent) => ids.push(e.id));
  const reply = caller.request(Reserve, { sku: "A-1" }, { timeout: 5_000 });
  await started.promise;
  bus.disconnect();
  release.resolve();
  // The handler answers while the connection is down: the answer is lost.
  await answered();
  assertEquals(caller.pending, 1);
  bus.reconnect();
  assertEquals(await reply, 42);
  assertEquals(ids.length, 2, "sent twice");
  assertEquals(ids[0], ids[1], "with the same id");
  assertEquals(state.runs, 1, "the handler ran once");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("idempotent - a repeat that arrives while the first run is going waits for that run's answer", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(blind(bus));
  await using caller = new Endpoint(bus);
  const { release, started, state, handler } = gated();
  responder.handle(Reserve, handler);
  let late = 0;
  caller.addEventListener("late-reply", () => late++);
  const repeated = Promise.withResolvers<void>();
  const sent: string[] = [];
  caller.addEventListener("request", (e: RequestEvent) => {
    sent.push(e.id);
    if (sent.length === 2) repeated.resolve();
  });
  const reply = caller.request(Reserve, { sku: "A-1" }, { timeout: 5_000 });
  await started.promise;
  bus.disconnect();
  bus.reconnect(); // the request goes out again while the handler still runs
  await repeated.promise;
  await new Promise((resolve) => setTimeout(resolve, 0)); // the bus delivers the repeat
  release.resolve();
  assertEquals(await reply, 42);
  assertEquals(state.runs, 1, "the handler ran once");
  // A reply to the repeat would be a second message on the same subject: a round trip later.
  assertEquals(await caller.request(Reserve, { sku: "after" }), 42);
  assertEquals([late, sent[0] === sent[1]], [0, true], "one answer for both, to one request");
});

Deno.test("idempotent - a non-idempotent request in flight during a drop is not sent again: DisconnectedError at its deadline", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(blind(bus));
  await using caller = new Endpoint(bus);
  const { release, started, answered, state, handler } = gated();
  responder.handle(Charge, handler);
  let sent = 0;
  caller.addEventListener("request", () => sent++);
  const reply = caller.request(Charge, { sku: "A-1" }, { timeout: 300 }).catch((e) => e);
  await started.promise;
  bus.disconnect();
  release.resolve();
  await answered(); // lost while the connection is down
  bus.reconnect();
  const error = await reply;
  assertInstanceOf(error, DisconnectedError);
  assert(/may or may not have been processed/.test(error.message), error.message);
  assertEquals([sent, state.runs], [1, 1]);
});

Deno.test("idempotent - answers are remembered per request: distinct requests run the handler each", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus);
  let runs = 0;
  responder.handle(Reserve, () => ++runs);
  const replies = await Promise.all([1, 2, 3].map(() => caller.request(Reserve, { sku: "x" })));
  assertEquals(replies.sort(), [1, 2, 3]);
  assertEquals(runs, 3);
});

Deno.test("idempotent - defineRequest refuses a non-boolean idempotent", () => {
  assertThrows(
    () =>
      defineRequest({
        subject: "a.b",
        request: v.string(),
        response: int(),
        idempotent: "yes" as unknown as boolean,
      }),
    TypeError,
    "idempotent must be true or false",
  );
  assertEquals(Reserve.idempotent, true);
  assertEquals(Charge.idempotent, false);
});

Deno.test("idempotent - a responder's answer made while its own connection is down goes out once it is back", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus);
  const { release, started, answered, state, handler } = gated();
  responder.handle(Charge, handler);
  let sent = 0;
  caller.addEventListener("request", () => sent++);
  const reply = caller.request(Charge, { sku: "A-1" }, { timeout: 5_000 });
  await started.promise;
  bus.disconnect();
  release.resolve();
  await answered(); // held by the responder while its connection is down
  bus.reconnect();
  // Not idempotent, so not sent again: the responder held its answer and sent it.
  assertEquals(await reply, 42);
  assertEquals([sent, state.runs], [1, 1]);
});

Deno.test("idempotent - a plain NATS client reusing one reply subject for different requests is not answered from memory", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  const bodies: string[] = [];
  responder.handle(Reserve, ({ sku }) => {
    bodies.push(sku);
    return sku.length;
  });
  const answers: string[] = [];
  const inbox = bus.subscribe("plain.inbox", (m) => answers.push(new TextDecoder().decode(m.data)));
  try {
    for (const sku of ["a", "abcdef"]) {
      bus.publish(Reserve.subject, new TextEncoder().encode(JSON.stringify({ sku })), {
        reply: "plain.inbox",
      });
    }
    await waitUntil("both answers", () => Promise.resolve(answers.length === 2));
    assertEquals(bodies, ["a", "abcdef"]);
    assertEquals(answers, ["1", "6"]);
  } finally {
    inbox.unsubscribe();
  }
});
