/**
 * Tracing from a browser: a page traces its request with
 * `@seed/callbacks/otel` (bundled with esbuild, run in headless Chromium), and
 * the Deno responder's span continues the page's trace.
 */

import * as v from "valibot";
import { SpanKind } from "@opentelemetry/api";
import { assert, assertEquals } from "@std/assert";
import { exported, registerSdk } from "./helpers/otel_sdk.ts";
import { defineRequest, Endpoint, int, natsTransport } from "../mod.ts";
import { instrument } from "../otel.ts";
import { bundle } from "./helpers/bundle.ts";
import { launchChromium, openPage, servePage } from "./helpers/browser.ts";
import { connectWs } from "./helpers/connect.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const exporter = registerSdk();

const Traced = defineRequest({
  subject: "otel.browser",
  request: v.object({ from: v.string() }),
  response: int(),
});

Deno.test("otel - a browser page's request continues into the Deno responder's trace", async () => {
  const script = await bundle(new URL("./helpers/otel_page.ts", import.meta.url), {
    platform: "browser",
  });
  await using server = await startNatsServer();
  const nc = await connectWs(server);
  try {
    await using responder = new Endpoint(natsTransport(nc));
    using _tracing = instrument(responder);
    await responder.handle(Traced, ({ from }) => from.length).ready;
    await using site = servePage({
      html: '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>traced</title>' +
        '<link rel="icon" href="data:,"><script type="module" src="/app.js"></script></head>' +
        "<body></body></html>",
      script,
    });
    await using chromium = await launchChromium();
    await using page = await openPage(
      chromium.browser,
      `${site.url}?ws=${encodeURIComponent(server.wsUrl)}`,
    );
    const missing: string[] = [];
    page.page.on("response", (r) => void (r.status() === 404 && missing.push(r.url())));
    await page.page.waitForSelector("body[data-trace]", { state: "attached", timeout: 10_000 })
      .catch((e) => {
        throw new Error(`the page did not finish: ${JSON.stringify(page.errors)}`, { cause: e });
      });
    const [traceId, parentId] = (await page.page.getAttribute("body", "data-trace"))!.split(" ");
    assertEquals(
      await page.page.getAttribute("body", "data-reply"),
      "4",
      JSON.stringify(page.errors),
    );
    // The page's own send span (a CLIENT span, child of its parent span)…
    const [sendId, kind] = (await page.page.getAttribute("body", "data-send"))!.split(" ");
    assertEquals(kind, String(SpanKind.CLIENT));
    assert(sendId !== parentId && /^[0-9a-f]{16}$/.test(sendId!), sendId);
    // …is the parent of the Deno responder's span, in the page's trace.
    const [served] = exporter.getFinishedSpans();
    assertEquals(served?.name, "process otel.browser");
    assertEquals(served?.spanContext().traceId, traceId);
    assertEquals(
      (served as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId,
      sendId,
    );
    assertEquals(page.errors, [], `missing: ${missing}`);
    await exported();
  } finally {
    await nc.close();
  }
});
