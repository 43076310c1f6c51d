/**
 * The test kit: fake the replies your application's callbacks get, without a
 * server, in the spirit of NServiceBus.Callbacks.Testing. Ordered
 * `when(contract, match)` rules answer with a value, an error, no responders
 * or silence; every request is recorded; a request no rule matches is
 * answered with a clear error instead of hanging.
 *
 * @example Testing code that calls a stock service
 * ```ts
 * import * as v from "valibot";
 * import { assertEquals, assertRejects } from "@std/assert";
 * import { defineRequest, type Endpoint, int, NoRespondersError } from "@seed/callbacks";
 * import { CallbackStub } from "@seed/callbacks/testing";
 *
 * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
 *
 * // The code under test takes an endpoint.
 * async function canOrder(endpoint: Endpoint, sku: string): Promise<boolean> {
 *   return await endpoint.request(CheckStock, { sku }) > 0;
 * }
 *
 * await using stub = new CallbackStub();
 * stub.when(CheckStock, ({ sku }) => sku === "A-1").reply(5)
 *   .when(CheckStock, ({ sku }) => sku === "GONE").noResponders();
 * assertEquals(await canOrder(stub.endpoint, "A-1"), true);
 * await assertRejects(() => canOrder(stub.endpoint, "GONE"), NoRespondersError);
 * assertEquals(stub.bodiesOf(CheckStock), [{ sku: "A-1" }, { sku: "GONE" }]);
 * ```
 *
 * @module
 */

export { CallbackStub } from "./src/testing/stub.ts";
export type { AnswerOptions, RecordedRequest, RuleBuilder } from "./src/testing/stub.ts";
