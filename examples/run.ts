/**
 * Runs an example with everything it needs, until Ctrl-C:
 *
 *   deno task example:gateway   # nats-server, the responders, the HTTP gateway
 *   deno task example:browser   # nats-server, the responders, the page bundled and served
 *   deno task example:worker    # nats-server, the responders, the Worker bundled and run in workerd
 *
 * It starts its own nats-server (websocket enabled, on free ports), answers
 * the examples' contracts (stock.check, orders.place, orders.approve and the
 * page's slow report) from one responder endpoint, prints the URL to open,
 * and stops everything cleanly on Ctrl-C. `PORT` picks the HTTP port (default
 * 8000; 0 for any free one).
 *
 * @module
 */

import * as v from "valibot";
import { connect } from "nats.ws";
import { wsFactory } from "../deno.ts";
import { defineRequest, Endpoint, int, natsTransport, ReplyError } from "../mod.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { Approve, CheckStock, PlaceOrder, startGateway } from "./gateway.ts";

/** The page's slow report: answered after a few seconds, unless the caller gives up. */
const Slow = defineRequest({
  subject: "reports.slow",
  request: v.object({ report: v.string() }),
  response: int(),
});

const html = { "content-type": "text/html; charset=utf-8" };
const script = { "content-type": "text/javascript; charset=utf-8" };

const which = Deno.args[0];
if (which !== "gateway" && which !== "browser" && which !== "worker") {
  console.error("usage: deno task example:gateway | example:browser | example:worker");
  Deno.exit(2);
}
const port = Number(Deno.env.get("PORT") ?? 8000);
const stop = new AbortController();
const onSignal = () => stop.abort();
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);

await using server = await startNatsServer();
const options = { servers: server.wsUrl, wsFactory };
const responderNc = await connect(options);
try {
  await using responder = new Endpoint(natsTransport(responderNc));
  await Promise.all([
    responder.handle(CheckStock, ({ sku }) => {
      if (sku === "Z-9") throw new ReplyError(404, `unknown sku ${sku}`);
      return sku === "A-1" ? 5 : 0;
    }),
    responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, eta: 2 })),
    responder.handle(Approve, ({ orderId }) => orderId.startsWith("o-") ? "Approved" : "Rejected"),
    responder.handle(Slow, (_body, { signal }) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => resolve(42), 3_000);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      })),
  ].map((registration) => registration.ready));
  console.log(`nats-server: ${server.wsUrl} (websocket), responders ready`);

  if (which === "gateway") {
    const gateway = await startGateway({
      natsUrl: server.wsUrl,
      port,
      signal: stop.signal,
      onListen: ({ hostname, port }) => {
        console.log(`open http://${hostname}:${port}/stock/A-1   (Ctrl-C stops everything)`);
      },
    });
    await gateway.finished;
  } else if (which === "worker") {
    // The Worker's bundler and runtime are large: loaded only for this example.
    const { bundle } = await import("../tests/helpers/bundle.ts");
    const { startWorkerd } = await import("../tests/helpers/workerd.ts");
    const script = await bundle(new URL("./worker/worker.ts", import.meta.url), {
      platform: "browser",
    });
    await using worker = await startWorkerd({ script, bindings: { NATS_URL: server.wsUrl } });
    console.log(`open ${worker.url}/stock/A-1   (Ctrl-C stops everything)`);
    await new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true }));
  } else {
    const page = await bundlePage();
    const http = Deno.serve({
      port,
      hostname: "127.0.0.1",
      signal: stop.signal,
      onListen: ({ hostname, port }) => {
        const ws = encodeURIComponent(server.wsUrl);
        console.log(`open http://${hostname}:${port}/?ws=${ws}   (Ctrl-C stops everything)`);
      },
    }, (request) => {
      const { pathname } = new URL(request.url);
      if (pathname === "/") return new Response(page.html, { headers: html });
      if (pathname === "/app.js") return new Response(page.script, { headers: script });
      return new Response("not found", { status: 404 });
    });
    await http.finished;
  }
} finally {
  await responderNc.close();
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  console.log("stopped");
}

/** The page and its script, bundled for the browser by `deno bundle`. */
async function bundlePage(): Promise<{ html: string; script: string }> {
  const dir = await Deno.makeTempDir({ prefix: "callbacks-page-" });
  try {
    const out = `${dir}/app.js`;
    const app = new URL("./browser/app.ts", import.meta.url).pathname;
    const { success, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform=browser", app, "-o", out],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!success) throw new Error(`bundling the page failed:\n${new TextDecoder().decode(stderr)}`);
    return {
      html: await Deno.readTextFile(new URL("./browser/index.html", import.meta.url)),
      script: await Deno.readTextFile(out),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
