/**
 * The callbacks object's NATS settings, read from its Worker's environment:
 * the servers, the credentials, the inbox prefix. Pure: nothing connects
 * here.
 *
 * @module
 */

import { EdgeError } from "../errors.ts";

/**
 * The bindings a callbacks Durable Object reads (text bindings, secrets for
 * the credentials).
 */
export interface CallbacksEnv {
  /** NATS WebSocket URLs, comma-separated: `wss://nats-a.example.com,wss://nats-b.example.com`. */
  NATS_SERVERS?: string;
  /** A token, for a server that authenticates with one. */
  NATS_TOKEN?: string;
  /** A user name, with {@linkcode CallbacksEnv.NATS_PASSWORD}. */
  NATS_USER?: string;
  /** The user's password. */
  NATS_PASSWORD?: string;
  /** The text of a `.creds` file (a user JWT and its NKey seed), for decentralized auth. */
  NATS_CREDS?: string;
  /** The reply inbox prefix, for a user allowed to subscribe only under one (default `_INBOX`). */
  NATS_INBOX_PREFIX?: string;
}

/** What the object connects with. */
export interface NatsSettings {
  readonly servers: readonly string[];
  /** The servers for messages: comma-separated, without credentials. */
  readonly shown: string;
  readonly token?: string;
  readonly user?: string;
  readonly pass?: string;
  readonly creds?: string;
  readonly inboxPrefix?: string;
}

function config(message: string): EdgeError {
  return new EdgeError(message, { reason: "config" });
}

/** Reads the settings from the environment; an `EdgeError` says what is missing or wrong. */
export function settingsOf(env: unknown): NatsSettings | EdgeError {
  const vars = (typeof env === "object" && env !== null ? env : {}) as Record<string, unknown>;
  const text = (name: keyof CallbacksEnv): string | undefined => {
    const value = vars[name];
    return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
  };
  const servers = (text("NATS_SERVERS") ?? "").split(",").map((s) => s.trim()).filter((s) => s);
  if (servers.length === 0) {
    return config(
      "the callbacks object has no NATS servers: set NATS_SERVERS to the NATS WebSocket URLs, " +
        "comma-separated (e.g. wss://nats.example.com)",
    );
  }
  for (const server of servers) {
    let protocol: string | undefined;
    try {
      protocol = new URL(server).protocol;
    } catch {
      // not a URL: refused below
    }
    if (protocol !== "ws:" && protocol !== "wss:") {
      return config(
        `NATS_SERVERS holds ${
          JSON.stringify(hidden(server).slice(0, 80))
        }, which is not a ws:// or ` +
          `wss:// URL: a Worker reaches NATS over WebSocket (the server's websocket port)`,
      );
    }
  }
  const user = text("NATS_USER");
  const pass = text("NATS_PASSWORD");
  if ((user === undefined) !== (pass === undefined)) {
    return config("set NATS_USER and NATS_PASSWORD together, or neither");
  }
  const token = text("NATS_TOKEN");
  const creds = text("NATS_CREDS");
  const inboxPrefix = text("NATS_INBOX_PREFIX");
  return {
    servers,
    shown: servers.map(hidden).join(","),
    ...(token === undefined ? {} : { token }),
    ...(user === undefined ? {} : { user, pass: pass! }),
    ...(creds === undefined ? {} : { creds }),
    ...(inboxPrefix === undefined ? {} : { inboxPrefix }),
  };
}

/** A URL as a message may show it: a user and password in it become `***`. */
export function hidden(url: string): string {
  // Up to the last "@" before the path, as a URL parser reads it (a password may hold "@").
  return url.replace(/\/\/[^/?#\\]*@/, "//***@");
}
