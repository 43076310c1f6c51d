/**
 * What the callbacks Durable Object saves a Cloudflare Worker: the same
 * Worker route (`GET /stock/A-1`, an int callback) in workerd, with a NATS
 * connection per request (examples/worker/per_request.ts) and through
 * `CallbacksObject` (examples/worker/worker.ts), in the same run against one
 * nats-server and one responder; and a route that needs no NATS (`GET /nope`,
 * a 404) for the floor of an HTTP request to workerd. Sequential round trip
 * p50/p99 (alternating chunks), requests per second at 50 in flight (ABAB
 * rounds), and the NATS connections the server saw opened. (Not workerd's
 * memory: it grows under any load here, a 404 route's too.)
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
import { connz, monitorUrl } from "../tests/helpers/monitor.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import { startWorkerd, type Workerd } from "../tests/helpers/workerd.ts";
import { median, percentile, run, type Sample } from "./lib.ts";

const quick = Deno.args.includes("--quick");
const ROUNDS = quick ? 1 : 5;
const SAMPLE_MS = quick ? 200 : 1_000;
const LATENCY = quick ? 40 : 1_000;
const CHUNK = quick ? 20 : 100;
const INFLIGHT = 50;

/** One way of serving the route. */
type Way = "perRequest" | "object" | "noNats";

/** The measures of one way. */
export interface WayBench {
  p50: number;
  p99: number;
  rps: number;
  /** Failed HTTP requests during the throughput rounds. */
  errors: number;
}

/** The measures. */
export interface EdgeBench {
  inflight: number;
  perRequest: WayBench;
  object: WayBench;
  noNats: WayBench;
  /** NATS connections the server saw opened (and closed) per Worker, over the whole run. */
  connections: { perRequest: number; object: number };
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
    const send = (way: Way) => async () => {
      const [worker, path] = workers[way];
      const res = await fetch(`${worker.url}${path}`);
      await res.body?.cancel();
      if (res.status !== (way === "noNats" ? 404 : 200)) throw new Error(`${way}: ${res.status}`);
    };
    const ways: Way[] = ["perRequest", "object", "noNats"];
    // Warm up each (the object connects on its first request).
    for (const way of ways) await run(send(way), INFLIGHT, SAMPLE_MS / 4);
    const openedBefore = await openedBy(monitor);

    // Sequential round trips, in alternating chunks.
    const times: Record<Way, number[]> = { perRequest: [], object: [], noNats: [] };
    for (let done = 0; done < LATENCY; done += CHUNK) {
      for (const way of ways) {
        const fn = send(way);
        for (let i = 0; i < CHUNK; i++) {
          const t = performance.now();
          await fn();
          times[way].push(performance.now() - t);
        }
      }
    }
    // Throughput at 50 in flight, the ways in turn, their order rotated each round.
    const rates: Record<Way, number[]> = { perRequest: [], object: [], noNats: [] };
    const errors: Record<Way, number> = { perRequest: 0, object: 0, noNats: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < ways.length; k++) {
        const way = ways[(k + round) % ways.length]!;
        const sample: Sample = await run(send(way), INFLIGHT, SAMPLE_MS);
        rates[way].push(sample.ops / sample.ms * 1000);
        errors[way] += sample.errors;
      }
    }
    const opened = await openedBy(monitor);
    const of = (way: Way): WayBench => ({
      p50: percentile(times[way], 50),
      p99: percentile(times[way], 99),
      rps: median(rates[way]),
      errors: errors[way],
    });
    return {
      inflight: INFLIGHT,
      perRequest: of("perRequest"),
      object: of("object"),
      noNats: of("noNats"),
      connections: {
        perRequest: opened.perRequest - openedBefore.perRequest,
        object: opened.object - openedBefore.object,
      },
    };
  } finally {
    await responder.close();
    await nc.close();
  }
}

/** Connections opened so far by each Worker: the object's by name, the rest from the total. */
async function openedBy(monitor: string): Promise<{ perRequest: number; object: number }> {
  const open = (await connz(monitor, "open")).connections;
  const object = open.filter((c) => c.name === "@seed/callbacks cloudflare").length;
  const varz = await (await fetch(`${monitor}/varz`)).json() as { total_connections: number };
  return { object, perRequest: varz.total_connections - object - 1 /* the responder */ };
}

if (import.meta.main) {
  const r = await edgeBench();
  const ms = (n: number) => n.toFixed(2);
  const f = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(JSON.stringify(r, null, 2));
  console.log([
    "| GET /stock/A-1 in workerd | connection per request | Durable Object | object/per request | no NATS (404) |",
    "| --- | ---: | ---: | ---: | ---: |",
    `| sequential p50, ms | ${ms(r.perRequest.p50)} | ${ms(r.object.p50)} | ${
      (r.object.p50 / r.perRequest.p50).toFixed(2)
    } | ${ms(r.noNats.p50)} |`,
    `| sequential p99, ms | ${ms(r.perRequest.p99)} | ${ms(r.object.p99)} | ${
      (r.object.p99 / r.perRequest.p99).toFixed(2)
    } | ${ms(r.noNats.p99)} |`,
    `| ${r.inflight} in flight, req/s | ${f(r.perRequest.rps)} | ${f(r.object.rps)} | ${
      (r.object.rps / r.perRequest.rps).toFixed(2)
    } | ${f(r.noNats.rps)} |`,
    `| failed requests | ${r.perRequest.errors} | ${r.object.errors} | | ${r.noNats.errors} |`,
    `| NATS connections opened in the run | ${f(r.connections.perRequest)} | ${
      f(r.connections.object)
    } | | |`,
  ].join("\n"));
}
