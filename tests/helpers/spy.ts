/**
 * A transport wrapper that records what an endpoint publishes and subscribes,
 * and small helpers to wait for outcomes instead of sleeping.
 *
 * @module
 */

import type {
  ConnectionEvent,
  Endpoint,
  Transport,
  TransportMessage,
  TransportStatus,
} from "../../mod.ts";

/** What a spied transport recorded. */
export interface Spied {
  /** The wrapped transport. */
  readonly transport: Transport;
  /** Every publish: subject, reply and headers. */
  readonly published: {
    subject: string;
    reply?: string;
    headers?: Readonly<Record<string, string>>;
  }[];
  /** Every subscribe: subject and queue. */
  readonly subscribed: { subject: string; queue?: string }[];
}

/** Wraps a transport to record its publishes and subscriptions. */
export function spy(inner: Transport): Spied {
  const published: Spied["published"] = [];
  const subscribed: Spied["subscribed"] = [];
  const transport: Transport = {
    get maxPayload() {
      return inner.maxPayload;
    },
    get connected() {
      return inner.connected !== false;
    },
    watch: (listener) => inner.watch?.(listener) ?? (() => {}),
    publish(subject, data, options = {}) {
      published.push({ subject, ...options });
      inner.publish(subject, data, options);
    },
    subscribe(subject, onMessage, options = {}) {
      subscribed.push({
        subject,
        ...(options.queue === undefined ? {} : { queue: options.queue }),
      });
      return inner.subscribe(subject, onMessage, options);
    },
  };
  return { transport, published, subscribed };
}

/** Resolves with the next event of `type` dispatched on `target`. */
export function nextEvent<E extends Event>(target: EventTarget, type: string): Promise<E> {
  return new Promise((resolve) => {
    target.addEventListener(type, (event) => resolve(event as E), { once: true });
  });
}

/** Resolves with `status` at the endpoint's next `connection` event of that status. */
export function nextConnection(endpoint: Endpoint, status: TransportStatus): Promise<string> {
  return new Promise((resolve) => {
    const listener = (event: ConnectionEvent) => {
      if (event.status !== status) return;
      endpoint.removeEventListener("connection", listener);
      resolve(event.status);
    };
    endpoint.addEventListener("connection", listener);
  });
}

/** Resolves with the next message on `subject` (a raw subscriber that stops after one). */
export function nextMessage(transport: Transport, subject: string): Promise<TransportMessage> {
  return new Promise((resolve) => {
    const sub = transport.subscribe(subject, (message) => {
      sub.unsubscribe();
      resolve(message);
    });
  });
}

/** Text to bytes. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
