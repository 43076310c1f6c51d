// The NATS maintainers' TCP transport (runs in Deno, sets TCP_NODELAY), which the contract suite
// also runs over; pinned here, not in deno.json.
export * from "npm:@nats-io/transport-node@3.4.0";
