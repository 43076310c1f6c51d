import * as v from "valibot";
import { assertEquals } from "@std/assert";
import { enumOf, int, object } from "../mod.ts";
import { decodeResponse, encodeResponse } from "../src/responses.ts";

const value = (checked: { ok: boolean; value?: unknown }) => checked.ok ? checked.value : "invalid";

Deno.test("responses - int is decimal text holding a safe integer", () => {
  assertEquals(encodeResponse(int(), 42), "42");
  for (const [text, expected] of [["42", 42], ["-7", -7], [" 0\n", 0]] as const) {
    assertEquals(value(decodeResponse(int(), text)), expected);
  }
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
      "01",
      '"1"',
    ]
  ) {
    assertEquals(value(decodeResponse(int(), text)), "invalid", text);
  }
});

Deno.test("responses - enum is the member's JSON value; bare text of a string member is accepted", () => {
  const kind = enumOf(["Approved", "Rejected", 3]);
  assertEquals(encodeResponse(kind, "Approved"), '"Approved"');
  assertEquals(value(decodeResponse(kind, '"Rejected"')), "Rejected");
  assertEquals(value(decodeResponse(kind, "Approved")), "Approved");
  assertEquals(value(decodeResponse(kind, "3")), 3);
  for (const text of ['"approved"', "approved", '"3"', "4", "null", ""]) {
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

Deno.test("responses - bare enum text is trimmed; string members that look like numbers match", () => {
  assertEquals(value(decodeResponse(enumOf(["Approved"]), "Approved\n")), "Approved");
  assertEquals(value(decodeResponse(enumOf(["1", "2"]), "1")), "1");
  assertEquals(value(decodeResponse(enumOf(["1", "2"]), '"2"')), "2");
  assertEquals(value(decodeResponse(enumOf([1, 2]), '"1"')), "invalid");
});
