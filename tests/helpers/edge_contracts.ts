/**
 * The contracts of the Cloudflare edge tests, one of each reply kind: shared
 * by the responders in Deno and the Worker bundled for workerd.
 *
 * @module
 */

import * as v from "valibot";
import { defineRequest, enumOf, int, object } from "../../mod.ts";

/** int: stock left (`slow` waits for its abort, `Z-9` is a 404, `big` answers 2^53). */
export const EdgeStock = defineRequest({
  subject: "edge.stock",
  request: v.object({ sku: v.string() }),
  response: int(),
});

/** enum: an order's approval. */
export const EdgeApprove = defineRequest({
  subject: "edge.approve",
  request: v.object({ orderId: v.string() }),
  response: enumOf(["Approved", "Rejected"]),
});

/** object: a placed order; `qty: 0` is answered with an `orderId` that is not a string. */
export const EdgeOrder = defineRequest({
  subject: "edge.order",
  request: v.object({ sku: v.string(), qty: v.number() }),
  response: object(
    v.object({ orderId: v.string(), eta: v.pipe(v.number(), v.transform((n) => n * 1_000)) }),
  ),
});

/** Nothing answers it. */
export const EdgeNobody = defineRequest({
  subject: "edge.nobody",
  request: v.object({}),
  response: int(),
});
