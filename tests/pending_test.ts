import * as v from "valibot";
import { assertEquals, assertInstanceOf, assertStrictEquals } from "@std/assert";
import {
  defineRequest,
  Endpoint,
  int,
  memoryTransport,
  type SettleEvent,
  TimeoutError,
} from "../mod.ts";

const Silent = defineRequest({ subject: "silent", request: v.number(), response: int() });

Deno.test("pending - deadlines of mixed timeouts expire in deadline order with one timer", async () => {
  const bus = memoryTransport();
  bus.subscribe("silent", () => {}); // a responder that never answers
  await using endpoint = new Endpoint(bus);
  const order: number[] = [];
  endpoint.addEventListener("settle", (event: SettleEvent) => {
    if (event.outcome === "timeout") order.push(Math.round(event.duration / 10) * 10);
  });
  const cancel = new AbortController();
  const timeouts = [90, 30, 60, 30, 120];
  const results = timeouts.map((timeout, i) =>
    endpoint.request(Silent, i, i === 4 ? { timeout, signal: cancel.signal } : { timeout })
      .catch((e) => e)
  );
  assertStrictEquals(endpoint.pending, 5);
  cancel.abort(new Error("cancelled"));
  const errors = await Promise.all(results);
  for (const error of errors.slice(0, 4)) assertInstanceOf(error, TimeoutError);
  assertEquals((errors[4] as Error).message, "cancelled");
  assertEquals(order.length, 4);
  assertEquals(order, [...order].sort((a, b) => a - b), `expired in deadline order: ${order}`);
  assertStrictEquals(endpoint.pending, 0);
});

Deno.test("pending - a late reply after a timeout is recognised, a stranger's is not", async () => {
  const bus = memoryTransport();
  const requests: string[] = [];
  bus.subscribe("silent", (message) => requests.push(message.reply));
  await using endpoint = new Endpoint(bus);
  const late: (string | undefined)[] = [];
  endpoint.addEventListener("late-reply", (event) => late.push(event.subject));
  for (let i = 0; i < 3; i++) {
    await endpoint.request(Silent, i, { timeout: 5 }).catch(() => {});
  }
  const arrived = new Promise<void>((resolve) => {
    let n = 0;
    endpoint.addEventListener("late-reply", () => ++n === 4 && resolve());
  });
  for (const reply of requests) bus.publish(reply, new TextEncoder().encode("1"));
  bus.publish(`${requests[0]!.slice(0, -36)}${crypto.randomUUID()}`, new Uint8Array());
  await arrived;
  assertEquals(late, ["silent", "silent", "silent", undefined]);
});
