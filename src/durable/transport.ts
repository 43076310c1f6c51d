/**
 * The durable transport: an endpoint's replies go to subjects a JetStream
 * stream captures, and come back through a durable consumer per name, so
 * replies that arrive while no instance runs are kept for the next one.
 * Requests waiting for a reply are recorded in a key-value bucket, so the
 * next instance knows which expired while it was away.
 *
 * @module
 */

import { connectionClosed } from "../errors.ts";
import type {
  PublishOptions,
  SubscribeOptions,
  Transport,
  TransportMessage,
  TransportStatus,
  TransportSubscription,
} from "../transport.ts";
import { TIMEOUT_HEADER } from "../wire.ts";
import type {
  JetStreamConnectionLike,
  JetStreamLike,
  JetStreamManagerLike,
  JsMsgLike,
  KvLike,
} from "./jetstream.ts";
import type { Ownership } from "./owner.ts";

/** How long a reply with no handler yet first waits before it is delivered again, in milliseconds. */
const RETRY_LATER_MS = 1_000;
/** The longest it waits between deliveries, in milliseconds. */
const MAX_RETRY_LATER_MS = 60_000;

/**
 * How long a reply no handler takes yet waits before its next delivery: 1 s
 * after its first, then 2, 4… up to a minute. `deliveries` is JetStream's
 * count of them (nats.ws's `redeliveryCount`, 1 the first time).
 */
export function retryLaterMs(deliveries: number): number {
  return Math.min(RETRY_LATER_MS * 2 ** Math.max(0, deliveries - 1), MAX_RETRY_LATER_MS);
}

/** A request that expired with no reply while no instance of its durable name ran. */
export interface ExpiredRequest {
  /** The request's id (its `request` event's `id`). */
  readonly id: string;
  /** The subject it was sent on (its contract's). */
  readonly subject: string;
  /** When its caller stopped waiting, as a `Date.now()` timestamp. */
  readonly deadline: number;
}

/** What is recorded for a waiting request. */
interface PendingRecord {
  subject: string;
  reply: string;
  deadline: number;
}

/** Where a durable transport keeps things. */
export interface DurableParts {
  readonly nc: JetStreamConnectionLike;
  readonly inner: Transport;
  readonly js: JetStreamLike;
  readonly jsm: JetStreamManagerLike;
  readonly kv: KvLike;
  readonly owner: Ownership;
  readonly name: string;
  readonly stream: string;
  /** Subject space of this name's replies, e.g. `_CALLBACKS.replies.checkout-1`. */
  readonly replies: string;
  /** How long a waiting request may be recorded when it sent no time budget, in milliseconds. */
  readonly maxAge: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A transport whose replies survive the process: made by `durableTransport()`.
 * Everything but replies goes through the connection as usual. It serves one
 * endpoint.
 *
 * @example Starting, and learning what expired while away
 * ```ts ignore
 * import { Endpoint } from "@seed/callbacks";
 * import { durableTransport } from "@seed/callbacks/durable";
 * await using transport = await durableTransport(nc, { name: "checkout-1" });
 * await using endpoint = new Endpoint(transport);
 * endpoint.onReply(PlaceOrder, (order, { recovered }) => console.log(order, recovered));
 * for (const { subject, id } of await transport.takeExpired()) console.warn("no reply:", subject, id);
 * ```
 */
export class DurableTransport implements Transport, AsyncDisposable {
  /** Replies are kept for the next instance of this name. */
  readonly keepsReplies = true;
  /** The name this instance holds. */
  readonly name: string;
  readonly #parts: DurableParts;
  /** Ids of requests this instance sent and still waits for (no record lookup needed). */
  readonly #own = new Set<string>();
  /** The stream sequence of each record this instance knows, to delete it without a marker. */
  readonly #records = new Map<string, number>();
  /** Ids whose reply is being handed over (until its record is gone). */
  readonly #delivering = new Set<string>();
  readonly #consuming = new Set<() => void>();
  #closed = false;

  /**
   * Use `durableTransport()`: it sets up the stream, the bucket and the
   * consumer, and claims the name.
   *
   * @param parts What `durableTransport()` set up.
   */
  constructor(parts: DurableParts) {
    this.#parts = parts;
    this.name = parts.name;
  }

  /** Replies to this name's requests go under it (captured by the stream). */
  get inboxPrefix(): string {
    return this.#parts.replies;
  }

  /** The connection's `max_payload`. */
  get maxPayload(): number {
    return this.#parts.inner.maxPayload;
  }

  /** Whether the connection is up. */
  get connected(): boolean {
    return this.#parts.inner.connected !== false;
  }

  /** The connection's changes. */
  watch(listener: (status: TransportStatus) => void): () => void {
    return this.#parts.inner.watch?.(listener) ?? (() => {});
  }

  /** A round trip to the server. */
  flush(): Promise<void> {
    return this.#parts.inner.flush?.() ?? Promise.resolve();
  }

  /**
   * Publishes. A request that waits for a reply here is recorded first (its
   * subject, reply subject and deadline), then sent, so that the next
   * instance knows it even if this one dies right after sending.
   */
  publish(subject: string, data: Uint8Array, options: PublishOptions = {}): void {
    const { reply } = options;
    const { inner, kv, replies, maxAge, name } = this.#parts;
    if (reply === undefined || !reply.startsWith(`${replies}.`)) {
      return inner.publish(subject, data, options);
    }
    if (this.#closed) throw connectionClosed();
    const id = reply.slice(reply.lastIndexOf(".") + 1);
    this.#own.add(id);
    const budget = Number(options.headers?.[TIMEOUT_HEADER]);
    const record: PendingRecord = {
      subject,
      reply,
      deadline: Date.now() + (budget > 0 ? budget : maxAge),
    };
    const send = () => {
      // Settled meanwhile (aborted, timed out): not sent, and its record goes.
      if (!this.#own.has(id)) return this.#drop(id);
      try {
        inner.publish(subject, data, options);
      } catch {
        // The connection closed meanwhile: the endpoint settles the request.
      }
    };
    // Recorded, then sent; if recording fails, sent anyway (only recovery after a crash loses).
    kv.put(pendingKey(name, id), encoder.encode(JSON.stringify(record))).then((seq) => {
      this.#records.set(id, seq);
      send();
    }, send);
  }

  /**
   * Subscribes. The endpoint's reply inbox is served by the name's durable
   * consumer: every reply to this name, this instance's and those kept from
   * earlier ones.
   */
  subscribe(
    subject: string,
    onMessage: (message: TransportMessage) => void,
    options: SubscribeOptions = {},
  ): TransportSubscription {
    const { inner, replies } = this.#parts;
    if (!subject.startsWith(`${replies}.`)) return inner.subscribe(subject, onMessage, options);
    if (this.#closed) throw connectionClosed();
    if (this.#consuming.size > 0) {
      throw new TypeError(
        `the durable transport ${this.name} already serves an endpoint's replies: make one ` +
          `durable transport, with its own name, per endpoint`,
      );
    }
    return this.#consume(subject, onMessage, options);
  }

  /**
   * The request settled: its record goes, at once when no reply settled it,
   * else once that reply is acknowledged (so a crash in between finds it).
   */
  forget(id: string, replied: boolean): void {
    if (this.#own.delete(id) && !replied) this.#drop(id);
  }

  /**
   * The requests of this name that expired with no reply while no instance
   * waited for them, each reported once: they are forgotten as they are
   * returned. Requests whose reply is kept (waiting for an `onReply` handler)
   * are not expired.
   *
   * @returns The expired requests, oldest deadline first.
   *
   * @example Compensating
   * ```ts ignore
   * for (const request of await transport.takeExpired()) await compensate(request.subject, request.id);
   * ```
   */
  async takeExpired(): Promise<ExpiredRequest[]> {
    const { kv, jsm, stream, name } = this.#parts;
    const now = Date.now();
    const expired: ExpiredRequest[] = [];
    // The keys first: deleting while listing would end the listing.
    const keys: string[] = [];
    for await (const key of await kv.keys(`pending.${name}.*`)) keys.push(key);
    for (const key of keys) {
      const id = key.slice(key.lastIndexOf(".") + 1);
      // This instance's callback settles it, or its reply is being handed over.
      if (this.#own.has(id) || this.#delivering.has(id)) continue;
      const entry = await kv.get(key).catch(() => null);
      if (entry === null || entry.operation !== "PUT") continue;
      this.#records.set(id, entry.revision);
      const record = readRecord(entry.value);
      if (record === undefined) {
        this.#drop(id); // not a record this library wrote
        continue;
      }
      if (record.deadline > now) continue;
      try {
        await jsm.streams.getMessage(stream, { last_by_subj: record.reply });
        continue; // its reply is kept: it comes to onReply
      } catch {
        // No reply stored.
      }
      if (this.#delivering.has(id)) continue; // it came meanwhile
      expired.push({ id, subject: record.subject, deadline: record.deadline });
      this.#drop(id);
    }
    return expired.sort((a, b) => a.deadline - b.deadline);
  }

  /**
   * Stops consuming and frees the name at once; the connection stays open.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#consuming]) stop();
    await this.#parts.owner.release();
  }

  /** Closes, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #consume(
    subject: string,
    onMessage: (message: TransportMessage) => void,
    options: SubscribeOptions,
  ): TransportSubscription {
    const { js, stream, name, inner } = this.#parts;
    let messages: { stop(): void } | undefined;
    let stopped = false;
    // The server's no-responders status comes to the requester's own subscription, not to the
    // stream: a plain one on the inbox passes statuses on (replies come from the consumer).
    const statuses = inner.subscribe(subject, (message) => {
      try {
        if (message.status !== 0) onMessage(message);
      } catch {
        // Not readable: nothing to settle.
      }
    }, options);
    const stop = () => {
      stopped = true;
      messages?.stop();
      statuses.unsubscribe();
      this.#consuming.delete(stop);
      // The endpoint is gone: its requests' records stay for the next instance.
      this.#own.clear();
    };
    this.#consuming.add(stop);
    const ready = (async () => {
      await statuses.ready;
      const consumer = await js.consumers.get(stream, name);
      const iterator = await consumer.consume({ max_messages: 256 });
      messages = iterator;
      if (stopped) return iterator.stop();
      (async () => {
        for await (const m of iterator) {
          // Pulled but no longer wanted (the inbox closed): back to the stream at once.
          if (stopped) m.nak();
          else void this.#deliver(m, { onMessage, live: () => !stopped });
        }
      })().catch((error) => options.onError?.(error as Error));
    })();
    ready.catch((error) => options.onError?.(error as Error));
    return { ready, unsubscribe: stop };
  }

  /**
   * Hands one kept reply to the endpoint, then acknowledges it once its
   * callback or handlers have run (a macrotask later) and drops its record; a
   * reply asked for again later is not acknowledged but delivered again, later
   * each time.
   */
  async #deliver(
    m: JsMsgLike,
    to: { onMessage: (message: TransportMessage) => void; live: () => boolean },
  ): Promise<void> {
    const { kv, name } = this.#parts;
    let later = false;
    let id = "";
    try {
      id = m.subject.slice(m.subject.lastIndexOf(".") + 1);
      this.#delivering.add(id);
      let requestSubject: string | undefined;
      if (!this.#own.has(id)) {
        // Not this instance's: its contract is in the record its sender made.
        const entry = await kv.get(pendingKey(name, id)).catch(() => null);
        if (entry !== null && entry.operation === "PUT") {
          this.#records.set(id, entry.revision);
          requestSubject = readRecord(entry.value)?.subject;
        }
      }
      if (!to.live()) {
        this.#delivering.delete(id);
        return m.nak(); // the inbox closed meanwhile
      }
      const headers = m.headers;
      to.onMessage({
        subject: m.subject,
        reply: "",
        data: m.data,
        status: 0,
        header: (header) => headers?.has(header) ? headers.get(header) : undefined,
        requestSubject,
        retryLater: () => {
          later = true;
        },
      });
    } catch {
      // The endpoint never throws; a message that cannot be read is acknowledged below.
    }
    if (later) {
      this.#delivering.delete(id);
      // Later each time, so that replies waiting for a handler do not crowd out the others.
      return m.nak(retryLaterMs(m.info.redeliveryCount));
    }
    setTimeout(() => {
      m.ack();
      this.#delivering.delete(id);
      if (!this.#own.has(id)) this.#drop(id); // (a gather's further replies find it gone)
    }, 0);
  }

  /**
   * Deletes a record by its sequence, leaving no delete marker behind. A
   * record whose sequence is not known yet (still being written) is dropped
   * when its write completes (see `publish`).
   */
  #drop(id: string): void {
    const seq = this.#records.get(id);
    if (seq === undefined) return;
    this.#records.delete(id);
    const { jsm, stream } = this.#parts;
    jsm.streams.deleteMessage(`KV_${stream}_PENDING`, seq, false).catch(() => {});
  }
}

/** A record, if `value` is one this library wrote. */
function readRecord(value: Uint8Array): PendingRecord | undefined {
  try {
    const record = JSON.parse(decoder.decode(value)) as Partial<PendingRecord> | null;
    if (
      typeof record?.subject === "string" && typeof record.reply === "string" &&
      typeof record.deadline === "number"
    ) return record as PendingRecord;
  } catch {
    // Not JSON.
  }
  return undefined;
}

function pendingKey(name: string, id: string): string {
  return `pending.${name}.${id}`;
}
