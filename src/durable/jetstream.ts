/**
 * The small part of nats.ws's JetStream API the durable transport uses,
 * written as structural types so that no NATS client is imported here.
 *
 * @module
 */

import type { NatsConnectionLike } from "../transports/nats.ts";

/** A message header set, as nats.ws gives it. */
export interface HeadersLike {
  has(name: string): boolean;
  get(name: string): string;
}

/** A stored message delivered by a consumer. */
export interface JsMsgLike {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers?: HeadersLike | undefined;
  readonly info: { readonly redeliveryCount: number };
  ack(): void;
  nak(millis?: number): void;
}

/** An ongoing `consume()`. */
export interface ConsumerMessagesLike extends AsyncIterable<JsMsgLike> {
  stop(): void;
}

/** A key-value entry. */
export interface KvEntryLike {
  readonly key: string;
  readonly revision: number;
  readonly operation: string;
  readonly value: Uint8Array;
}

/** A key-value bucket. */
export interface KvLike {
  get(key: string): Promise<KvEntryLike | null>;
  create(key: string, data: Uint8Array): Promise<number>;
  update(key: string, data: Uint8Array, revision: number): Promise<number>;
  put(key: string, data: Uint8Array): Promise<number>;
  delete(key: string): Promise<void>;
  keys(filter?: string): Promise<AsyncIterable<string>>;
}

/** JetStream, as the durable transport uses it. */
export interface JetStreamLike {
  consumers: {
    get(
      stream: string,
      name: string,
    ): Promise<{ consume(options?: unknown): Promise<ConsumerMessagesLike> }>;
  };
  views: { kv(bucket: string, options?: unknown): Promise<KvLike> };
}

/** JetStream's management API, as the durable transport uses it. */
export interface JetStreamManagerLike {
  streams: {
    info(stream: string): Promise<unknown>;
    add(config: unknown): Promise<unknown>;
    getMessage(stream: string, query: { last_by_subj: string }): Promise<unknown>;
    deleteMessage(stream: string, seq: number, erase?: boolean): Promise<boolean>;
  };
  consumers: { add(stream: string, config: unknown): Promise<unknown> };
}

/**
 * A NATS connection with JetStream: nats.ws's `NatsConnection`. Its
 * JetStream API is read through the shapes in this file.
 */
export interface JetStreamConnectionLike extends NatsConnectionLike {
  /** nats.ws's JetStream client. */
  jetstream(): unknown;
  /** nats.ws's JetStream manager. */
  jetstreamManager(): Promise<unknown>;
  /** A request (used to find a live instance of a durable name). */
  request(
    subject: string,
    data?: Uint8Array,
    options?: { timeout: number },
  ): Promise<{ data: Uint8Array }>;
}
