/// <reference lib="dom" />
/**
 * The browser page's script (examples/browser/index.html): connects to WebSocket NATS at the
 * URL in the page's `?ws=` query, makes an int, an enum and an object request and shows the
 * typed replies (as JSON, so the type is visible too), and sends a slow request that the
 * Cancel button aborts with an `AbortController`.
 *
 * Every result element carries `data-state`: `pending`, `ok` or `error` (`idle` for the slow
 * request before it is sent); an error shows as `name: message`. When the slow request fails,
 * `#slow` also gets `data-same-reason`: `"true"` when the rejection is the very object the
 * request was aborted with (`controller.signal.reason`, as the web platform does), else
 * `"false"`.
 *
 * Bundle it for the browser with esbuild (format esm, nats.ws and valibot included):
 * `tests/helpers/browser.ts` shows how, `tests/browser_test.ts` runs it in Chromium.
 *
 * @module
 */

import * as v from "valibot";
import { connect } from "nats.ws";
import { defineRequest, Endpoint, enumOf, int, natsTransport, object } from "../../mod.ts";

/** Stock left for a SKU. */
const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});

/** Approves or rejects an order. */
const Approve = defineRequest({
  subject: "orders.approve",
  request: v.object({ orderId: v.string() }),
  response: enumOf(["Approved", "Rejected"]),
});

/** Places an order. */
const PlaceOrder = defineRequest({
  subject: "orders.place",
  request: v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});

/** A report that takes its time: the responder answers when it is done, or never. */
const Slow = defineRequest({
  subject: "reports.slow",
  request: v.object({ report: v.string() }),
  response: int(),
});

/** The reason the Cancel button aborts the slow request with. */
const CANCELLED = "cancelled by the user";

type State = "idle" | "pending" | "ok" | "error";

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

function show(id: string, state: State, text: string): void {
  const el = element(id);
  el.dataset.state = state;
  el.textContent = text;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * Shows what `reply` settles with in `#id`: the value as JSON, or the rejection (after
 * `onError` saw it, so what it records is on the element once `data-state` says `error`).
 */
async function showReply(
  id: string,
  reply: Promise<unknown>,
  onError?: (err: unknown) => void,
): Promise<boolean> {
  show(id, "pending", "waiting for the reply…");
  try {
    show(id, "ok", JSON.stringify(await reply));
    return true;
  } catch (err) {
    onError?.(err);
    show(id, "error", describe(err));
    return false;
  }
}

async function main(): Promise<void> {
  const servers = new URL(location.href).searchParams.get("ws");
  if (!servers) {
    show("status", "error", "add ?ws=ws://host:port (a NATS websocket URL) to the page URL");
    return;
  }
  show("status", "pending", `connecting to ${servers}…`);
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await connect({ servers });
  } catch (err) {
    show(
      "status",
      "error",
      `cannot reach NATS at ${servers} (${describe(err)}): is nats-server running with websocket ` +
        `on that port? The URL is the websocket port, not the client port 4222.`,
    );
    return;
  }
  const endpoint = new Endpoint(natsTransport(nc), { timeout: 10_000 });
  globalThis.addEventListener("pagehide", () => {
    void endpoint.close().then(() => nc.close());
  });
  show("status", "pending", `connected to ${servers}`);

  const results = await Promise.all([
    showReply("int", endpoint.request(CheckStock, { sku: "A-1" })),
    showReply("enum", endpoint.request(Approve, { orderId: "o-1" })),
    showReply("object", endpoint.request(PlaceOrder, { sku: "A-1", qty: 3 })),
  ]);
  const failed = results.filter((ok) => !ok).length;
  show("status", failed ? "error" : "ok", failed ? `${failed} of 3 requests failed` : "done");

  const start = element<HTMLButtonElement>("slow-start");
  const cancel = element<HTMLButtonElement>("slow-cancel");
  start.disabled = false;
  start.addEventListener("click", async () => {
    const controller = new AbortController();
    const onCancel = () => controller.abort(new Error(CANCELLED));
    cancel.addEventListener("click", onCancel, { once: true });
    start.disabled = true;
    cancel.disabled = false;
    const slow = element("slow");
    delete slow.dataset.sameReason;
    await showReply(
      "slow",
      endpoint.request(Slow, { report: "yearly" }, {
        signal: controller.signal,
      }),
      (err) => {
        // An abort rejects with signal.reason itself, not a copy with the same message.
        slow.dataset.sameReason = String(
          controller.signal.aborted && err === controller.signal.reason,
        );
      },
    );
    cancel.removeEventListener("click", onCancel);
    cancel.disabled = true;
    start.disabled = false;
  });
}

main().catch((err) => show("status", "error", describe(err)));
