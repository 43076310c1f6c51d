/**
 * Fixtures the contract suite runs on: a caller's transport and a
 * responder's transport, over NATS (two connections to a real nats-server)
 * or in memory.
 *
 * @module
 */

import type { NatsConnection } from "nats.ws";
import { memoryTransport, natsTransport, type Transport } from "../../mod.ts";
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
}

/** Options of the NATS fixture. */
export interface NatsFixtureOptions {
  /** Extra nats-server config. */
  config?: string;
}

/** A NATS fixture with its server and raw connections. */
export interface NatsFixture extends Fixture {
  /** The server. */
  readonly server: NatsServer;
  /** The caller's raw connection. */
  readonly callerNc: NatsConnection;
  /** The responder's raw connection. */
  readonly responderNc: NatsConnection;
}

/** Starts a nats-server and opens two nats.ws connections to it. */
export async function natsFixture(options: NatsFixtureOptions = {}): Promise<NatsFixture> {
  const server = await startNatsServer(options.config ? { config: options.config } : {});
  let callerNc: NatsConnection | undefined;
  try {
    callerNc = await connectWs(server);
    const responderNc = await connectWs(server);
    const opened = callerNc;
    return {
      name: "nats",
      server,
      callerNc: opened,
      responderNc,
      caller: natsTransport(opened),
      responder: natsTransport(responderNc),
      ready: async () => {
        await Promise.all([opened.flush(), responderNc.flush()]);
      },
      async [Symbol.asyncDispose]() {
        await opened.close();
        await responderNc.close();
        await server.stop();
      },
    };
  } catch (error) {
    await callerNc?.close();
    await server.stop();
    throw error;
  }
}

/** An in-memory fixture: one bus, both sides. */
export function memoryFixture(): Promise<Fixture> {
  const bus = memoryTransport();
  return Promise.resolve({
    name: "memory",
    caller: bus,
    responder: bus,
    ready: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
}
