import * as v from "valibot";
import { assertEquals, assertMatch } from "@std/assert";
import { enumOf, int, object } from "../mod.ts";
import { decodeResponse, encodeReply } from "../src/responses.ts";

const value = (checked: { ok: boolean; value?: unknown }) => checked.ok ? checked.value : "invalid";

Deno.test("responses - int is -?[0-9]+ and nothing else, holding a safe integer", () => {
  assertEquals(value(encodeReply(int(), 42)), "42");
  for (const [text, expected] of [["42", 42], ["-7", -7], ["0", 0], ["007", 7]] as const) {
    assertEquals(value(decodeResponse(int(), text)), expected);
  }
  // -0 is 0: an int has no sign of zero.
  assertEquals(Object.is(value(decodeResponse(int(), "-0")), 0), true);
  for (
    const text of [
      "1.5",
      "1e3",
      "NaN",
      "Infinity",
      "1e400",
      "9007199254740993",
      "",
      "+1",
      "0x10",
      '"1"',
      " 5",
      "5\n",
      "\uFEFF5",
      "\u00A05",
      "5 ",
      "\t5",
      "-",
      "--1",
    ]
  ) {
    assertEquals(value(decodeResponse(int(), text)), "invalid", JSON.stringify(text));
  }
});

Deno.test("responses - enum is the member's JSON value; bare text of a string member is accepted", () => {
  const kind = enumOf(["Approved", "Rejected", 3]);
  assertEquals(value(encodeReply(kind, "Approved")), '"Approved"');
  assertEquals(value(decodeResponse(kind, '"Rejected"')), "Rejected");
  assertEquals(value(decodeResponse(kind, "Approved")), "Approved");
  assertEquals(value(decodeResponse(kind, "3")), 3);
  for (
    const text of ['"approved"', "approved", '"3"', "4", "null", "", "Approved\n", " Approved"]
  ) {
    assertEquals(value(decodeResponse(kind, text)), "invalid", text);
  }
});

Deno.test("responses - object is JSON checked by the schema; prototypes stay clean", () => {
  const kind = object(v.object({ id: v.string() }));
  assertEquals(value(decodeResponse(kind, '{"id":"a","x":1}')), { id: "a" });
  const polluted = decodeResponse(kind, '{"id":"a","__proto__":{"admin":true}}');
  assertEquals(value(polluted), { id: "a" });
  assertEquals(({} as { admin?: boolean }).admin, undefined);
  for (const text of ["{", "[]", "null", '{"id":1}', ""]) {
    assertEquals(value(decodeResponse(kind, text)), "invalid", text);
  }
});

Deno.test("responses - string members that look like numbers match", () => {
  assertEquals(value(decodeResponse(enumOf(["1", "2"]), "1")), "1");
  assertEquals(value(decodeResponse(enumOf(["1", "2"]), '"2"')), "2");
  assertEquals(value(decodeResponse(enumOf([1, 2]), '"1"')), "invalid");
});

Deno.test("responses - enum and object descriptions never run the value's own code", () => {
  const hostile = JSON.parse('{"toString":1,"valueOf":{}}');
  const checked = decodeResponse(enumOf(["A"]), '{"toString":1}');
  assertEquals(value(checked), "invalid");
  assertEquals(value(encodeReply(enumOf(["A"]), hostile)), "invalid");
  assertEquals(value(encodeReply(int(), hostile)), "invalid");
  const trap = new Proxy({}, {
    getPrototypeOf() {
      throw new Error("trap");
    },
  });
  assertEquals(value(encodeReply(int(), trap)), "invalid");
  assertEquals(value(encodeReply(object(v.any()), trap)), "invalid");
});

Deno.test("responses - a reply JSON would change so that it fails the contract is refused", () => {
  const kind = object(v.object({ n: v.number(), at: v.optional(v.string()) }));
  const refused = [
    { n: Infinity },
    { n: NaN },
    { n: 1, at: new Date(0) },
    { n: 1, toJSON: () => ({}) },
    {
      n: 1,
      toJSON() {
        throw new Error("no");
      },
    },
    { n: 1n },
  ];
  for (const reply of refused) {
    const encoded = encodeReply(kind, reply as never);
    assertEquals(encoded.ok, false, String(Object.keys(reply)));
  }
  const cycle: Record<string, unknown> = { n: 1 };
  cycle.self = cycle;
  assertEquals(encodeReply(object(v.looseObject({ n: v.number() })), cycle).ok, false);
  assertEquals(encodeReply(object(v.any()), undefined).ok, false);
  assertEquals(encodeReply(object(v.object({ at: v.date() })), { at: new Date(0) }).ok, false);
  // A property JSON leaves out (not enumerable) that the schema needs.
  const hidden = Object.defineProperty({}, "id", { value: "x", enumerable: false });
  assertEquals(encodeReply(object(v.object({ id: v.string() })), hidden).ok, false);
  const encoded = encodeReply(object(v.object({ n: v.number() })), { n: 1, at: undefined });
  // JSON drops the undefined key; what arrives still passes the contract, so it is sent.
  assertEquals(value(encoded), '{"n":1}');
  assertEquals(value(encodeReply(object(v.object({ n: v.number() })), { n: -0 })), '{"n":0}');
  const refusal = encodeReply(kind, { n: Infinity });
  assertMatch(refusal.ok ? "" : refusal.issues[0]!.message, /JSON would change the value/);
});

Deno.test("responses - enumOf keeps a string member whose value names another member", () => {
  enum E {
    A = "B",
    B = 1,
  }
  assertEquals([...enumOf(E).values].sort(), [1, "B"].sort());
  enum Mixed {
    Low = 1,
    High = "High",
    Mid = 2,
  }
  assertEquals<readonly unknown[]>(enumOf(Mixed).values, [1, "High", 2]);
  enum Numeric {
    Zero,
    One,
  }
  assertEquals(enumOf(Numeric).values, [0, 1]);
});
