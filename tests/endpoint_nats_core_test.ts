import { connectCore } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import { connectionFixture } from "./helpers/fixture.ts";

// The contract suite over @nats-io/nats-core's wsconnect(), the maintained
// successor of nats.ws: natsTransport takes either connection.
contractSuite("endpoint (nats-core)", () => connectionFixture("nats-core", (s) => connectCore(s)));
