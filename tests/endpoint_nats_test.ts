import { contractSuite } from "./helpers/contract_suite.ts";
import { natsFixture } from "./helpers/fixture.ts";

contractSuite("endpoint (nats)", natsFixture);
