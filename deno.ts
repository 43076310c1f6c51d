/**
 * Deno-specific helpers of `@seed/callbacks`.
 *
 * Deno's built-in `WebSocket` client leaves `TCP_NODELAY` off and writes a
 * frame with more than 1 KiB of payload as two writes, so NATS traffic over
 * nats.ws stalls 40–44 ms per batch (Nagle waiting for a delayed ACK) as soon
 * as a batch of requests passes ~1 KiB.
 *
 * A Deno process that can reach the NATS TCP port should not use a WebSocket
 * at all: connect with the NATS maintainers' `@nats-io/transport-node`
 * (`connect({ servers: "127.0.0.1:4222" })`); `natsTransport` takes that
 * connection. For a process that only reaches a WebSocket port,
 * {@linkcode wsFactory} gives the NATS client sockets from npm `ws`, which
 * turns `TCP_NODELAY` on; pass it to nats.ws `connect()` or
 * `@nats-io/nats-core` `wsconnect()`.
 *
 * Earlier versions shipped their own WebSocket client here
 * (`NoDelayWebSocket`, `NoDelayWebSocketOptions`); it is gone, and the
 * factory's sockets are `ws` WebSockets. `wsFactory`, `createWsFactory` and
 * their options are unchanged for the NATS clients.
 *
 * @example Connect nats.ws through the factory
 * ```ts ignore
 * import { connect } from "nats.ws";
 * import { Endpoint, natsTransport } from "@seed/callbacks";
 * import { wsFactory } from "@seed/callbacks/deno";
 *
 * // nats.ws' ConnectionOptions type omits wsFactory (it reads it at run time),
 * // so pass a variable rather than an object literal; nats-core's wsconnect() types it
 * const options = { servers: "ws://127.0.0.1:8080", wsFactory };
 * const nc = await connect(options);
 * await using endpoint = new Endpoint(natsTransport(nc), { timeout: 10_000 });
 * ```
 *
 * @example wss:// with a private CA
 * ```ts ignore
 * import { connect } from "nats.ws";
 * import { createWsFactory } from "@seed/callbacks/deno";
 *
 * const caCerts = [await Deno.readTextFile("./ca.pem")];
 * const options = { servers: "wss://nats.internal:8443", wsFactory: createWsFactory({ caCerts }) };
 * const nc = await connect(options);
 * ```
 *
 * @module
 */

export { createWsFactory, wsFactory } from "./deno/ws_factory.ts";

export type { WsFactory, WsFactoryOptions } from "./deno/ws_factory.ts";
