/**
 * What `deno task example:*` shares: a nats-server of its own (websocket on,
 * free ports), one responder endpoint answering the examples' contracts, and
 * Ctrl-C handling. Development tooling, not part of the library.
 *
 * @module
 */

import * as v from "valibot";
import { connect, type NatsConnection } from "nats.ws";
import { wsFactory } from "../deno.ts";
import { defineRequest, Endpoint, int, natsTransport, ReplyError } from "../mod.ts";
import { type NatsServer, startNatsServer } from "../tests/helpers/nats_server.ts";
import { installLine } from "../tests/prerequisites.ts";
import { Approve, CheckStock, PlaceOrder } from "./gateway.ts";

/** The page's slow report: answered after a few seconds, unless the caller gives up. */
const Slow = defineRequest({
  subject: "reports.slow",
  request: v.object({ report: v.string() }),
  response: int(),
});

/** A running example back end. */
export interface Backend extends AsyncDisposable {
  /** The nats-server's websocket URL. */
  readonly wsUrl: string;
  /** Aborts on Ctrl-C (or SIGTERM). */
  readonly stopped: AbortSignal;
  /** Resolves on Ctrl-C, at once if it came already. */
  untilStopped(): Promise<void>;
}

/**
 * Starts nats-server and the responders, and listens for Ctrl-C. Exits with
 * one line saying what to install when nats-server is missing.
 */
export async function startBackend(): Promise<Backend> {
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let responder: Endpoint | undefined;
  const close = async () => {
    await responder?.close();
    await nc?.close();
    await server?.stop();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    console.log("stopped");
  };
  try {
    try {
      server = await startNatsServer();
    } catch (error) {
      console.error(
        `cannot start nats-server (${(error as Error).message.split("\n")[0]}): ` +
          `install it with  ${installLine(["nats-server"])}  or set NATS_SERVER_BIN`,
      );
      Deno.exit(1);
    }
    const options = { servers: server.wsUrl, wsFactory }; // nats.ws's type omits wsFactory
    nc = await connect(options);
    responder = new Endpoint(natsTransport(nc));
    await Promise.all([
      responder.handle(CheckStock, ({ sku }) => {
        if (sku === "Z-9") throw new ReplyError(404, `unknown sku ${sku}`);
        return sku === "A-1" ? 5 : 0;
      }),
      responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, eta: 2 })),
      responder.handle(
        Approve,
        ({ orderId }) => orderId.startsWith("o-") ? "Approved" : "Rejected",
      ),
      responder.handle(Slow, (_body, { signal }) =>
        new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => resolve(42), 3_000);
          signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(signal.reason);
          }, { once: true });
        })),
    ].map((registration) => registration.ready));
  } catch (error) {
    await close();
    throw error;
  }
  console.log(`nats-server: ${server.wsUrl} (websocket), responders ready`);
  return {
    wsUrl: server.wsUrl,
    stopped: stop.signal,
    untilStopped: () =>
      new Promise((resolve) => {
        if (stop.signal.aborted) resolve();
        else stop.signal.addEventListener("abort", () => resolve(), { once: true });
      }),
    [Symbol.asyncDispose]: close,
  };
}

/** The HTTP port: `PORT`, default 8000 (0: any free port). */
export function port(): number {
  return Number(Deno.env.get("PORT") ?? 8000);
}
