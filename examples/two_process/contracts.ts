// The contracts both processes import: a subject, the request's schema, the reply's kind.
import * as v from "valibot";
import { defineRequest, enumOf, int, object } from "@seed/callbacks";

export const CheckStock = defineRequest({
  subject: "shop.stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});
export const Approve = defineRequest({
  subject: "shop.orders.approve",
  request: v.object({ orderId: v.string(), total: v.number() }),
  response: enumOf(["Approved", "Rejected"]),
});
export const PlaceOrder = defineRequest({
  subject: "shop.orders.place",
  request: v.object({ sku: v.string(), qty: v.number() }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});
