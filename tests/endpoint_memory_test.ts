import { contractSuite } from "./helpers/contract_suite.ts";
import { memoryFixture } from "./helpers/fixture.ts";

contractSuite("endpoint (memory)", memoryFixture);
