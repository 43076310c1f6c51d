import * as v from "valibot";
import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  defineRequest,
  Endpoint,
  enumOf,
  int,
  InvalidRequestError,
  memoryTransport,
  object,
  type Schema,
} from "../mod.ts";

Deno.test("contract - defineRequest returns a frozen contract", () => {
  const contract = defineRequest({ subject: "a.b", request: v.string(), response: int() });
  assertEquals(contract.subject, "a.b");
  assertEquals(Object.isFrozen(contract), true);
});

Deno.test("contract - invalid subjects are a TypeError naming the subject", () => {
  for (const subject of ["", " ", "a b", "a.*", "a.>", "a..b", ".a", "a.", "a\tb", 5]) {
    assertThrows(
      () => defineRequest({ subject: subject as string, request: v.string(), response: int() }),
      TypeError,
      "is not a NATS subject to publish on",
    );
  }
});

Deno.test("contract - request and response must be schemas and kinds", () => {
  assertThrows(
    () => defineRequest({ subject: "a", request: {} as v.GenericSchema, response: int() }),
    TypeError,
    "request must be a valibot (or Standard Schema) schema",
  );
  assertThrows(
    () => defineRequest({ subject: "a", request: v.string(), response: v.string() as never }),
    TypeError,
    "response must be int(), enumOf([…]) or object(schema)",
  );
  assertThrows(
    () => object({} as v.GenericSchema),
    TypeError,
    "takes a valibot (or Standard Schema) schema",
  );
});

Deno.test("contract - enumOf takes lists and TypeScript enums, rejects bad members", () => {
  enum Mixed {
    A = 1,
    B = "b",
  }
  assertEquals(enumOf(["x", 2]).values, ["x", 2]);
  assertEquals<readonly unknown[]>(enumOf(Mixed).values, [1, "b"]);
  assertThrows(() => enumOf([]), TypeError, "at least one member");
  assertThrows(() => enumOf(["a", "a"]), TypeError, "unique");
  assertThrows(() => enumOf([Number.NaN]), TypeError, "finite numbers");
  assertThrows(() => enumOf([{} as string]), TypeError, "strings or finite numbers");
  assertThrows(() => enumOf(null as never), TypeError, "TypeScript enum object");
});

Deno.test("contract - an async schema is refused with a clear error, nothing sent", async () => {
  const asyncSchema: Schema<string> = {
    "~standard": {
      version: 1,
      vendor: "test",
      validate: (value) => Promise.resolve({ value: value as string }),
    },
  };
  const Async = defineRequest({ subject: "a.async", request: asyncSchema, response: int() });
  const bus = memoryTransport();
  await using endpoint = new Endpoint(bus);
  await assertRejects(
    () => endpoint.request(Async, "x"),
    InvalidRequestError,
    "async schemas are not supported",
  );
  assertEquals(endpoint.pending, 0);
});
