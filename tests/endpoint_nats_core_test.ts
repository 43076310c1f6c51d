import type { NatsConnection } from "@nats-io/nats-core";
import { natsTransport } from "../mod.ts";
import { connectCore } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import type { Fixture } from "./helpers/fixture.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

// The contract suite over @nats-io/nats-core's wsconnect(), the maintained
// successor of nats.ws: natsTransport takes either connection.
async function natsCoreFixture(): Promise<Fixture> {
  const server = await startNatsServer();
  const opened: NatsConnection[] = [];
  try {
    opened.push(await connectCore(server), await connectCore(server));
  } catch (error) {
    for (const nc of opened) await nc.close();
    await server.stop();
    throw error;
  }
  const [caller, responder] = opened as [NatsConnection, NatsConnection];
  return {
    name: "nats-core",
    caller: natsTransport(caller),
    responder: natsTransport(responder),
    ready: async () => {
      await Promise.all([caller.flush(), responder.flush()]);
    },
    async [Symbol.asyncDispose]() {
      await caller.close();
      await responder.close();
      await server.stop();
    },
  };
}

contractSuite("endpoint (nats-core)", natsCoreFixture);
