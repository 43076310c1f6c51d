// @nats-io/nats-core, the maintained successor of nats.ws, which the contract suite also runs
// over; pinned here (not in deno.json): the library talks to it through its own small interface.
export * from "npm:@nats-io/nats-core@3.4.0";
