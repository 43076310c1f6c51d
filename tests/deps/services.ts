// The official NATS micro services client, for interop tests; pinned here, not in deno.json.
export * from "npm:@nats-io/services@3.0.0-25";
