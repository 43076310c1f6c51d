// Calls each contract once, prints the typed replies, and exits.
import { connect } from "nats.ws";
import { Endpoint, natsTransport } from "@seed/callbacks";
import { wsFactory } from "@seed/callbacks/deno";
import { Approve, CheckStock, PlaceOrder } from "./contracts.ts";

const servers = Deno.env.get("NATS_URL") ?? "ws://127.0.0.1:8080";
const options = { servers, wsFactory };
const nc = await connect(options).catch((error) => {
  console.error(`cannot reach NATS at ${servers} (${error.message}): is nats-server running with`);
  console.error("websocket on that port? The URL is the websocket port, not the client port 4222.");
  Deno.exit(1);
});
try {
  await using endpoint = new Endpoint(natsTransport(nc), { timeout: 5_000 });
  const left: number = await endpoint.request(CheckStock, { sku: "A-1" });
  const decision: "Approved" | "Rejected" = await endpoint.request(Approve, {
    orderId: "o-1",
    total: 250,
  });
  const order = await endpoint.request(PlaceOrder, { sku: "A-1", qty: 2 });
  console.log({ left, decision, order });
} finally {
  await nc.close(); // the connection is yours: close it, or the process keeps running
}
