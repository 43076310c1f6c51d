/**
 * Shared pieces of the benchmark: connections whose close waits for their
 * sockets, the contracts and wire-format payloads, and statistics.
 *
 * @module
 */

import * as v from "valibot";
import { connect, type ConnectionOptions, type NatsConnection } from "nats.ws";
import { defineRequest, enumOf, int, object } from "../mod.ts";

/** nats.ws' (unexported) `wsFactory` option. */
export type WsFactory = (
  url: string,
  opts: ConnectionOptions,
) => Promise<{ socket: WebSocket; encrypted: boolean }>;

const defaultFactory: WsFactory = (url) => {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  return Promise.resolve({ socket, encrypted: url.startsWith("wss:") });
};

/** Loads `wsFactory` from a module path (relative to the working directory) or a URL. */
export async function loadWsFactory(path: string): Promise<WsFactory> {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(path)
    ? path
    : new URL(path, `file://${Deno.cwd()}/`).href;
  const mod = await import(url);
  if (typeof mod.wsFactory !== "function") {
    throw new TypeError(`--ws-factory ${path}: the module has no wsFactory export`);
  }
  return mod.wsFactory as WsFactory;
}

/**
 * Connects nats.ws through `factory` (or a plain WebSocket); `close()` of the
 * result resolves once every socket it opened has fired `close`, so a
 * process can end on its own.
 */
export async function connectBench(
  url: string,
  factory?: WsFactory,
  options: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  const inner = factory ?? defaultFactory;
  const closing: Promise<void>[] = [];
  const tracked: WsFactory = async (u, opts) => {
    const made = await inner(u, opts);
    const socket = made.socket as WebSocket;
    if (typeof socket.addEventListener === "function") {
      closing.push(
        new Promise<void>((resolve) => socket.addEventListener("close", () => resolve())),
      );
    }
    return made;
  };
  const nc = await connect({
    servers: url,
    maxReconnectAttempts: 0,
    ...options,
    wsFactory: tracked,
  } as ConnectionOptions);
  const close = nc.close.bind(nc);
  nc.close = async () => {
    await close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(closing),
      new Promise((resolve) => timer = setTimeout(resolve, 5_000)),
    ]);
    clearTimeout(timer);
  };
  return nc;
}

export const SUBJECT = {
  object: "bench.object",
  int: "bench.int",
  enum: "bench.enum",
  libObject: "bench.lib.object",
  silent: "bench.silent",
  echo: "bench.echo",
} as const;

const OrderRequest = v.object({ sku: v.string(), qty: v.number() });
const Order = v.object({ orderId: v.string(), eta: v.number() });

/** Object contract answered by the plain nats.ws responder (library wire format). */
export const PlaceOrder = defineRequest({
  subject: SUBJECT.object,
  request: OrderRequest,
  response: object(Order),
});
/** Int contract answered by the plain nats.ws responder. */
export const CheckStock = defineRequest({
  subject: SUBJECT.int,
  request: OrderRequest,
  response: int(),
});
/** Enum contract answered by the plain nats.ws responder. */
export const Approve = defineRequest({
  subject: SUBJECT.enum,
  request: OrderRequest,
  response: enumOf(["Approved", "Rejected"]),
});
/** Object contract answered by a library responder (`endpoint.handle`). */
export const PlaceOrderLib = defineRequest({
  subject: SUBJECT.libObject,
  request: OrderRequest,
  response: object(Order),
});
/** Object contract nobody answers (a silent subscriber holds the subject). */
export const Silent = defineRequest({
  subject: SUBJECT.silent,
  request: OrderRequest,
  response: object(Order),
});

/** Object contract of the sweep: a string field carrying the body, echoed back as is. */
export const Echo = defineRequest({
  subject: SUBJECT.echo,
  request: v.object({ body: v.string() }),
  response: object(v.object({ body: v.string() })),
});

/** A request of the {@linkcode Echo} contract whose JSON encoding is `bytes` long. */
export function echoBody(bytes: number): { body: string } {
  const overhead = JSON.stringify({ body: "" }).length;
  return { body: "x".repeat(Math.max(0, bytes - overhead)) };
}

export const BODY = { sku: "A-1", qty: 2 } as const;
export const ORDER = { orderId: "A-1x2", eta: 2 } as const;

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

/** Sends one request and waits for (and decodes) its answer. */
export type Send = () => Promise<unknown>;

/** One measured run: requests completed, elapsed time, failed requests. */
export interface Sample {
  ops: number;
  ms: number;
  errors: number;
}

/** Keeps `inflight` requests outstanding for `ms`, then lets the last ones finish. */
export async function run(send: Send, inflight: number, ms: number): Promise<Sample> {
  let ops = 0;
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  const worker = async () => {
    while (performance.now() < end) {
      try {
        await send();
        ops++;
      } catch {
        errors++;
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < inflight; i++) workers.push(worker());
  await Promise.all(workers);
  return { ops, ms: performance.now() - start, errors };
}

/** Median of numbers (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile of numbers, p in 0..100. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Forces garbage collection (needs `--v8-flags=--expose-gc`). */
export function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 3; i++) collect();
}

/** Lets queued callbacks and I/O run. */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Counts live timers: wraps the global `setTimeout`/`setInterval` and their
 * `clear*` so that `live()` is the number created and neither fired (for
 * timeouts) nor cleared. Install before anything creates timers.
 */
export function countTimers(): { live(): { timeouts: number; intervals: number } } {
  const timeouts = new Set<unknown>();
  const intervals = new Set<unknown>();
  const g = globalThis as unknown as Record<string, (...args: unknown[]) => unknown>;
  const { setTimeout: st, clearTimeout: ct, setInterval: si, clearInterval: ci } = g as {
    setTimeout: (...args: unknown[]) => unknown;
    clearTimeout: (id: unknown) => void;
    setInterval: (...args: unknown[]) => unknown;
    clearInterval: (id: unknown) => void;
  };
  g.setTimeout = (fn: unknown, ms?: unknown, ...rest: unknown[]) => {
    const id = st(
      (...a: unknown[]) => {
        timeouts.delete(id);
        if (typeof fn === "function") fn(...a);
      },
      ms,
      ...rest,
    );
    timeouts.add(id);
    return id;
  };
  g.clearTimeout = (id: unknown) => {
    timeouts.delete(id);
    intervals.delete(id);
    ct(id);
  };
  g.setInterval = (...args: unknown[]) => {
    const id = si(...args);
    intervals.add(id);
    return id;
  };
  g.clearInterval = (id: unknown) => {
    intervals.delete(id);
    timeouts.delete(id);
    ci(id);
  };
  return { live: () => ({ timeouts: timeouts.size, intervals: intervals.size }) };
}
