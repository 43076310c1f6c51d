/**
 * Callbacks that survive a restart: replies to a named requester are kept by
 * JetStream while no instance of it runs, and handed, typed, to the next
 * instance's `onReply` handlers with `recovered: true`.
 *
 * Needs a nats-server with JetStream (`jetstream { store_dir: … }`) and a
 * nats.ws connection (its JetStream API).
 *
 * @example A requester whose replies outlive it
 * ```ts ignore
 * import { connect } from "nats.ws";
 * import { Endpoint } from "@seed/callbacks";
 * import { durableTransport } from "@seed/callbacks/durable";
 *
 * const nc = await connect({ servers: "ws://127.0.0.1:8080" });
 * await using transport = await durableTransport(nc, { name: "checkout-1" });
 * await using endpoint = new Endpoint(transport, { timeout: 30_000 });
 * endpoint.onReply(PlaceOrder, (order, info) => {
 *   if (info.recovered) console.log("placed while we were away:", order.orderId);
 * });
 * for (const request of await transport.takeExpired()) {
 *   console.log("no reply came while we were away:", request.subject, request.id);
 * }
 * const order = await endpoint.request(PlaceOrder, { sku: "A-1", qty: 1 });
 * ```
 *
 * @module
 */

import { DurableError } from "./src/errors.ts";
import type {
  JetStreamConnectionLike,
  JetStreamLike,
  JetStreamManagerLike,
} from "./src/durable/jetstream.ts";
import { claim } from "./src/durable/owner.ts";
import { DurableTransport } from "./src/durable/transport.ts";
import { natsTransport } from "./src/transports/nats.ts";

export { DurableError } from "./src/errors.ts";
export type { DurableTransport, ExpiredRequest } from "./src/durable/transport.ts";
export type { JetStreamConnectionLike } from "./src/durable/jetstream.ts";

/** Options of {@linkcode durableTransport}. */
export interface DurableOptions {
  /** The requester's name, the same across its restarts: letters, digits, `_` and `-`. */
  name: string;
  /** How long replies and records of waiting requests are kept, in milliseconds. Default 1 hour. */
  maxAge?: number;
  /** The stream that keeps replies, created if missing. Default `CALLBACKS`. */
  stream?: string;
  /** The subject space of the stream: replies go to `<prefix>.replies.<name>.…`. Default `_CALLBACKS`. */
  prefix?: string;
  /** How long a delivered reply may go unacknowledged before it is delivered again, in milliseconds. Default 30 000. */
  ackWait?: number;
}

const NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Makes a transport whose replies survive the process. It creates (if
 * missing) a file-backed stream on `<prefix>.replies.>`, a key-value bucket
 * of waiting requests, and a durable consumer for `name`, and claims `name`
 * for this instance.
 *
 * @param nc A nats.ws connection to a server with JetStream.
 * @param options `name` (required), `maxAge`, `stream`, `prefix`, `ackWait`.
 * @returns The transport, for `new Endpoint(transport)`; `close()` frees the name.
 * @throws {DurableError} The server has no JetStream (`no-jetstream`), or another live instance
 * holds the name (`name-in-use`).
 * @throws {TypeError} A name, stream or prefix the server would refuse.
 * @throws {RangeError} `maxAge` or `ackWait` under a second.
 *
 * @example Refused: the name is taken
 * ```ts ignore
 * import { DurableError, durableTransport } from "@seed/callbacks/durable";
 * const first = await durableTransport(nc, { name: "checkout-1" });
 * const second = await durableTransport(nc2, { name: "checkout-1" }).catch((e) => e);
 * console.assert(second instanceof DurableError && second.reason === "name-in-use");
 * ```
 */
export async function durableTransport(
  nc: JetStreamConnectionLike,
  options: DurableOptions,
): Promise<DurableTransport> {
  const {
    name,
    maxAge = 3_600_000,
    stream = "CALLBACKS",
    prefix = "_CALLBACKS",
    ackWait = 30_000,
  } = options ?? {};
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new TypeError(
      `durableTransport: name must be letters, digits, "_" and "-", got ${JSON.stringify(name)}`,
    );
  }
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new TypeError(
      `durableTransport: prefix must be a subject without wildcards, got ${prefix}`,
    );
  }
  if (typeof stream !== "string" || !NAME.test(stream)) {
    throw new TypeError(
      `durableTransport: stream must be letters, digits, "_" and "-", got ${
        JSON.stringify(stream)
      }`,
    );
  }
  for (const [what, value] of [["maxAge", maxAge], ["ackWait", ackWait]] as const) {
    if (typeof value !== "number" || !(value >= 1_000)) {
      throw new RangeError(`durableTransport: ${what} must be at least 1000 ms, got ${value}`);
    }
  }
  let jsm: JetStreamManagerLike;
  try {
    jsm = await nc.jetstreamManager() as JetStreamManagerLike;
  } catch (cause) {
    throw new DurableError(
      "the NATS server has no JetStream: start nats-server with JetStream enabled " +
        "(`jetstream { store_dir: … }` in its config, or -js), then call durableTransport again",
      { reason: "no-jetstream", cause },
    );
  }
  const subjects = `${prefix}.replies.>`;
  await jsm.streams.info(stream).catch(() =>
    jsm.streams.add({
      name: stream,
      subjects: [subjects],
      storage: "file",
      // A reply is deleted once its name's consumer acknowledged it; kept at most maxAge.
      retention: "interest",
      max_age: maxAge * 1e6,
      discard: "old",
    })
  );
  const js = nc.jetstream() as JetStreamLike;
  const kv = await js.views.kv(`${stream}_PENDING`, { history: 1, ttl: maxAge });
  const inner = natsTransport(nc);
  const owner = await claim({ nc, transport: inner, kv }, {
    name,
    presence: `${prefix}.presence.${name}`,
    key: `owner.${name}`,
  });
  try {
    const replies = `${prefix}.replies.${name}`;
    await jsm.consumers.add(stream, {
      durable_name: name,
      filter_subject: `${replies}.>`,
      ack_policy: "explicit",
      ack_wait: ackWait * 1e6,
      deliver_policy: "all",
      max_deliver: -1,
    });
    return new DurableTransport({ nc, inner, js, jsm, kv, owner, name, stream, replies, maxAge });
  } catch (error) {
    await owner.release();
    throw error;
  }
}
