/**
 * The browser example (examples/browser/), bundled with esbuild and run in headless Chromium,
 * against a real nats-server: the page connects over WebSocket NATS, makes an int, an enum and
 * an object request and shows the typed replies; its Cancel button aborts a slow request. The
 * responders run here, in Deno.
 */
import * as v from "valibot";
import { assertEquals } from "@std/assert";
import type { NatsConnection } from "nats.ws";
import { defineRequest, Endpoint, int, natsTransport } from "../mod.ts";
import { Approve, CheckStock, PlaceOrder } from "./helpers/contract_suite.ts";
import { connectWs } from "./helpers/connect.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { bundle } from "./helpers/bundle.ts";
import { startCluster, startLeaf } from "./helpers/nats_cluster.ts";
import {
  type Chromium,
  launchChromium,
  type OpenedPage,
  openPage,
  type PageServer,
  servePage,
} from "./helpers/browser.ts";

/** The page's slow contract (examples/browser/app.ts). */
const Slow = defineRequest({
  subject: "reports.slow",
  request: v.object({ report: v.string() }),
  response: int(),
});

const html = await Deno.readTextFile(new URL("../examples/browser/index.html", import.meta.url));
const script = await bundle(new URL("../examples/browser/app.ts", import.meta.url), {
  platform: "browser",
});

interface Fixture extends AsyncDisposable {
  nc: NatsConnection;
  responder: Endpoint;
  /** the bodies the responder received, as `subject body-json` */
  received: string[];
  /** resolves once the slow handler has the request */
  slowStarted: Promise<void>;
  site: PageServer;
  chromium: Chromium;
  page: OpenedPage;
}

/**
 * The responders on a nats-server, the page connected to it; or, with
 * `leaf`, the responders on a hub and the page on a leaf node of it, as a
 * browser at an edge site would be.
 */
async function fixture(options: { leaf?: boolean } = {}): Promise<Fixture> {
  const stack = new AsyncDisposableStack();
  try {
    let responderUrl: string;
    let pageUrl: string;
    if (options.leaf) {
      const hub = await startCluster(1, { leafnodes: true });
      stack.defer(() => hub.stop());
      const leaf = await startLeaf(hub.nodes);
      stack.defer(() => leaf.stop());
      responderUrl = hub.nodes[0]!.wsUrl;
      pageUrl = leaf.wsUrl;
    } else {
      const server: NatsServer = stack.use(await startNatsServer());
      responderUrl = pageUrl = server.wsUrl;
    }
    const nc = await connectWs(responderUrl);
    stack.defer(() => nc.close());
    const responder = stack.use(new Endpoint(natsTransport(nc)));
    const received: string[] = [];
    const record = (subject: string, body: unknown) =>
      received.push(`${subject} ${JSON.stringify(body)}`);
    responder.handle(CheckStock, (body) => {
      record(CheckStock.subject, body);
      return body.sku === "A-1" ? 5 : 0;
    });
    responder.handle(Approve, (body) => {
      record(Approve.subject, body);
      return body.orderId === "o-1" ? "Approved" : "Rejected";
    });
    responder.handle(PlaceOrder, (body) => {
      record(PlaceOrder.subject, body);
      return { orderId: `${body.sku}x${body.qty}`, eta: 2 };
    });
    let onSlowStart!: () => void;
    const slowStarted = new Promise<void>((resolve) => onSlowStart = resolve);
    responder.handle(Slow, async (body, ctx) => {
      record(Slow.subject, body);
      onSlowStart();
      // never answers on its own: waits until the caller's time budget runs out or the
      // responder closes
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
      return 0;
    });
    await nc.flush();

    const site = stack.use(servePage({ html, script }));
    const chromium = stack.use(await launchChromium());
    const url = `${site.url}?ws=${encodeURIComponent(pageUrl)}`;
    const page = stack.use(await openPage(chromium.browser, url));
    const owned = stack.move();
    return {
      nc,
      responder,
      received,
      slowStarted,
      site,
      chromium,
      page,
      [Symbol.asyncDispose]: () => owned.disposeAsync(),
    };
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}

/** Waits until `#id` has the given `data-state`, then returns its text. */
async function settled(page: OpenedPage, id: string, state = "ok"): Promise<string | null> {
  await page.page.waitForSelector(`#${id}[data-state="${state}"]`, { timeout: 10_000 });
  return await page.page.textContent(`#${id}`);
}

for (const leaf of [false, true]) {
  const where = leaf ? ", through a leaf node" : "";
  Deno.test(`browser - the page shows the int, enum and object replies, typed${where}`, async () => {
    await using f = await fixture({ leaf });
    assertEquals(await settled(f.page, "status"), "done");
    assertEquals(await settled(f.page, "int"), "5");
    assertEquals(await settled(f.page, "enum"), '"Approved"');
    assertEquals(await settled(f.page, "object"), '{"orderId":"A-1x3","eta":2}');
    assertEquals(f.received.toSorted(), [
      'orders.approve {"orderId":"o-1"}',
      'orders.place {"sku":"A-1","qty":3}',
      'stock.check {"sku":"A-1"}',
    ]);
    assertEquals(f.page.errors, []);
  });
}

Deno.test("browser - Cancel aborts the slow request and the page shows the reason", async () => {
  await using f = await fixture();
  assertEquals(await settled(f.page, "status"), "done");
  assertEquals(await f.page.page.textContent("#slow"), "");
  assertEquals(await f.page.page.isDisabled("#slow-cancel"), true);

  await f.page.page.click("#slow-start");
  await f.slowStarted; // the request reached the responder, which does not answer
  assertEquals(await settled(f.page, "slow", "pending"), "waiting for the reply…");
  await f.page.page.click("#slow-cancel");
  assertEquals(await settled(f.page, "slow", "error"), "Error: cancelled by the user");
  // the very object the page aborted with, not a new Error with the same message
  assertEquals(await f.page.page.getAttribute("#slow", "data-same-reason"), "true");
  assertEquals(await f.page.page.isDisabled("#slow-cancel"), true);
  assertEquals(await f.page.page.isEnabled("#slow-start"), true);
  assertEquals(f.received.at(-1), 'reports.slow {"report":"yearly"}');
  assertEquals(f.page.errors, []);
});
