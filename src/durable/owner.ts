/**
 * One live instance per durable name. A live instance answers on its name's
 * presence subject; its NATS connection closing (a clean close or a crash)
 * removes that subscription at once, so a new instance knows the old one is
 * gone without waiting. A key-value record, claimed with compare-and-set,
 * settles two instances starting at the same moment.
 *
 * @module
 */

import { DurableError } from "../errors.ts";
import type { Transport } from "../transport.ts";
import type { JetStreamConnectionLike, KvLike } from "./jetstream.ts";

/** How long a live instance has to answer a presence check, in milliseconds. */
const PRESENCE_TIMEOUT = 2_000;

/** A claimed name: `release()` frees it at once. */
export interface Ownership {
  release(): Promise<void>;
}

/**
 * Claims `name` for this instance, or rejects with a `DurableError`
 * (`name-in-use`) when another live instance holds it.
 */
export async function claim(
  parts: { nc: JetStreamConnectionLike; transport: Transport; kv: KvLike },
  where: { name: string; presence: string; key: string },
): Promise<Ownership> {
  const { nc, transport, kv } = parts;
  const { name, presence, key } = where;
  const token = crypto.randomUUID();
  const inUse = (cause?: unknown) =>
    new DurableError(
      `the durable name ${name} is held by another live instance: give each process its own ` +
        `name, or stop the other one first`,
      { reason: "name-in-use", cause },
    );
  // The record's revision is read first: a starter that claims it after this read makes the
  // compare-and-set below fail.
  const before = await kv.get(key);
  const presenceOf = await alive(nc, presence);
  if (presenceOf === "live") throw inUse();
  if (presenceOf === "silent") {
    throw new DurableError(
      `an instance holding the durable name ${name} is connected but did not answer within ` +
        `${PRESENCE_TIMEOUT} ms: stop it, or retry once it is gone`,
      { reason: "name-in-use" },
    );
  }
  // Answer presence checks before claiming, so a later starter sees this one.
  const encoded = new TextEncoder().encode(token);
  const subscription = transport.subscribe(presence, (message) => {
    try {
      if (message.reply !== "") transport.publish(message.reply, encoded);
    } catch {
      // The asker is gone.
    }
  });
  try {
    await subscription.ready;
    if (before === null) await kv.create(key, encoded);
    else await kv.update(key, encoded, before.revision);
  } catch (error) {
    subscription.unsubscribe();
    throw inUse(error);
  }
  return {
    async release() {
      subscription.unsubscribe();
      await kv.delete(key).catch(() => {});
    },
  };
}

/**
 * Whether an instance answers on the presence subject: `none` (no responders),
 * `live`, or `silent` (subscribed, but no answer in time).
 */
async function alive(
  nc: JetStreamConnectionLike,
  presence: string,
): Promise<"none" | "live" | "silent"> {
  try {
    await nc.request(presence, new Uint8Array(), { timeout: PRESENCE_TIMEOUT });
    return "live";
  } catch (error) {
    const { code, message } = error as { code?: unknown; message?: unknown };
    return String(code) === "503" || /no responders/i.test(String(message)) ? "none" : "silent";
  }
}
