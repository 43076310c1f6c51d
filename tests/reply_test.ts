/**
 * Reading a reply, without a transport: `readReply` on hand-made messages.
 */

import * as v from "valibot";
import { assertEquals, assertInstanceOf, assertMatch } from "@std/assert";
import {
  defineRequest,
  enumOf,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  int,
  InvalidReplyError,
  KIND_HEADER,
  NoRespondersError,
  object,
  RemoteError,
  type TransportMessage,
} from "../mod.ts";
import { readReply, type ReplyResult } from "../src/reply.ts";

const Count = defineRequest({ subject: "r.count", request: v.number(), response: int() });
const Decide = defineRequest({
  subject: "r.decide",
  request: v.number(),
  response: enumOf(["Yes", "No"]),
});
const Order = defineRequest({
  subject: "r.order",
  request: v.number(),
  response: object(v.object({ id: v.string() })),
});

function message(
  body: string | Uint8Array,
  headers: Record<string, string> = {},
  status = 0,
): TransportMessage {
  return {
    subject: "_INBOX.x.1",
    reply: "",
    data: typeof body === "string" ? new TextEncoder().encode(body) : body,
    status,
    header: (name) => headers[name],
  };
}

function failure(result: ReplyResult): Error {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.value)}`);
  return result.error;
}

Deno.test("reply - each kind decodes its wire text, with or without a kind header", () => {
  assertEquals(readReply(Count, message("42", { [KIND_HEADER]: "int" })), { ok: true, value: 42 });
  assertEquals(readReply(Count, message("-3")), { ok: true, value: -3 });
  assertEquals(readReply(Decide, message('"Yes"', { [KIND_HEADER]: "enum" })), {
    ok: true,
    value: "Yes",
  });
  assertEquals(readReply(Order, message('{"id":"o"}')), { ok: true, value: { id: "o" } });
});

Deno.test("reply - a kind header that disagrees, a status, or a bad body is an InvalidReplyError", () => {
  const cases: [string, ReplyResult][] = [
    ["kind", readReply(Count, message("1", { [KIND_HEADER]: "enum" }))],
    ["status 408", readReply(Count, message("", {}, 408))],
    ["503 with a body", readReply(Count, message("x", {}, 503))],
    ["not an int", readReply(Count, message("1.5"))],
    ["not a member", readReply(Decide, message('"Maybe"'))],
    ["not the schema", readReply(Order, message('{"id":1}'))],
    ["not UTF-8", readReply(Order, message(new Uint8Array([0x7b, 0xff, 0x7d])))],
  ];
  for (const [name, result] of cases) {
    const error = failure(result);
    assertInstanceOf(error, InvalidReplyError, name);
    assertEquals(result.ok ? "" : result.outcome, "invalid-reply", name);
    assertMatch(error.message, /^invalid reply to r\./, name);
  }
});

Deno.test("reply - an empty 503 is no responders, carrying subject and timeout", () => {
  const result = readReply(Count, message("", {}, 503), 250);
  const error = failure(result);
  assertInstanceOf(error, NoRespondersError);
  assertEquals([error.subject, error.timeout], ["r.count", 250]);
  assertEquals(result.ok ? "" : result.outcome, "no-responders");
});

Deno.test("reply - an error reply is a RemoteError with code, description and JSON data", () => {
  const headers = { [ERROR_CODE_HEADER]: "409", [ERROR_HEADER]: "taken" };
  const error = failure(readReply(Order, message('{"by":"b"}', headers)));
  assertInstanceOf(error, RemoteError);
  assertEquals([error.code, error.description, error.data], [409, "taken", { by: "b" }]);
  const text = failure(readReply(Order, message("plain", headers)));
  assertEquals((text as RemoteError).data, "plain");
  for (const code of ["1e3", "0x10", "-1", "", "99", "1000", "abc"]) {
    const bad = failure(readReply(Order, message("", { [ERROR_CODE_HEADER]: code })));
    assertInstanceOf(bad, InvalidReplyError, code);
  }
});

Deno.test("reply - a message whose reading throws is an InvalidReplyError with the cause; nothing escapes", () => {
  const thrown = new TypeError("bad header block");
  const hostile: TransportMessage = {
    ...message("1"),
    header() {
      throw thrown;
    },
  };
  const error = failure(readReply(Count, hostile));
  assertInstanceOf(error, InvalidReplyError);
  assertEquals(error.cause, thrown);
  const noStatus = Object.defineProperty({ ...message("1") }, "status", {
    get() {
      throw new RangeError("no status");
    },
  });
  assertInstanceOf(failure(readReply(Count, noStatus)), InvalidReplyError);
  // A reply whose description would run its own code (an enum reply that is an object).
  assertInstanceOf(failure(readReply(Decide, message('{"toString":1}'))), InvalidReplyError);
});
