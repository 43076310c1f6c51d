import * as v from "valibot";
import {
  type ConnectionEvent,
  type Contract,
  defineRequest,
  Endpoint,
  type EndpointErrorEvent,
  enumOf,
  int,
  type LateReplyEvent,
  memoryTransport,
  object,
  type ReplyOf,
  type RequestEvent,
  type RequestOf,
  type SettleEvent,
} from "../mod.ts";
import { assertType, type IsExact } from "./helpers/types.ts";

enum Decision {
  Approved = "Approved",
  Rejected = "Rejected",
}
enum Level {
  Low,
  High,
}

const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});
const Approve = defineRequest({
  subject: "orders.approve",
  request: v.object({ orderId: v.string() }),
  response: enumOf(["Approved", "Rejected"]),
});
const Decide = defineRequest({ subject: "d", request: v.string(), response: enumOf(Decision) });
const GetLevel = defineRequest({ subject: "l", request: v.string(), response: enumOf(Level) });
const Numbers = defineRequest({ subject: "n", request: v.string(), response: enumOf([1, 2, 3]) });
const PlaceOrder = defineRequest({
  subject: "orders.place",
  request: v.object({ sku: v.string(), qty: v.optional(v.number(), 1) }),
  response: object(v.object({ orderId: v.string(), at: v.pipe(v.string(), v.transform(Number)) })),
});

Deno.test("types - replies are inferred from the response kind", () => {
  assertType<IsExact<ReplyOf<typeof CheckStock>, number>>(true);
  assertType<IsExact<ReplyOf<typeof Approve>, "Approved" | "Rejected">>(true);
  assertType<IsExact<ReplyOf<typeof Decide>, Decision>>(true);
  assertType<IsExact<ReplyOf<typeof GetLevel>, Level>>(true);
  assertType<IsExact<ReplyOf<typeof Numbers>, 1 | 2 | 3>>(true);
  assertType<IsExact<ReplyOf<typeof PlaceOrder>, { orderId: string; at: number }>>(true);
  assertType<IsExact<ReplyOf<typeof CheckStock>, string>>(false);
});

Deno.test("types - request bodies are the schema's input, handlers get its output", async () => {
  assertType<IsExact<RequestOf<typeof PlaceOrder>, { sku: string; qty?: number | undefined }>>(
    true,
  );
  await using endpoint = new Endpoint(memoryTransport());
  endpoint.handle(PlaceOrder, (body) => {
    assertType<IsExact<typeof body, { sku: string; qty: number }>>(true);
    return { orderId: body.sku, at: "1" };
  });
  const order = await endpoint.request(PlaceOrder, { sku: "A" });
  assertType<IsExact<typeof order, { orderId: string; at: number }>>(true);
  endpoint.handle(Approve, () => "Approved");
  const decision = await endpoint.request(Approve, { orderId: "o" });
  assertType<IsExact<typeof decision, "Approved" | "Rejected">>(true);
  // @ts-expect-error: the handler must return a member
  endpoint.handle(Decide, () => "Maybe");
  // @ts-expect-error: the body must match the request schema
  endpoint.request(CheckStock, { sku: 1 }).catch(() => {});
  endpoint.addEventListener("settle", (event) => {
    assertType<IsExact<typeof event, SettleEvent>>(true);
  });
});

Deno.test("types - every event name gives its listener the event's class", async () => {
  await using endpoint = new Endpoint(memoryTransport());
  endpoint.addEventListener("request", (event) => {
    assertType<IsExact<typeof event, RequestEvent>>(true);
    assertType<IsExact<typeof event.timeout, number>>(true);
  });
  endpoint.addEventListener("settle", (event) => {
    assertType<IsExact<typeof event.outcome, SettleEvent["outcome"]>>(true);
  });
  endpoint.addEventListener("late-reply", (event) => {
    assertType<IsExact<typeof event, LateReplyEvent>>(true);
    assertType<IsExact<typeof event.subject, string | undefined>>(true);
  });
  endpoint.addEventListener("error", (event) => {
    assertType<IsExact<typeof event, EndpointErrorEvent>>(true);
  });
  endpoint.addEventListener("connection", (event) => {
    assertType<IsExact<typeof event, ConnectionEvent>>(true);
    assertType<IsExact<typeof event.status, "disconnect" | "reconnect" | "close">>(true);
  });
  const listener = { handleEvent: (event: LateReplyEvent) => void event.id };
  endpoint.addEventListener("late-reply", listener);
  endpoint.removeEventListener("late-reply", listener);
  // @ts-expect-error: a request listener does not get a SettleEvent
  endpoint.addEventListener("request", (_event: SettleEvent) => {});
  // Other names still take plain listeners.
  endpoint.addEventListener("custom", (event) => assertType<IsExact<typeof event, Event>>(true));
});

Deno.test("types - a contract is assignable to the general Contract type", () => {
  const contracts: Contract[] = [CheckStock, Approve, Decide, GetLevel, PlaceOrder];
  assertType<IsExact<typeof contracts, Contract[]>>(true);
});
