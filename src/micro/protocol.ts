/**
 * The NATS micro protocol, version 1: the `$SRV` discovery subjects, the
 * JSON documents `PING`, `INFO` and `STATS` answer with, and the rules for
 * names and versions. Fields are filled as nats.go's `micro` fills them.
 *
 * @module
 */

import { MAX_SUBJECT } from "../contract.ts";

/** What every discovery document starts with: which service instance answers. */
export interface ServiceIdentity {
  /** The service's name, shared by all its instances. */
  readonly name: string;
  /** This instance's id, unique per instance. */
  readonly id: string;
  /** The service's version (semver). */
  readonly version: string;
  /** The service's metadata. */
  readonly metadata: Readonly<Record<string, string>>;
}

/** The `$SRV.PING` answer. */
export interface ServicePing extends ServiceIdentity {
  /** `io.nats.micro.v1.ping_response`. */
  readonly type: "io.nats.micro.v1.ping_response";
}

/** One endpoint in the `$SRV.INFO` answer. */
export interface EndpointInfo {
  /** The endpoint's name within the service. */
  readonly name: string;
  /** The subject it answers on (the contract's subject). */
  readonly subject: string;
  /** Its queue group; `""` when it has none (every instance answers), as nats.go sends it. */
  readonly queue_group: string;
  /**
   * Its metadata: the user's, plus `kind` (`int`, `enum` or `object`) and the
   * request and response as JSON Schema, JSON-encoded, under `request_schema`
   * and `response_schema`.
   */
  readonly metadata: Readonly<Record<string, string>>;
}

/** The `$SRV.INFO` answer. */
export interface ServiceInfo extends ServiceIdentity {
  /** `io.nats.micro.v1.info_response`. */
  readonly type: "io.nats.micro.v1.info_response";
  /** The service's description; `""` when none was given. */
  readonly description: string;
  /** Its endpoints, in the order they were added. */
  readonly endpoints: readonly EndpointInfo[];
}

/** One endpoint in the `$SRV.STATS` answer. */
export interface EndpointStats {
  /** The endpoint's name within the service. */
  readonly name: string;
  /** The subject it answers on. */
  readonly subject: string;
  /** Its queue group; `""` when it has none. */
  readonly queue_group: string;
  /** Requests it served since it started or was reset. */
  readonly num_requests: number;
  /** Error replies it sent (a `ReplyError`, an invalid request, a handler failure). */
  readonly num_errors: number;
  /** The last error reply, as `code:description`; `""` when none. */
  readonly last_error: string;
  /** Total time spent serving requests, in nanoseconds (an integer). */
  readonly processing_time: number;
  /** `processing_time / num_requests`, rounded down; 0 before the first request. */
  readonly average_processing_time: number;
}

/** The `$SRV.STATS` answer. */
export interface ServiceStats extends ServiceIdentity {
  /** `io.nats.micro.v1.stats_response`. */
  readonly type: "io.nats.micro.v1.stats_response";
  /** When the service started, or was last reset (RFC 3339, UTC). */
  readonly started: string;
  /** Its endpoints' counters, in the order they were added. */
  readonly endpoints: readonly EndpointStats[];
}

/** The three discovery verbs. */
export const VERBS = ["PING", "INFO", "STATS"] as const;
/** One of {@linkcode VERBS}. */
export type Verb = typeof VERBS[number];

/** The subjects one instance answers a verb on: every service, by name, by name and id. */
export function controlSubjects(
  verb: Verb,
  service: { readonly name: string; readonly id: string },
): string[] {
  const { name, id } = service;
  return [`$SRV.${verb}`, `$SRV.${verb}.${name}`, `$SRV.${verb}.${name}.${id}`];
}

const NAME = /^[A-Za-z0-9_-]+$/;
/**
 * The longest service name: `$SRV.STATS.<name>.<id>` (a 22-character id) is a
 * subject that tools publish requests to, so it must leave room for their
 * reply subject in a NATS protocol line, as every contract subject does.
 */
export const MAX_SERVICE_NAME: number = MAX_SUBJECT - "$SRV.STATS.".length - 23;
// The regular expression semver.org suggests, as nats.go's micro uses it.
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Throws a `TypeError` unless `name` is a micro name (`A-Z a-z 0-9 _ -`, at least one). */
export function checkName(name: unknown, what: string): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new TypeError(
      `${what} must be letters, digits, "_" and "-" only (the NATS micro protocol puts it in ` +
        `subjects), got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/** Throws a `TypeError` unless `version` is a semantic version such as `1.2.0`. */
export function checkVersion(version: unknown): string {
  if (typeof version !== "string" || !SEMVER.test(version)) {
    throw new TypeError(
      `addService: version must be a semantic version such as "1.2.0", got ${
        JSON.stringify(version)
      }`,
    );
  }
  return version;
}

/**
 * Throws a `TypeError` unless `metadata` is absent or a plain object of
 * strings; returns a frozen copy, read once.
 */
export function checkMetadata(metadata: unknown, what: string): Readonly<Record<string, string>> {
  if (metadata === undefined) return Object.freeze({});
  let copy: Record<string, string> | undefined;
  try {
    const proto = typeof metadata === "object" && metadata !== null
      ? Object.getPrototypeOf(metadata)
      : undefined;
    if (proto === Object.prototype || proto === null) {
      copy = { ...metadata as Record<string, string> };
      if (Object.values(copy).some((value) => typeof value !== "string")) copy = undefined;
    }
  } catch {
    // A getter that throws: refused below.
  }
  if (copy === undefined) {
    throw new TypeError(`${what} must be a plain object of string values, e.g. { team: "stock" }`);
  }
  return Object.freeze(copy);
}

/**
 * An endpoint's default name, from its contract's subject: each run of
 * characters a micro name cannot hold becomes `-` (`stock.check` →
 * `stock-check`).
 */
export function endpointName(subject: string): string {
  return subject.replace(/[^A-Za-z0-9_-]+/g, "-");
}

const ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A new instance id: 22 random letters and digits (about 131 bits), as long as nats.go's. */
export function instanceId(): string {
  let id = "";
  // 248 is the largest multiple of 62 below 256: rejecting larger bytes keeps every character equally likely.
  while (id.length < 22) {
    for (const byte of crypto.getRandomValues(new Uint8Array(32))) {
      if (byte < 248 && id.length < 22) id += ID_ALPHABET[byte % 62];
    }
  }
  return id;
}
