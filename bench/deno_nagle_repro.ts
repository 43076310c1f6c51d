/**
 * Reproduces the Deno WebSocket client's Nagle stall (docs/deno-websocket-nagle.md):
 * starts its own nats-server, then measures raw `nc.request()` throughput with
 * nats.ws over Deno's built-in `WebSocket`, nats.ws over `wsFactory` from
 * `@seed/callbacks/deno` (npm `ws`, TCP_NODELAY on), and `@nats-io/transport-node`
 * on the NATS TCP port (TCP_NODELAY on, no WebSocket).
 *
 *     deno run --allow-all bench/deno_nagle_repro.ts [--seconds 0.5]
 *
 * @module
 */

import { connect, type NatsConnection } from "nats.ws";
// a bench-only comparison, pinned with the test tools (not in deno.json)
import { connect as connectTcp } from "../tests/deps/transport_node.ts";
import { wsFactory } from "../deno.ts";
import { type NatsServer, startNatsServer } from "../tests/helpers/nats_server.ts";

/** How each client connects. */
const CLIENTS: Record<string, (server: NatsServer) => Promise<NatsConnection>> = {
  "native WebSocket": (server) => connect({ servers: server.wsUrl }),
  // nats.ws' ConnectionOptions type omits wsFactory (it reads it at run time)
  "wsFactory": (server) => connect({ servers: server.wsUrl, ...{ wsFactory } }),
  // nats.ws and transport-node's nats-core are separate packages: the transport factory
  // transport-node installs is nats-core's, and nats.ws does not see it
  "transport-node (TCP)": async (server) =>
    (await connectTcp({ servers: `127.0.0.1:${server.port}` })) as unknown as NatsConnection,
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
for (const [name, open] of Object.entries(CLIENTS)) {
  const responder = await open(server);
  const caller = await open(server);
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
  `Deno ${Deno.version.deno}, nats-server on 127.0.0.1; req/s, best of ${ROUNDS} runs of ${SECONDS} s\n`,
);
console.log(`| case | ${names.join(" | ")} |`);
console.log(`| --- | ${names.map(() => "---:").join(" | ")} |`);
for (const [label] of CASES) {
  console.log(`| ${label} | ${names.map((n) => fmt(results.get(n)!.get(label)!)).join(" | ")} |`);
}
