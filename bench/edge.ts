/**
 * What the callbacks Durable Object saves a Cloudflare Worker: the same
 * Worker route (`GET /stock/A-1`, an int callback) in workerd, with a NATS
 * connection per request (examples/worker/per_request.ts) and through
 * `CallbacksObject` (examples/worker/worker.ts), in the same run against one
 * nats-server and one responder; and a route that needs no NATS (`GET /nope`,
 * a 404) for the floor of an HTTP request to workerd. For each: round trip
 * p50/p99 and requests per second one at a time (alternating chunks) and at
 * 50 in flight (the ways in turn, their order rotated each round), and the
 * NATS connections the server saw opened. (Not workerd's memory: it grows
 * under any load here, a 404 route's too.)
 *
 *     deno run -A bench/edge.ts [--quick]
 *
 * @module
 */

import { connect } from "nats.ws";
import { Endpoint, natsTransport } from "../mod.ts";
import { wsFactory } from "../deno.ts";
import { CheckStock } from "../examples/worker/routes.ts";
import { bundle } from "../tests/helpers/bundle.ts";
import { connz, monitorUrl, totalConnections } from "../tests/helpers/monitor.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { startWorkerd, type Workerd } from "../tests/helpers/workerd.ts";
import { median, percentile } from "./lib.ts";

const quick = Deno.args.includes("--quick");
const ROUNDS = quick ? 1 : 5;
const SAMPLE_MS = quick ? 200 : 1_000;
const SEQUENTIAL = quick ? 40 : 1_000;
const CHUNK = quick ? 20 : 100;
const INFLIGHT = 50;
/** What the Durable Object names its connection. */
const OBJECT_NAME = "@seed/callbacks cloudflare";

/** One way of serving the route. */
type Way = "perRequest" | "object" | "noNats";

/** Round trips and rate at one level of concurrency. */
export interface Level {
  /** Round trip, ms. */
  p50: number;
  p99: number;
  /** Requests per second. */
  rps: number;
}

/** The measures of one way. */
export interface WayBench {
  sequential: Level;
  concurrent: Level;
  /** Failed HTTP requests over the run. */
  errors: number;
}

/** The measures. */
export interface EdgeBench {
  inflight: number;
  perRequest: WayBench;
  object: WayBench;
  noNats: WayBench;
  /** NATS connections each Worker opened during the measured run (after its warm-up). */
  connections: { perRequest: number; object: number };
}

/** Round trips recorded while sending. */
interface Recorded {
  times: number[];
  ms: number;
  errors: number;
}

/** Sends with `inflight` loops for `ms`, recording each round trip. */
async function flow(send: () => Promise<void>, inflight: number, ms: number): Promise<Recorded> {
  const times: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + ms;
  const loop = async () => {
    while (performance.now() < end) {
      const t = performance.now();
      try {
        await send();
        times.push(performance.now() - t);
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, loop));
  return { times, ms: performance.now() - start, errors };
}

/** Runs every measure against a fresh nats-server and two workerd processes. */
export async function edgeBench(): Promise<EdgeBench> {
  await using server = await startNatsServer({ config: 'http: "127.0.0.1:-1"' });
  const monitor = await monitorUrl(server);
  // Through the wsFactory Deno users should use (TCP_NODELAY).
  const options = { servers: server.wsUrl, wsFactory };
  const nc = await connect(options);
  const responder = new Endpoint(natsTransport(nc), { sendOnly: true });
  try {
    responder.handle(CheckStock, ({ sku }) => sku === "A-1" ? 5 : 0);
    await nc.flush();
    const script = async (file: string) =>
      await bundle(new URL(`../examples/worker/${file}`, import.meta.url), {
        platform: "browser",
      });
    await using perRequest = await startWorkerd({
      script: await script("per_request.ts"),
      bindings: { NATS_SERVERS: server.wsUrl },
    });
    await using object = await startWorkerd({
      script: await script("worker.ts"),
      bindings: { NATS_SERVERS: server.wsUrl },
      durableObjects: { CALLBACKS: "CallbacksObject" },
    });
    const workers: Record<Way, [Workerd, string]> = {
      perRequest: [perRequest, "/stock/A-1"],
      object: [object, "/stock/A-1"],
      noNats: [object, "/nope"],
    };
    const errors: Record<Way, number> = { perRequest: 0, object: 0, noNats: 0 };
    const send = (way: Way) => async () => {
      const [worker, path] = workers[way];
      const res = await fetch(`${worker.url}${path}`);
      await res.body?.cancel();
      if (res.status !== (way === "noNats" ? 404 : 200)) {
        errors[way]++;
        throw new Error(`${way}: ${res.status}`);
      }
    };
    const ways: Way[] = ["perRequest", "object", "noNats"];
    // Warm up each (the object connects on its first request).
    for (const way of ways) await flow(send(way), INFLIGHT, SAMPLE_MS / 4);
    for (const way of ways) errors[way] = 0;
    const before = await opened(monitor);

    // One at a time, in alternating chunks.
    const sequential: Record<Way, Recorded[]> = { perRequest: [], object: [], noNats: [] };
    for (let done = 0; done < SEQUENTIAL; done += CHUNK) {
      for (const way of ways) {
        const fn = send(way);
        const times: number[] = [];
        const start = performance.now();
        for (let i = 0; i < CHUNK; i++) {
          const t = performance.now();
          // A failed request is counted (errors), not timed: as in flow().
          if (await fn().then(() => true, () => false)) times.push(performance.now() - t);
        }
        sequential[way].push({ times, ms: performance.now() - start, errors: 0 });
      }
    }
    // At 50 in flight, the ways in turn, their order rotated each round.
    const concurrent: Record<Way, Recorded[]> = { perRequest: [], object: [], noNats: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < ways.length; k++) {
        const way = ways[(k + round) % ways.length]!;
        concurrent[way].push(await flow(send(way), INFLIGHT, SAMPLE_MS));
      }
    }
    const after = await opened(monitor);
    const level = (samples: Recorded[]): Level => {
      const times = samples.flatMap((s) => s.times);
      return {
        p50: percentile(times, 50),
        p99: percentile(times, 99),
        rps: median(samples.map((s) => s.times.length / s.ms * 1_000)),
      };
    };
    const of = (way: Way): WayBench => ({
      sequential: level(sequential[way]),
      concurrent: level(concurrent[way]),
      errors: errors[way],
    });
    return {
      inflight: INFLIGHT,
      perRequest: of("perRequest"),
      object: of("object"),
      noNats: of("noNats"),
      connections: {
        perRequest: after.perRequest - before.perRequest,
        object: after.object - before.object,
      },
    };
  } finally {
    await responder.close();
    await nc.close();
  }
}

/**
 * Connections opened so far by each Worker: the object's by name (open or closed), the rest
 * from the server's total (less the responder's).
 */
async function opened(monitor: string): Promise<{ perRequest: number; object: number }> {
  const named = async (state: "open" | "closed") =>
    (await connz(monitor, state)).connections.filter((c) => c.name === OBJECT_NAME).length;
  const object = await named("open") + await named("closed");
  return { object, perRequest: await totalConnections(monitor) - object - 1 };
}

if (import.meta.main) {
  const r = await edgeBench();
  const ms = (n: number) => n.toFixed(2);
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  const row = (label: string, pick: (w: WayBench) => number, format: (n: number) => string) =>
    `| ${label} | ${format(pick(r.perRequest))} | ${format(pick(r.object))} | ${
      (pick(r.object) / pick(r.perRequest)).toFixed(2)
    } | ${format(pick(r.noNats))} |`;
  console.log(JSON.stringify(r, null, 2));
  console.log([
    "| GET /stock/A-1 in workerd | connection per request | Durable Object | object/per request | no NATS (404) |",
    "| --- | ---: | ---: | ---: | ---: |",
    row("one at a time: p50, ms", (w) => w.sequential.p50, ms),
    row("one at a time: p99, ms", (w) => w.sequential.p99, ms),
    row("one at a time: req/s", (w) => w.sequential.rps, f),
    row(`${r.inflight} in flight: p50, ms`, (w) => w.concurrent.p50, ms),
    row(`${r.inflight} in flight: p99, ms`, (w) => w.concurrent.p99, ms),
    row(`${r.inflight} in flight: req/s`, (w) => w.concurrent.rps, f),
    `| failed requests | ${r.perRequest.errors} | ${r.object.errors} | | ${r.noNats.errors} |`,
    `| NATS connections opened in the run | ${f(r.connections.perRequest)} | ${
      f(r.connections.object)
    } | | |`,
  ].join("\n"));
}
