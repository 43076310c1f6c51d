/**
 * `deno task example:worker`: nats-server, the responders, and the Cloudflare
 * Worker (examples/worker/worker.ts, with its callbacks Durable Object)
 * bundled with esbuild and run in workerd,
 * until Ctrl-C. Its bundler and runtime are large, so they live in this file
 * alone: the other examples never download them.
 *
 * @module
 */

import { bundle } from "../tests/helpers/bundle.ts";
import { startWorkerd } from "../tests/helpers/workerd.ts";
import { startBackend } from "./dev.ts";

await using backend = await startBackend();
const script = await bundle(new URL("./worker/worker.ts", import.meta.url), {
  platform: "browser",
});
if (!backend.stopped.aborted) {
  // The Worker's callbacks go through the callbacks Durable Object (in memory here).
  await using worker = await startWorkerd({
    script,
    bindings: { NATS_SERVERS: backend.wsUrl },
    durableObjects: { CALLBACKS: "CallbacksObject" },
  });
  console.log(`open ${worker.url}/stock/A-1   (Ctrl-C stops everything)`);
  await backend.untilStopped();
}
