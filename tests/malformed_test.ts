/**
 * Malformed replies from a raw nats.ws responder: each gives a typed error,
 * never pollutes prototypes, never stops the endpoint from working.
 */

import { headers as natsHeaders, type MsgHdrs } from "nats.ws";
import * as v from "valibot";
import { assertEquals, assertInstanceOf, assertStrictEquals } from "@std/assert";
import {
  defineRequest,
  Endpoint,
  enumOf,
  ERROR_CODE_HEADER,
  int,
  InvalidReplyError,
  KIND_HEADER,
  object,
  RemoteError,
  TimeoutError,
} from "../mod.ts";
import { natsFixture } from "./helpers/fixture.ts";

const Int = defineRequest({ subject: "bad.int", request: v.number(), response: int() });
const Enum = defineRequest({
  subject: "bad.enum",
  request: v.number(),
  response: enumOf(["Approved", "Rejected"]),
});
const Obj = defineRequest({
  subject: "bad.obj",
  request: v.number(),
  response: object(v.object({ id: v.string(), n: v.number() })),
});

type Case = {
  name: string;
  contract: typeof Int | typeof Enum | typeof Obj;
  body: Uint8Array | string;
  headers?: Record<string, string>;
  status?: number;
  expect: typeof InvalidReplyError | typeof RemoteError | typeof TimeoutError;
};

const big = "x".repeat(2_000_000);
const cases: Case[] = [
  { name: "not JSON", contract: Obj, body: "hello", expect: InvalidReplyError },
  { name: "truncated JSON", contract: Obj, body: '{"id":"a","n":', expect: InvalidReplyError },
  {
    name: "wrong kind header",
    contract: Obj,
    body: '{"id":"a","n":1}',
    headers: { [KIND_HEADER]: "enum" },
    expect: InvalidReplyError,
  },
  {
    name: "unknown kind header",
    contract: Int,
    body: "1",
    headers: { [KIND_HEADER]: "float" },
    expect: InvalidReplyError,
  },
  { name: "float for int", contract: Int, body: "1.5", expect: InvalidReplyError },
  { name: "NaN for int", contract: Int, body: "NaN", expect: InvalidReplyError },
  { name: "Infinity for int", contract: Int, body: "Infinity", expect: InvalidReplyError },
  { name: "1e400 for int", contract: Int, body: "1e400", expect: InvalidReplyError },
  {
    name: "huge integer",
    contract: Int,
    body: "123456789012345678901234567890",
    expect: InvalidReplyError,
  },
  { name: "JSON string for int", contract: Int, body: '"5"', expect: InvalidReplyError },
  { name: "non-member enum", contract: Enum, body: '"Maybe"', expect: InvalidReplyError },
  { name: "wrong-case enum", contract: Enum, body: '"approved"', expect: InvalidReplyError },
  { name: "enum as a number", contract: Enum, body: "0", expect: InvalidReplyError },
  { name: "object missing a field", contract: Obj, body: '{"id":"a"}', expect: InvalidReplyError },
  {
    name: "object with a wrong type",
    contract: Obj,
    body: '{"id":1,"n":1}',
    expect: InvalidReplyError,
  },
  { name: "array for object", contract: Obj, body: "[]", expect: InvalidReplyError },
  { name: "null for object", contract: Obj, body: "null", expect: InvalidReplyError },
  {
    name: "__proto__ key",
    contract: Obj,
    body: '{"__proto__":{"polluted":true},"id":"a"}',
    expect: InvalidReplyError,
  },
  {
    name: "constructor.prototype key",
    contract: Obj,
    body: '{"constructor":{"prototype":{"polluted":true}},"id":"a"}',
    expect: InvalidReplyError,
  },
  { name: "empty body, no headers", contract: Obj, body: "", expect: InvalidReplyError },
  {
    name: "empty body with a kind header",
    contract: Int,
    body: "",
    headers: { [KIND_HEADER]: "int" },
    expect: InvalidReplyError,
  },
  {
    name: "status 503 with a body",
    contract: Int,
    body: "1",
    status: 503,
    expect: InvalidReplyError,
  },
  {
    name: "status 408 without a body",
    contract: Int,
    body: "",
    status: 408,
    expect: InvalidReplyError,
  },
  {
    name: "binary garbage",
    contract: Obj,
    body: new Uint8Array([0xff, 0xfe, 0x00, 0x81, 0x7b, 0x22]),
    expect: InvalidReplyError,
  },
  {
    name: "error code that is not a number",
    contract: Int,
    body: "",
    headers: { [ERROR_CODE_HEADER]: "oops" },
    expect: InvalidReplyError,
  },
  // The responder's client refuses to publish it: nothing arrives, the caller times out.
  { name: "a body over max_payload", contract: Obj, body: big, expect: TimeoutError },
];

Deno.test(`malformed - ${cases.length} kinds of bad reply each give a typed error`, async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller, { timeout: 500 });
  const current: { case?: Case } = {};
  for (const subject of ["bad.int", "bad.enum", "bad.obj"]) {
    fx.responderNc.subscribe(subject, {
      callback: (_err, msg) => {
        const c = current.case!;
        let h: MsgHdrs | undefined;
        if (c.headers || c.status) {
          h = c.status ? natsHeaders(c.status, "status") : natsHeaders();
          for (const [k, value] of Object.entries(c.headers ?? {})) h.set(k, value);
        }
        try {
          msg.respond(typeof c.body === "string" ? new TextEncoder().encode(c.body) : c.body, {
            ...(h ? { headers: h } : {}),
          });
        } catch {
          // over max_payload: the client refuses it
        }
      },
    });
  }
  await fx.ready();
  const failures: string[] = [];
  for (const c of cases) {
    current.case = c;
    const error = await caller.request(c.contract, 1).then(
      (value) => `resolved with ${JSON.stringify(value)}`,
      (e) => e,
    );
    if (!(error instanceof c.expect)) failures.push(`${c.name}: ${error}`);
    if (error instanceof RemoteError && !Number.isInteger(error.code)) {
      failures.push(`${c.name}: code ${error.code}`);
    }
  }
  assertEquals(failures, []);
  assertStrictEquals(({} as { polluted?: boolean }).polluted, undefined);
  assertStrictEquals(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
  // The endpoint still works.
  current.case = {
    name: "good",
    contract: Obj,
    body: '{"id":"a","n":2}',
    expect: InvalidReplyError,
  };
  assertEquals(await caller.request(Obj, 1), { id: "a", n: 2 });
  assertStrictEquals(caller.pending, 0);
});

Deno.test("malformed - a late reply that is malformed is only a late-reply event", async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  const replies: string[] = [];
  fx.responderNc.subscribe("bad.obj", { callback: (_err, msg) => replies.push(msg.reply!) });
  await fx.ready();
  const error = await caller.request(Obj, 1, { timeout: 30 }).catch((e) => e);
  assertInstanceOf(error, TimeoutError);
  const late = new Promise<string | undefined>((resolve) =>
    caller.addEventListener("late-reply", (event) => resolve(event.subject), { once: true })
  );
  fx.responderNc.publish(replies[0]!, new Uint8Array([0xff, 0x00]));
  assertEquals(await late, "bad.obj");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("malformed - a valid reply carrying __proto__ and constructor keys pollutes nothing", async () => {
  const Loose = defineRequest({
    subject: "bad.loose",
    request: v.number(),
    response: object(v.looseObject({ id: v.string(), n: v.number() })),
  });
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  const body =
    '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"id":"a","n":1}';
  for (const subject of ["bad.obj", "bad.loose"]) {
    fx.responderNc.subscribe(subject, {
      callback: (_err, msg) => msg.respond(new TextEncoder().encode(body)),
    });
  }
  await fx.ready();
  const strict = await caller.request(Obj, 1);
  assertEquals(strict, { id: "a", n: 1 });
  assertStrictEquals(Object.getPrototypeOf(strict), Object.prototype);
  const loose = await caller.request(Loose, 1);
  assertStrictEquals(loose.id, "a");
  assertStrictEquals(Object.getPrototypeOf(loose), Object.prototype);
  assertStrictEquals((loose as { polluted?: unknown }).polluted, undefined);
  assertStrictEquals(({} as { polluted?: unknown }).polluted, undefined);
  assertStrictEquals(Object.hasOwn(Object.prototype, "polluted"), false);
  assertStrictEquals(caller.pending, 0);
});
