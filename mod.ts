/**
 * Client-side request/response callbacks over NATS request-reply: send a
 * request, await a promise that settles exactly once with a reply validated
 * and typed as an int, an enum member or an object.
 *
 * @example Quick start, in memory (no server)
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, Endpoint, enumOf, int, memoryTransport, object } from "@seed/callbacks";
 *
 * const CheckStock = defineRequest({
 *   subject: "stock.check",
 *   request: v.object({ sku: v.string() }),
 *   response: int(),
 * });
 * const Approve = defineRequest({
 *   subject: "orders.approve",
 *   request: v.object({ orderId: v.string() }),
 *   response: enumOf(["Approved", "Rejected"]),
 * });
 * const PlaceOrder = defineRequest({
 *   subject: "orders.place",
 *   request: v.object({ sku: v.string(), qty: v.number() }),
 *   response: object(v.object({ orderId: v.string(), eta: v.number() })),
 * });
 *
 * const bus = memoryTransport(); // natsTransport(nc) for NATS
 * await using responder = new Endpoint(bus);
 * await using caller = new Endpoint(bus, { timeout: 10_000 });
 *
 * responder.handle(CheckStock, ({ sku }) => sku === "A-1" ? 5 : 0);
 * responder.handle(Approve, ({ orderId }) => orderId ? "Approved" : "Rejected");
 * responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
 *
 * const left: number = await caller.request(CheckStock, { sku: "A-1" });
 * const decision: "Approved" | "Rejected" = await caller.request(Approve, { orderId: "o-1" });
 * const order = await caller.request(PlaceOrder, { sku: "A-1", qty: 2 }, {
 *   signal: AbortSignal.timeout(2_000),
 * });
 * assert(left === 5 && decision === "Approved" && order.orderId === "A-1x2");
 * ```
 *
 * @module
 */

export { assertSubject, defineRequest } from "./src/contract.ts";
export { enumOf, int, object } from "./src/responses.ts";
export { Endpoint } from "./src/endpoint.ts";
export {
  CallbackError,
  ClosedError,
  DisconnectedError,
  InvalidReplyError,
  InvalidRequestError,
  NoReplyError,
  NoRespondersError,
  PendingLimitError,
  RemoteError,
  ReplyError,
  TimeoutError,
} from "./src/errors.ts";
export {
  ConnectionEvent,
  EndpointErrorEvent,
  EndpointEvents,
  LateReplyEvent,
  RequestEvent,
  SettleEvent,
} from "./src/events.ts";
export { memoryTransport } from "./src/transports/memory.ts";
export { natsTransport } from "./src/transports/nats.ts";
export { ERROR_CODE_HEADER, ERROR_HEADER, KIND_HEADER, TIMEOUT_HEADER } from "./src/wire.ts";

export type {
  Contract,
  ContractDefinition,
  HandledRequestOf,
  HandlerReplyOf,
  ReplyOf,
  RequestOf,
} from "./src/contract.ts";
export type {
  EnumResponse,
  IntResponse,
  ObjectResponse,
  ResponseInput,
  ResponseKind,
  ResponseOutput,
} from "./src/responses.ts";
export type {
  EndpointOptions,
  HandleOptions,
  Registration,
  RequestOptions,
} from "./src/options.ts";
export type {
  Issue,
  NoReplyErrorOptions,
  RemoteErrorOptions,
  ReplyErrorOptions,
  ValidationErrorOptions,
} from "./src/errors.ts";
export type { EndpointEventListener, EndpointEventMap, Outcome } from "./src/events.ts";
export type { Handler, HandlerContext } from "./src/responder.ts";
export type { GatherEnd, GatherOptions } from "./src/gather.ts";
export type { ReplyHandler, ReplyInfo } from "./src/reply_handlers.ts";
export type { MemoryTransport, MemoryTransportOptions } from "./src/transports/memory.ts";
export type {
  NatsConnectionLike,
  NatsHeadersLike,
  NatsMessageLike,
} from "./src/transports/nats.ts";
export type {
  PublishOptions,
  SubscribeOptions,
  Transport,
  TransportMessage,
  TransportStatus,
  TransportSubscription,
} from "./src/transport.ts";
export type { InferInput, InferOutput, Schema, SchemaResult } from "./src/schema.ts";
