/**
 * Runs an example with everything it needs, until Ctrl-C:
 *
 *   deno task example:gateway   # nats-server, the responders, the HTTP gateway
 *   deno task example:browser   # nats-server, the responders, the page bundled and served
 *
 * (`deno task example:worker` is examples/run_worker.ts.) It prints the URL to
 * open and stops everything cleanly on Ctrl-C. `PORT` picks the HTTP port
 * (default 8000; 0 for any free one).
 *
 * @module
 */

import { port, startBackend } from "./dev.ts";
import { startGateway } from "./gateway.ts";

const which = Deno.args[0];
if (which !== "gateway" && which !== "browser") {
  console.error("usage: deno task example:gateway | example:browser | example:worker");
  Deno.exit(2);
}
const html = { "content-type": "text/html; charset=utf-8" };
const script = { "content-type": "text/javascript; charset=utf-8" };

await using backend = await startBackend();
if (which === "gateway") {
  if (!backend.stopped.aborted) {
    const gateway = await startGateway({
      natsUrl: backend.wsUrl,
      port: port(),
      signal: backend.stopped,
      onListen: ({ hostname, port }) => {
        console.log(`open http://${hostname}:${port}/stock/A-1   (Ctrl-C stops everything)`);
      },
    });
    if (backend.stopped.aborted) await gateway.shutdown();
    await gateway.finished;
  }
} else {
  const page = await bundlePage();
  if (page !== undefined && !backend.stopped.aborted) {
    const http = Deno.serve({
      port: port(),
      hostname: "127.0.0.1",
      onListen: ({ hostname, port }) => {
        const ws = encodeURIComponent(backend.wsUrl);
        console.log(`open http://${hostname}:${port}/?ws=${ws}   (Ctrl-C stops everything)`);
      },
    }, (request) => {
      const { pathname } = new URL(request.url);
      if (pathname === "/") return new Response(page.html, { headers: html });
      if (pathname === "/app.js") return new Response(page.script, { headers: script });
      return new Response("not found", { status: 404 });
    });
    await backend.untilStopped();
    await http.shutdown();
  }
}

/**
 * The page and its script, bundled for the browser by `deno bundle`;
 * `undefined` when Ctrl-C stopped the bundler.
 */
async function bundlePage(): Promise<{ html: string; script: string } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "callbacks-page-" });
  try {
    const out = `${dir}/app.js`;
    const app = new URL("./browser/app.ts", import.meta.url).pathname;
    const { success, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform=browser", app, "-o", out],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (backend.stopped.aborted) return undefined;
    if (!success) throw new Error(`bundling the page failed:\n${new TextDecoder().decode(stderr)}`);
    return {
      html: await Deno.readTextFile(new URL("./browser/index.html", import.meta.url)),
      script: await Deno.readTextFile(out),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
