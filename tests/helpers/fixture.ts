/**
 * Fixtures the contract suite runs on: a caller's transport and a
 * responder's transport, over NATS (two connections to a real nats-server)
 * or in memory.
 *
 * @module
 */

import type { NatsConnection } from "nats.ws";
import {
  memoryTransport,
  type NatsConnectionLike,
  natsTransport,
  type Transport,
} from "../../mod.ts";
import { connectWs } from "./connect.ts";
import { type NatsServer, startNatsServer } from "./nats_server.ts";

/** Two sides of a bus. */
export interface Fixture extends AsyncDisposable {
  /** The transport name, for test names. */
  readonly name: string;
  /** The caller's side. */
  readonly caller: Transport;
  /** The responder's side (another connection over NATS). */
  readonly responder: Transport;
  /** Resolves once both sides' subscriptions are live on the server. */
  ready(): Promise<void>;
  /** Closes the caller's connection for good (in memory: the shared bus). */
  closeCaller(): Promise<void>;
}

/** Options of the NATS fixture. */
export interface NatsFixtureOptions {
  /** Extra nats-server config. */
  config?: string;
}

/** What a fixture needs of a NATS connection (nats.ws or nats-core). */
interface Connection {
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A NATS fixture with its server and raw connections. */
export interface NatsFixture<C extends Connection = NatsConnection> extends Fixture {
  /** The server. */
  readonly server: NatsServer;
  /** The caller's raw connection. */
  readonly callerNc: C;
  /** The responder's raw connection. */
  readonly responderNc: C;
}

/**
 * Starts a nats-server and opens two connections to it with `open`: the
 * caller's and the responder's.
 */
export async function connectionFixture<C extends Connection>(
  name: string,
  open: (server: NatsServer) => Promise<C>,
  options: NatsFixtureOptions = {},
): Promise<NatsFixture<C>> {
  const server = await startNatsServer(options.config ? { config: options.config } : {});
  const opened: C[] = [];
  try {
    opened.push(await open(server), await open(server));
  } catch (error) {
    for (const nc of opened) await nc.close();
    await server.stop();
    throw error;
  }
  const [callerNc, responderNc] = opened as [C, C];
  return {
    name,
    server,
    callerNc,
    responderNc,
    caller: natsTransport(callerNc as unknown as NatsConnectionLike),
    responder: natsTransport(responderNc as unknown as NatsConnectionLike),
    ready: async () => {
      await Promise.all([callerNc.flush(), responderNc.flush()]);
    },
    closeCaller: () => callerNc.close(),
    async [Symbol.asyncDispose]() {
      await callerNc.close();
      await responderNc.close();
      await server.stop();
    },
  };
}

/** Starts a nats-server and opens two nats.ws connections to it. */
export function natsFixture(options: NatsFixtureOptions = {}): Promise<NatsFixture> {
  return connectionFixture("nats", (server) => connectWs(server), options);
}

/** An in-memory fixture: one bus, both sides. */
export function memoryFixture(): Promise<Fixture> {
  const bus = memoryTransport();
  return Promise.resolve({
    name: "memory",
    caller: bus,
    responder: bus,
    ready: () => Promise.resolve(),
    closeCaller: () => Promise.resolve(bus.close()),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
}
