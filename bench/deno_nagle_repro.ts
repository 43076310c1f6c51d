/**
 * Reproduces the Deno WebSocket client's Nagle stall (docs/deno-websocket-nagle.md):
 * starts its own nats-server, then measures raw nats.ws `nc.request()` throughput
 * with Deno's built-in `WebSocket`, with npm `ws` 8 (run through Deno's Node
 * compatibility; it sets TCP_NODELAY) and with `wsFactory` from
 * `@seed/callbacks/deno` (TCP_NODELAY on, one write per frame).
 *
 *     deno run --allow-all bench/deno_nagle_repro.ts [--seconds 0.5]
 *
 * @module
 */

import { connect, type NatsConnection } from "nats.ws";
// a bench-only comparison: kept out of deno.json's imports so nothing else can depend on it
// deno-lint-ignore no-import-prefix
import WebSocket from "npm:ws@8";
import { type WsFactory, wsFactory } from "../deno.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";

/** npm `ws` as a `wsFactory`, handed over while it connects as `deno.ts`' `wsFactory` does. */
const npmWsFactory: WsFactory = (url) => {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  return Promise.resolve({
    socket: socket as unknown as globalThis.WebSocket,
    encrypted: url.startsWith("wss:"),
  });
};

/** How each connection's sockets are made. */
const CLIENTS: Record<string, { wsFactory?: WsFactory }> = {
  "native WebSocket": {},
  "npm:ws": { wsFactory: npmWsFactory },
  "wsFactory": { wsFactory },
};

/** [label, body bytes, requests in flight] */
const CASES: [string, number, number][] = [
  ["100 B, 1 in flight", 100, 1],
  ["100 B, 7 in flight", 100, 7],
  ["100 B, 10 in flight", 100, 10],
  ["100 B, 100 in flight", 100, 100],
  ["4 KB, 1 in flight", 4096, 1],
  ["4 KB, 10 in flight", 4096, 10],
];

const secondsArg = Deno.args.indexOf("--seconds");
const SECONDS = secondsArg >= 0 ? Number(Deno.args[secondsArg + 1]) : 0.5;
const ROUNDS = 3;

/** Requests per second with `inflight` requests outstanding at all times for `ms`. */
async function measure(
  nc: NatsConnection,
  subject: string,
  bytes: number,
  inflight: number,
  ms: number,
): Promise<number> {
  const body = new Uint8Array(bytes);
  let done = 0;
  const end = performance.now() + ms;
  const worker = async () => {
    while (performance.now() < end) {
      await nc.request(subject, body, { timeout: 5_000 });
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  return done / ((performance.now() - t0) / 1000);
}

await using server = await startNatsServer();
const conns = new Map<string, { caller: NatsConnection; responder: NatsConnection }>();
for (const [name, options] of Object.entries(CLIENTS)) {
  const responder = await connect({ servers: server.wsUrl, ...options });
  const caller = await connect({ servers: server.wsUrl, ...options });
  // each client has its own subject: replies travel over the same kind of socket
  responder.subscribe(`echo.${conns.size}`, {
    callback: (_err, msg) => {
      msg.respond(msg.data);
    },
  });
  await responder.flush();
  conns.set(name, { caller, responder });
}
// warm up every client (JIT, socket buffers)
let w = 0;
for (const { caller } of conns.values()) await measure(caller, `echo.${w++}`, 100, 10, 300);
// Rounds alternate between the clients so that noise on the machine hits them alike;
// each cell is the best of ROUNDS.
const results = new Map<string, Map<string, number>>();
for (const name of conns.keys()) results.set(name, new Map());
for (const [label, bytes, inflight] of CASES) {
  for (let round = 0; round < ROUNDS; round++) {
    let i = 0;
    for (const [name, { caller }] of conns) {
      const rate = await measure(caller, `echo.${i++}`, bytes, inflight, SECONDS * 1000);
      const row = results.get(name)!;
      row.set(label, Math.max(row.get(label) ?? 0, rate));
    }
  }
}
for (const { caller, responder } of conns.values()) {
  await caller.close();
  await responder.close();
}

const names = [...results.keys()];
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(
  `Deno ${Deno.version.deno}, nats.ws, nats-server on 127.0.0.1; req/s, best of ${ROUNDS} runs of ${SECONDS} s\n`,
);
console.log(`| case | ${names.join(" | ")} |`);
console.log(`| --- | ${names.map(() => "---:").join(" | ")} |`);
for (const [label] of CASES) {
  console.log(`| ${label} | ${names.map((n) => fmt(results.get(n)!.get(label)!)).join(" | ")} |`);
}
