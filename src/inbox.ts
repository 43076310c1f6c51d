/**
 * The reply inbox: one wildcard subscription `<prefix>.<128 random bits>.*`
 * per endpoint, opened at the first request, that routes each reply by the
 * last token of its subject (the request's id) and reports its own failure.
 *
 * @module
 */

import { isPublishSubject, utf8Length } from "./limits.ts";
import type { Transport, TransportMessage, TransportSubscription } from "./transport.ts";

/** The longest `inboxPrefix`, in bytes: a request's line holds the subject, the reply and sizes. */
const MAX_INBOX_PREFIX = 1024;

/**
 * Checks an `inboxPrefix`: a subject without wildcards (`TypeError`), at most
 * 1,024 bytes (`RangeError`).
 */
export function checkInboxPrefix(prefix: unknown): string {
  if (typeof prefix !== "string" || !isPublishSubject(prefix)) {
    throw new TypeError(
      `Endpoint option inboxPrefix must be a subject without wildcards, e.g. "_INBOX.app", got ${
        JSON.stringify(prefix)
      }`,
    );
  }
  if (utf8Length(prefix) > MAX_INBOX_PREFIX) {
    throw new RangeError(
      `Endpoint option inboxPrefix is ${
        utf8Length(prefix)
      } bytes; at most ${MAX_INBOX_PREFIX} leave room for the subject in a NATS protocol line`,
    );
  }
  return prefix;
}

/** What an inbox tells its endpoint. */
export interface InboxListener {
  /** A reply for the request with this id (any string: the sender chose the subject). */
  reply(id: string, message: TransportMessage): void;
  /**
   * A reply sent to an earlier inbox of the same durable name, kept by the
   * transport while no instance ran.
   */
  recovered(id: string, message: TransportMessage): void;
  /** The subscription failed (permissions, most often); the inbox is closed. */
  failed(subject: string, cause: Error): void;
}

/** One endpoint's reply inbox. */
export class ReplyInbox {
  readonly #transport: Transport;
  readonly #prefix: string;
  readonly #listener: InboxListener;
  #open: { subject: string; subscription: TransportSubscription } | undefined;

  /**
   * @param transport Where to subscribe.
   * @param prefix A checked `inboxPrefix`.
   * @param listener Gets the replies and the failure.
   */
  constructor(transport: Transport, prefix: string, listener: InboxListener) {
    this.#transport = transport;
    this.#prefix = prefix;
    this.#listener = listener;
  }

  /** The inbox's subject, subscribing first if it is not open. */
  open(): string {
    if (this.#open) return this.#open.subject;
    const subject = `${this.#prefix}.${randomToken()}`;
    const prefixLength = subject.length + 1;
    const subscription = this.#transport.subscribe(
      `${subject}.*`,
      (message) => {
        let id: string;
        let own: boolean;
        try {
          const to = message.subject;
          own = to.startsWith(subject) && to.charCodeAt(subject.length) === 46; // "."
          id = own ? to.slice(prefixLength) : to.slice(to.lastIndexOf(".") + 1);
        } catch {
          return; // no subject, no request to settle
        }
        if (own) this.#listener.reply(id, message);
        else this.#listener.recovered(id, message);
      },
      {
        onError: (cause) => {
          if (this.#open?.subject !== subject) return;
          this.close();
          this.#listener.failed(subject, cause);
        },
      },
    );
    this.#open = { subject, subscription };
    return subject;
  }

  /** Unsubscribes; the next `open()` subscribes anew. */
  close(): void {
    this.#open?.subscription.unsubscribe();
    this.#open = undefined;
  }
}

/** 128 random bits as 32 hex digits. */
function randomToken(): string {
  let token = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(16))) {
    token += (byte | 256).toString(16).slice(1);
  }
  return token;
}
