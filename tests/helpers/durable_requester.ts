/**
 * A requester process for the durable tests, to be killed: it connects,
 * takes a durable name, sends the requests its mode says, prints one line
 * per request (`sent <id> <subject> <sku>`), then `ready`, and waits.
 *
 *     deno run -A tests/helpers/durable_requester.ts <ws url> <name> <mode> [options as JSON]
 *
 * Modes: `all` sends an int, an enum and an object request (60 s budget)
 * and one that expires in 1.5 s; `crash` sends one object request and
 * exits the moment its reply settles it, before the reply is acknowledged;
 * `orphan` sends one object request of a contract no later instance
 * handles.
 */

import { connect } from "nats.ws";
import { Endpoint, type RequestEvent } from "../../mod.ts";
import { durableTransport } from "../../durable.ts";
import { Approve, CheckStock, PlaceOrder } from "./contract_suite.ts";
import { Orphan } from "./durable_contracts.ts";

const [url, name, mode, options = "{}"] = Deno.args as [string, string, string, string?];
const nc = await connect({ servers: url, maxReconnectAttempts: 0 });
const transport = await durableTransport(nc, { ...JSON.parse(options), name });
const endpoint = new Endpoint(transport, { timeout: 60_000, logErrors: false });
endpoint.addEventListener("request", (event: RequestEvent) => {
  console.log(`sent ${event.id} ${event.subject}`);
});
const quiet = (promise: Promise<unknown>) => promise.catch(() => {});
if (mode === "all") {
  quiet(endpoint.request(CheckStock, { sku: "A-1" }));
  quiet(endpoint.request(Approve, { orderId: "o-1" }));
  quiet(endpoint.request(PlaceOrder, { sku: "A-1", qty: 2 }));
  quiet(endpoint.request(CheckStock, { sku: "expire" }, { timeout: 1_500 }));
} else if (mode === "crash") {
  endpoint.request(PlaceOrder, { sku: "C-1", qty: 1 }).then(() => {
    console.log("replied");
    Deno.exit(3); // before the reply is acknowledged (a macrotask later)
  });
} else if (mode === "orphan") {
  quiet(endpoint.request(Orphan, { n: 1 }));
}
// The requests are recorded before they are sent: wait until they are out.
await new Promise((resolve) => setTimeout(resolve, 0));
await nc.flush();
console.log("ready");
await new Promise(() => {});
