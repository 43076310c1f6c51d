// Answers the three contracts until stopped (Ctrl-C).
import { connect } from "nats.ws";
import { Endpoint, natsTransport } from "@seed/callbacks";
import { wsFactory } from "@seed/callbacks/deno";
import { Approve, CheckStock, PlaceOrder } from "./contracts.ts";

const servers = Deno.env.get("NATS_URL") ?? "ws://127.0.0.1:8080";
const options = { servers, wsFactory }; // wsFactory: TCP_NODELAY for Deno (see docs/deno.md)
const nc = await connect(options).catch((error) => {
  console.error(`cannot reach NATS at ${servers} (${error.message}): is nats-server running with`);
  console.error("websocket on that port? The URL is the websocket port, not the client port 4222.");
  Deno.exit(1);
});
const endpoint = new Endpoint(natsTransport(nc));
const ready = [
  endpoint.handle(CheckStock, ({ sku }) => sku === "A-1" ? 5 : 0),
  endpoint.handle(Approve, ({ total }) => total <= 1_000 ? "Approved" : "Rejected"),
  endpoint.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, eta: 2 })),
].map((registration) => registration.ready);
await Promise.all(ready); // the server has the subscriptions: callers find them from now on
console.log(`responder ready on ${servers}`);

Deno.addSignalListener("SIGINT", async () => {
  await endpoint.close();
  await nc.close();
  Deno.exit(0);
});
