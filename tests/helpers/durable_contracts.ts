/** A contract of the durable tests that no later instance registers a reply handler for. */

import * as v from "valibot";
import { defineRequest, object } from "../../mod.ts";

/** Answered, but nobody handles its replies once its requester is gone. */
export const Orphan = defineRequest({
  subject: "durable.orphan",
  request: v.object({ n: v.number() }),
  response: object(v.object({ n: v.number() })),
});
