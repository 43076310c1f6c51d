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

/** How long a reply with no handler yet waits before it is delivered again, in milliseconds. */
const RETRY_LATER_MS = 1_000;

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
 * Everything but replies goes through the connection as usual.
 */
export class DurableTransport implements Transport, AsyncDisposable {
  /** Replies are kept for the next instance of this name. */
  readonly keepsReplies = true;
  /** The name this instance holds. */
  readonly name: string;
  readonly #parts: DurableParts;
  /** Ids of requests this instance sent and still waits for (no record lookup needed). */
  readonly #own = new Set<string>();
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
      try {
        inner.publish(subject, data, options);
      } catch {
        // The connection closed meanwhile: the endpoint settles the request.
      }
    };
    // Recorded, then sent; if recording fails, sent anyway (only recovery after a crash loses).
    kv.put(pendingKey(name, id), encoder.encode(JSON.stringify(record))).then(send, send);
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
    return this.#consume(onMessage, options);
  }

  /** The request settled: its record can go. */
  forget(id: string): void {
    if (!this.#own.delete(id)) return;
    this.#parts.kv.delete(pendingKey(this.#parts.name, id)).catch(() => {});
  }

  /**
   * The requests of this name that expired with no reply while no instance
   * waited for them, each reported once: they are forgotten as they are
   * returned. Requests whose reply is kept (waiting for an `onReply` handler)
   * are not expired.
   *
   * @returns The expired requests, oldest deadline first.
   */
  async takeExpired(): Promise<ExpiredRequest[]> {
    const { kv, jsm, stream, name } = this.#parts;
    const now = Date.now();
    const expired: ExpiredRequest[] = [];
    for await (const key of await kv.keys(`pending.${name}.*`)) {
      const id = key.slice(key.lastIndexOf(".") + 1);
      if (this.#own.has(id)) continue; // this instance's callback settles it
      const entry = await kv.get(key);
      if (entry === null || entry.operation !== "PUT") continue;
      let record: PendingRecord;
      try {
        record = JSON.parse(decoder.decode(entry.value));
      } catch {
        await kv.delete(key).catch(() => {});
        continue;
      }
      if (record.deadline > now) continue;
      try {
        await jsm.streams.getMessage(stream, { last_by_subj: record.reply });
        continue; // its reply is kept: it comes to onReply
      } catch {
        // No reply stored.
      }
      expired.push({ id, subject: record.subject, deadline: record.deadline });
      await kv.delete(key).catch(() => {});
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
    onMessage: (message: TransportMessage) => void,
    options: SubscribeOptions,
  ): TransportSubscription {
    const { js, stream, name } = this.#parts;
    let messages: { stop(): void } | undefined;
    let stopped = false;
    const stop = () => {
      stopped = true;
      messages?.stop();
      this.#consuming.delete(stop);
    };
    this.#consuming.add(stop);
    const ready = (async () => {
      const consumer = await js.consumers.get(stream, name);
      const iterator = await consumer.consume({ max_messages: 256 });
      messages = iterator;
      if (stopped) return iterator.stop();
      (async () => {
        for await (const m of iterator) {
          // Pulled but no longer wanted (the inbox closed): back to the stream, not left unacknowledged.
          if (stopped) m.nak();
          else await this.#deliver(m, onMessage);
        }
      })().catch((error) => options.onError?.(error as Error));
    })();
    ready.catch((error) => options.onError?.(error as Error));
    return { ready, unsubscribe: stop };
  }

  /**
   * Hands one kept reply to the endpoint, then acknowledges it once its
   * callback or handlers have run (a macrotask later); a reply asked for
   * again later is not acknowledged but delivered again.
   */
  async #deliver(m: JsMsgLike, onMessage: (message: TransportMessage) => void): Promise<void> {
    const { kv, name } = this.#parts;
    let later = false;
    let id = "";
    let requestSubject: string | undefined;
    try {
      id = m.subject.slice(m.subject.lastIndexOf(".") + 1);
      if (!this.#own.has(id)) {
        // Not this instance's: its contract is in the record its sender made.
        const entry = await kv.get(pendingKey(name, id)).catch(() => null);
        if (entry !== null && entry.operation === "PUT") {
          requestSubject = (JSON.parse(decoder.decode(entry.value)) as PendingRecord).subject;
        }
      }
      const headers = m.headers;
      onMessage({
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
    if (later) return m.nak(RETRY_LATER_MS);
    setTimeout(() => {
      m.ack();
      if (!this.#own.has(id)) kv.delete(pendingKey(name, id)).catch(() => {});
    }, 0);
  }
}

function pendingKey(name: string, id: string): string {
  return `pending.${name}.${id}`;
}
