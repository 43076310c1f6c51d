/**
 * An in-process transport with the NATS semantics the endpoint relies on.
 *
 * @module
 */

import type {
  PublishOptions,
  SubscribeOptions,
  Transport,
  TransportMessage,
  TransportStatus,
  TransportSubscription,
} from "../transport.ts";
import { connectionClosed } from "../errors.ts";
import {
  assertSubscribeLine,
  headerBytes,
  headersProblem,
  isPublishSubject,
  isQueue,
  isSubscribeSubject,
  MAX_CONTROL_LINE,
  publishLineBytes,
} from "../limits.ts";

/** The in-memory transport, with switches to simulate a connection going down for tests. */
export interface MemoryTransport extends Transport {
  /** Whether the bus is up. */
  readonly connected: boolean;
  /** Watches the simulated connection. */
  watch(listener: (status: TransportStatus) => void): () => void;
  /** Simulates the connection going down: until `reconnect()`, what is published is lost, as with NATS. */
  disconnect(): void;
  /** Simulates the connection coming back. */
  reconnect(): void;
  /** Simulates the connection closing for good: publishing and subscribing then throw. */
  close(): void;
}

/** Options of {@linkcode memoryTransport}. */
export interface MemoryTransportOptions {
  /** The largest body accepted, in bytes, like nats-server's `max_payload`. Default 1 MiB. */
  maxPayload?: number;
}

interface Subscriber {
  readonly pattern: string;
  readonly tokens: readonly string[] | undefined; // set for wildcard patterns
  readonly queue: string | undefined;
  readonly onMessage: (message: TransportMessage) => void;
  active: boolean;
}

const EMPTY_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Makes an in-process message bus that several endpoints share. It behaves
 * like NATS in what the endpoint relies on: subjects with `*` and `>`
 * wildcards, reply subjects, queue groups (one member each), headers, a
 * `max_payload`, and no responders — a message with a reply subject that
 * reaches no subscriber gets a status-503 message on its reply subject at
 * once. Delivery is asynchronous (a microtask), as over a network.
 *
 * @param options `maxPayload`.
 * @returns A {@linkcode Transport}.
 *
 * @example Two endpoints on one in-memory bus
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, Endpoint, int, memoryTransport } from "@seed/callbacks";
 *
 * const Double = defineRequest({ subject: "math.double", request: v.number(), response: int() });
 * const bus = memoryTransport();
 * await using server = new Endpoint(bus);
 * await using client = new Endpoint(bus);
 * server.handle(Double, (n) => n * 2);
 * assert(await client.request(Double, 21) === 42);
 * ```
 */
export function memoryTransport(options: MemoryTransportOptions = {}): MemoryTransport {
  const maxPayload = options.maxPayload ?? 1024 * 1024;
  const listeners = new Set<(status: TransportStatus) => void>();
  let connected = true;
  let closed = false;
  const notify = (status: TransportStatus) => {
    connected = status === "reconnect";
    for (const listener of [...listeners]) listener(status);
  };
  const exact = new Map<string, Subscriber[]>();
  const wildcard: Subscriber[] = [];

  function deliver(message: TransportMessage): boolean {
    const matched = [
      ...(exact.get(message.subject) ?? []),
      ...wildcard.filter((s) => matches(s.tokens!, message.subject)),
    ];
    const groups = new Map<string, Subscriber[]>();
    const targets: Subscriber[] = [];
    for (const subscriber of matched) {
      if (subscriber.queue === undefined) targets.push(subscriber);
      else {
        const group = groups.get(subscriber.queue);
        if (group) group.push(subscriber);
        else groups.set(subscriber.queue, [subscriber]);
      }
    }
    for (const group of groups.values()) {
      targets.push(group[Math.floor(Math.random() * group.length)]!);
    }
    for (const subscriber of targets) {
      queueMicrotask(() => {
        if (!subscriber.active || !connected) return;
        // As over NATS, a subscriber that throws does not stop delivery.
        try {
          subscriber.onMessage(message);
        } catch (thrown) {
          console.error(`@seed/callbacks: a ${subscriber.pattern} subscriber threw:`, thrown);
        }
      });
    }
    return targets.length > 0;
  }

  return {
    maxPayload,
    get connected(): boolean {
      return connected;
    },
    watch(listener: (status: TransportStatus) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    disconnect(): void {
      if (connected) notify("disconnect");
    },
    reconnect(): void {
      if (!connected && !closed) notify("reconnect");
    },
    close(): void {
      if (closed) return;
      closed = true;
      notify("close");
    },
    publish(subject: string, data: Uint8Array, options: PublishOptions = {}): void {
      if (closed) throw connectionClosed();
      const headers: Record<string, string> = {};
      for (const name in options.headers) headers[name] = options.headers[name]!;
      const reply = options.reply ?? "";
      // What nats-server refuses (or closes the connection for), refused here.
      if (!isPublishSubject(subject) || (reply !== "" && !isPublishSubject(reply))) {
        throw new TypeError(`invalid subject: ${JSON.stringify(subject)} ${JSON.stringify(reply)}`);
      }
      const problem = headersProblem(headers);
      if (problem !== undefined) throw new TypeError(problem);
      const size = data.length + (options.headers ? headerBytes(headers) : 0);
      if (size > maxPayload || publishLineBytes(subject, reply, size) > MAX_CONTROL_LINE) {
        throw new RangeError(
          `message of ${size} bytes exceeds the transport's max_payload of ${maxPayload} bytes, ` +
            `or its subjects the ${MAX_CONTROL_LINE}-byte protocol line`,
        );
      }
      if (!connected) return; // lost, as a NATS client loses what is published while down
      // Values arrive trimmed, as the NATS clients send them.
      for (const name in headers) headers[name] = headers[name]!.trim();
      const delivered = deliver(message(subject, reply, data.slice(), 0, headers));
      if (!delivered && reply !== "") {
        deliver(message(reply, "", new Uint8Array(), 503, EMPTY_HEADERS));
      }
    },
    subscribe(
      subject: string,
      onMessage: (message: TransportMessage) => void,
      options: SubscribeOptions = {},
    ): TransportSubscription {
      if (closed) throw connectionClosed();
      const { queue } = options;
      if (!isSubscribeSubject(subject) || (queue !== undefined && !isQueue(queue))) {
        throw new TypeError(
          `invalid subscription: ${JSON.stringify(subject.slice(0, 60))} ${queue ?? ""}`,
        );
      }
      assertSubscribeLine(subject, queue);
      const tokens = subject.split(".");
      const isWildcard = tokens.some((t) => t === "*" || t === ">");
      const subscriber: Subscriber = {
        pattern: subject,
        tokens: isWildcard ? tokens : undefined,
        queue: options.queue,
        onMessage,
        active: true,
      };
      if (isWildcard) wildcard.push(subscriber);
      else {
        const list = exact.get(subject);
        if (list) list.push(subscriber);
        else exact.set(subject, [subscriber]);
      }
      return {
        ready: Promise.resolve(),
        unsubscribe(): void {
          if (!subscriber.active) return;
          subscriber.active = false;
          const list = isWildcard ? wildcard : exact.get(subject)!;
          list.splice(list.indexOf(subscriber), 1);
          if (!isWildcard && list.length === 0) exact.delete(subject);
        },
      };
    },
  };
}

function message(
  subject: string,
  reply: string,
  data: Uint8Array,
  status: number,
  headers: Readonly<Record<string, string>>,
): TransportMessage {
  return {
    subject,
    reply,
    data,
    status,
    header: (name) => Object.hasOwn(headers, name) ? headers[name] : undefined,
  };
}

function matches(pattern: readonly string[], subject: string): boolean {
  const tokens = subject.split(".");
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === ">") return tokens.length > i;
    if (i >= tokens.length) return false;
    if (p !== "*" && p !== tokens[i]) return false;
  }
  return tokens.length === pattern.length;
}
