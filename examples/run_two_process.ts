/**
 * `deno task example:two-process`: the README's two processes against a
 * nats-server of their own — the responder started and ready, then the caller,
 * which prints the replies; then everything stops.
 *
 * @module
 */

import { startNatsServer } from "../tests/helpers/nats_server.ts";

await using server = await startNatsServer();
const env = { NATS_URL: server.wsUrl };
const run = (file: string) =>
  new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", new URL(file, import.meta.url).pathname],
    stdin: "null",
    stdout: "piped",
    env,
  });
console.log(`nats-server: ${server.wsUrl} (websocket)`);
const responder = run("./two_process/responder.ts").spawn();
const lines = responder.stdout.pipeThrough(new TextDecoderStream()).getReader();
try {
  let out = "";
  while (!out.includes("responder ready")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`the responder stopped before it was ready: ${out}`);
    out += value;
  }
  console.log(out.trim());
  const caller = await run("./two_process/caller.ts").output();
  console.log(new TextDecoder().decode(caller.stdout).trim());
} finally {
  responder.kill("SIGINT");
  while (!(await lines.read()).done) { /* drain */ }
  await responder.status;
}
