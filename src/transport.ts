/**
 * The transport interface: the small part of a message bus the endpoint
 * talks to. `natsTransport(nc)` and `memoryTransport()` implement it; adding
 * a transport means implementing this file's three types.
 *
 * @module
 */

/** A message as the endpoint sees it. */
export interface TransportMessage {
  /** The subject it was published on. */
  readonly subject: string;
  /** Where to send the reply; `""` when the publisher wants none. */
  readonly reply: string;
  /** The body. */
  readonly data: Uint8Array;
  /** A server status carried instead of a body (503: no responders); 0 for none. */
  readonly status: number;
  /** One header's value, `undefined` when absent. */
  header(name: string): string | undefined;
  /**
   * For a reply a transport kept (a durable one): the subject its request was
   * sent on, when known, so that a reply no callback waits for can be read
   * against its contract.
   */
  readonly requestSubject?: string | undefined;
  /**
   * For a reply a transport kept: asks it to deliver the reply again later,
   * because nothing can take it yet (no `onReply` handler for its contract).
   */
  retryLater?(): void;
}

/** Options of {@linkcode Transport.publish}. */
export interface PublishOptions {
  /** Reply subject. */
  reply?: string;
  /** Headers to send (single-valued). */
  headers?: Readonly<Record<string, string>>;
}

/** Options of {@linkcode Transport.subscribe}. */
export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  queue?: string;
  /** Called when the subscription fails (permissions, connection closed). */
  onError?: (error: Error) => void;
}

/** A live subscription. */
export interface TransportSubscription {
  /** Stops delivery. Idempotent. */
  unsubscribe(): void;
  /**
   * Resolves once the bus has the subscription (over NATS: the server has
   * processed it), so a request sent from anywhere after it finds it. Absent:
   * at once.
   */
  readonly ready?: Promise<void>;
}

/**
 * A message bus with NATS semantics: subjects with `*` / `>` wildcards,
 * reply subjects, queue groups, headers, and a status-503 message on the
 * reply subject when a request reaches no subscriber.
 *
 * @example A transport that records what is published
 * ```ts
 * import { assert } from "@std/assert";
 * import { memoryTransport, type Transport } from "@seed/callbacks";
 * const inner = memoryTransport();
 * const sent: string[] = [];
 * const recording: Transport = {
 *   publish(subject, data, options) {
 *     sent.push(subject);
 *     inner.publish(subject, data, options);
 *   },
 *   subscribe: (subject, onMessage, options) => inner.subscribe(subject, onMessage, options),
 *   maxPayload: inner.maxPayload,
 * };
 * recording.publish("a.b", new Uint8Array());
 * assert(sent[0] === "a.b");
 * ```
 */
export interface Transport {
  /** Sends a message; throws when it cannot be sent (closed, too large). */
  publish(subject: string, data: Uint8Array, options?: PublishOptions): void;
  /** Delivers messages on `subject` (wildcards allowed) to `onMessage`. */
  subscribe(
    subject: string,
    onMessage: (message: TransportMessage) => void,
    options?: SubscribeOptions,
  ): TransportSubscription;
  /** The largest body the bus accepts, in bytes; `Infinity` when unknown. */
  readonly maxPayload: number;
  /**
   * Whether a message published now reaches the bus; `false` while the
   * connection is down (a NATS client drops what is published then).
   * Absent: always.
   */
  readonly connected?: boolean;
  /**
   * Calls `listener` when the connection goes down, comes back, or closes for
   * good; returns a function that stops the calls. Absent: the connection
   * never changes.
   */
  watch?(listener: (status: TransportStatus) => void): () => void;
  /**
   * Resolves once the bus has processed everything sent so far (over NATS: a
   * round trip to the server), so an unsubscription is in effect for every
   * other connection. A drop on the way waits for the reconnect; rejects once
   * the connection is closed. Absent: everything takes effect at once.
   */
  flush?(): Promise<void>;
  /**
   * The subject space replies must use, for a transport that keeps replies
   * (a durable one); the endpoint's reply inbox opens under it, at once.
   */
  readonly inboxPrefix?: string;
  /**
   * Whether the transport keeps replies for a later instance of the endpoint
   * (a durable one): `onReply` then takes every response kind.
   */
  readonly keepsReplies?: boolean;
  /**
   * Told when a request settled (but by `close()`): what it kept for it can
   * go; `replied` when a reply settled it (whose delivery the transport sees).
   */
  forget?(id: string, replied: boolean): void;
}

/** A change of a transport's connection. */
export type TransportStatus = "disconnect" | "reconnect" | "close";
