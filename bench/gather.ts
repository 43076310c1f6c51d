/**
 * Scatter-gather throughput: one request, ten replies. `endpoint.requestMany`
 * (every reply read and validated, `max: 10`) against raw nats.ws
 * `nc.requestMany` (count strategy, ten messages) + `JSON.parse` of each,
 * both gathering from the SAME ten plain nats.ws responders (no queue group,
 * answering in the library's wire format), in the same run, library and raw
 * alternating (ABAB), the median of the per-round ratios reported.
 *
 *     deno run -A bench/gather.ts [--quick] [--ws-factory deno.ts]
 *
 * `deno task bench` runs it as one of its sections.
 *
 * @module
 */

import { headers as natsHeaders, type NatsConnection, RequestStrategy } from "nats.ws";
import * as v from "valibot";
import { defineRequest, Endpoint, KIND_HEADER, natsTransport, object } from "../mod.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import {
  connectBench,
  decoder,
  encoder,
  loadWsFactory,
  median,
  run,
  type Sample,
  type Send,
  type WsFactory,
} from "./lib.ts";

/** How many responders answer each gather. */
export const RESPONDERS = 10;
const SUBJECT = "bench.gather";

/** A quote per responder. */
export const GetQuote = defineRequest({
  subject: SUBJECT,
  request: v.object({ sku: v.string() }),
  response: object(v.object({ carrier: v.string(), price: v.number() })),
});

/** How long and how often to measure. */
export interface GatherSettings {
  rounds: number;
  sampleMs: number;
  warmupMs: number;
  /** Gathers in flight at once, one row each. */
  levels: number[];
}

/** One row: gathers per second (each of ten replies) at one level, library vs raw. */
export interface GatherRow {
  inflight: number;
  libraryGps: number;
  rawGps: number;
  /** Median of the per-round ratios library/raw. */
  ratio: number;
  errors: number;
}

/** Ten plain nats.ws responders on `rc`, every one answering (no queue group). */
function startResponders(rc: NatsConnection): void {
  const h = natsHeaders();
  h.set(KIND_HEADER, "object");
  for (let k = 0; k < RESPONDERS; k++) {
    const reply = encoder.encode(JSON.stringify({ carrier: `c${k}`, price: 10 + k }));
    rc.subscribe(SUBJECT, { callback: (_e, m) => m.respond(reply, { headers: h }) });
  }
}

function sends(endpoint: Endpoint, cc: NatsConnection): { library: Send; raw: Send } {
  const body = { sku: "A-1" };
  const payload = encoder.encode(JSON.stringify(body));
  return {
    library: async () => {
      let n = 0;
      for await (const r of endpoint.requestMany(GetQuote, body, { max: RESPONDERS })) {
        if (r.status !== "fulfilled") throw r.reason;
        n++;
      }
      if (n !== RESPONDERS) throw new Error(`${n} replies`);
    },
    raw: async () => {
      let n = 0;
      const replies = await cc.requestMany(SUBJECT, payload, {
        strategy: RequestStrategy.Count,
        maxMessages: RESPONDERS,
        maxWait: 30_000,
      });
      for await (const m of replies) {
        JSON.parse(decoder.decode(m.data));
        n++;
      }
      if (n !== RESPONDERS) throw new Error(`${n} replies`);
    },
  };
}

/** Measures every level of `settings` against the nats-server at `url`. */
export async function gatherBench(
  url: string,
  settings: GatherSettings,
  factory?: WsFactory,
): Promise<GatherRow[]> {
  const rc = await connectBench(url, factory);
  const cc = await connectBench(url, factory);
  startResponders(rc);
  await rc.flush();
  const endpoint = new Endpoint(natsTransport(cc), { timeout: 30_000, maxPending: 100_000 });
  try {
    const { library, raw } = sends(endpoint, cc);
    const rows: GatherRow[] = [];
    for (const inflight of settings.levels) {
      await run(raw, inflight, settings.warmupMs);
      await run(library, inflight, settings.warmupMs);
      const rounds: { libraryGps: number; rawGps: number; ratio: number }[] = [];
      let errors = 0;
      for (let round = 0; round < settings.rounds; round++) {
        const a: Sample[] = [];
        const b: Sample[] = [];
        for (let k = 0; k < 4; k++) {
          const libraryTurn = (k + round) % 2 === 0;
          const sample = await run(libraryTurn ? library : raw, inflight, settings.sampleMs / 2);
          (libraryTurn ? a : b).push(sample);
          errors += sample.errors;
        }
        const rate = (xs: Sample[]) =>
          xs.reduce((t, x) => t + x.ops, 0) / xs.reduce((t, x) => t + x.ms, 0) * 1000;
        rounds.push({ libraryGps: rate(a), rawGps: rate(b), ratio: rate(a) / rate(b) });
      }
      rows.push({
        inflight,
        libraryGps: median(rounds.map((r) => r.libraryGps)),
        rawGps: median(rounds.map((r) => r.rawGps)),
        ratio: median(rounds.map((r) => r.ratio)),
        errors,
      });
    }
    return rows;
  } finally {
    await endpoint.close();
    await cc.close();
    await rc.close();
  }
}

/** The rows as lines of the benchmark's main table. */
export function gatherTableRows(rows: readonly GatherRow[]): string[] {
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  return rows.map((r) =>
    `| gathers of ${RESPONDERS} object replies, gathers/s | ${fmt(r.inflight)} | ${
      fmt(r.libraryGps)
    } | ${fmt(r.rawGps)} | ${r.ratio.toFixed(2)} |`
  );
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const at = Deno.args.indexOf("--ws-factory");
  const factory = at >= 0 ? await loadWsFactory(Deno.args[at + 1]!) : undefined;
  await using server = await startNatsServer();
  const rows = await gatherBench(
    server.wsUrl,
    quick
      ? { rounds: 1, sampleMs: 60, warmupMs: 60, levels: [1, 10] }
      : { rounds: 5, sampleMs: 500, warmupMs: 300, levels: [1, 20] },
    factory,
  );
  console.log(
    [
      "| measure | in flight | library | raw nats.ws | library/raw |",
      "| --- | ---: | ---: | ---: | ---: |",
    ]
      .concat(gatherTableRows(rows)).join("\n"),
  );
}
