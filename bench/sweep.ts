/**
 * The sweep of the benchmark: requests in flight × body size, for
 * Deno's built-in WebSocket vs `wsFactory` from `@seed/callbacks/deno`, and
 * raw nats.ws `nc.request` vs the library's `endpoint.request`.
 *
 * One nats-server and one plain nats.ws responder that echoes the request in
 * the library's wire format (`Callback-Kind: object`); the responder's own
 * socket is a `wsFactory` one, so that its answers never wait on Nagle and
 * only the caller's socket differs between columns. Each cell is the median
 * over rounds; within a round the four clients alternate (ABCD ABCD, the
 * starting client rotating every round).
 *
 * @module
 */

import { headers as natsHeaders, type NatsConnection } from "nats.ws";
import { Endpoint, KIND_HEADER, natsTransport } from "../mod.ts";
import { wsFactory as noDelayFactory } from "../deno.ts";
import {
  connectBench,
  decoder,
  Echo,
  echoBody,
  encoder,
  median,
  run,
  type Sample,
  type Send,
  SUBJECT,
  type WsFactory,
} from "./lib.ts";

export const SWEEP_LEVELS = [1, 5, 7, 10, 50, 100, 300, 1000] as const;
export const SWEEP_BODIES = [100, 4096] as const;
export const SWEEP_COLUMNS = ["nativeRaw", "nativeLib", "wsFactoryRaw", "wsFactoryLib"] as const;
export type SweepColumn = (typeof SWEEP_COLUMNS)[number];

const LABEL: Record<SweepColumn, string> = {
  nativeRaw: "native raw",
  nativeLib: "native lib",
  wsFactoryRaw: "wsFactory raw",
  wsFactoryLib: "wsFactory lib",
};

export interface SweepSettings {
  levels: number[];
  bodies: number[];
  rounds: number;
  /** length of one sample; each client runs two samples per cell per round */
  sampleMs: number;
  /** warm-up per client per cell, before the first round */
  warmupMs: number;
}

export interface SweepRow extends Record<SweepColumn, number> {
  body: number;
  inflight: number;
  errors: number;
  rounds: Record<SweepColumn, number>[];
}

export interface SweepCheck {
  id: "a" | "b" | "c";
  target: string;
  column: "wsFactoryRaw" | "wsFactoryLib";
  body: number | null;
  pass: boolean;
  /** the measured ratio compared with the threshold */
  ratio: number;
  threshold: number;
  detail: string;
}

export interface SweepResult {
  settings: SweepSettings;
  responder: string;
  rows: SweepRow[];
  checks: SweepCheck[];
  seconds: number;
}

const nf = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : String(n);

const bodyName = (bytes: number) => bytes >= 1024 ? `${bytes / 1024} KB` : `${bytes} B`;

/** Runs the sweep against the nats-server at `url` (websocket). */
export async function sweep(url: string, s: SweepSettings): Promise<SweepResult> {
  const began = performance.now();
  const factory = noDelayFactory as unknown as WsFactory;
  const rc = await connectBench(url, factory);
  const native = await connectBench(url);
  const fast = await connectBench(url, factory);
  const kind = natsHeaders();
  kind.set(KIND_HEADER, "object");
  // The request is already the response's JSON ({ body }): echo the bytes.
  rc.subscribe(SUBJECT.echo, { callback: (_e, m) => m.respond(m.data, { headers: kind }) });
  await rc.flush();
  const options = { timeout: 30_000, maxPending: 10_000 };
  const nativeEndpoint = new Endpoint(natsTransport(native), options);
  const fastEndpoint = new Endpoint(natsTransport(fast), options);
  try {
    const rawSend = (nc: NatsConnection, body: { body: string }): Send => async () =>
      JSON.parse(decoder.decode(
        (await nc.request(SUBJECT.echo, encoder.encode(JSON.stringify(body)), {
          timeout: 30_000,
        })).data,
      ));
    const libSend = (endpoint: Endpoint, body: { body: string }): Send => () =>
      endpoint.request(Echo, body);
    const cells: { body: number; inflight: number; sends: Record<SweepColumn, Send> }[] = [];
    for (const bytes of s.bodies) {
      const body = echoBody(bytes);
      const sends = {
        nativeRaw: rawSend(native, body),
        nativeLib: libSend(nativeEndpoint, body),
        wsFactoryRaw: rawSend(fast, body),
        wsFactoryLib: libSend(fastEndpoint, body),
      };
      for (const inflight of s.levels) cells.push({ body: bytes, inflight, sends });
    }
    const perRound: Record<SweepColumn, number>[][] = cells.map(() => []);
    const errors = cells.map(() => 0);
    for (const cell of cells) {
      for (const c of SWEEP_COLUMNS) await run(cell.sends[c], cell.inflight, s.warmupMs);
    }
    for (let round = 0; round < s.rounds; round++) {
      for (const [i, cell] of cells.entries()) {
        const samples = Object.fromEntries(SWEEP_COLUMNS.map((c) => [c, [] as Sample[]])) as Record<
          SweepColumn,
          Sample[]
        >;
        for (let k = 0; k < 2 * SWEEP_COLUMNS.length; k++) {
          const c = SWEEP_COLUMNS[(k + round) % SWEEP_COLUMNS.length]!;
          const sample = await run(cell.sends[c], cell.inflight, s.sampleMs);
          samples[c].push(sample);
          errors[i]! += sample.errors;
        }
        const rate = (xs: Sample[]) =>
          xs.reduce((t, x) => t + x.ops, 0) / xs.reduce((t, x) => t + x.ms, 0) * 1000;
        perRound[i]!.push(
          Object.fromEntries(SWEEP_COLUMNS.map((c) => [c, rate(samples[c])])) as Record<
            SweepColumn,
            number
          >,
        );
      }
      console.error(`  sweep round ${round + 1}/${s.rounds} done`);
    }
    const rows = cells.map((cell, i) => {
      const row = {
        body: cell.body,
        inflight: cell.inflight,
        errors: errors[i]!,
        rounds: perRound[i]!,
      } as SweepRow;
      for (const c of SWEEP_COLUMNS) row[c] = median(perRound[i]!.map((r) => r[c]));
      return row;
    });
    return {
      settings: s,
      responder: "plain nats.ws, echoing in the library's wire format, over wsFactory",
      rows,
      checks: sweepChecks(rows),
      seconds: (performance.now() - began) / 1000,
    };
  } finally {
    await nativeEndpoint.close();
    await fastEndpoint.close();
    await native.close();
    await fast.close();
    await rc.close();
  }
}

/** The Deno targets for `wsFactory`, raw and library, from the sweep's rows. */
export function sweepChecks(rows: readonly SweepRow[]): SweepCheck[] {
  const checks: SweepCheck[] = [];
  const bodies = [...new Set(rows.map((r) => r.body))].sort((a, b) => a - b);
  const at = (body: number, inflight: number) =>
    rows.find((r) => r.body === body && r.inflight === inflight);
  for (const column of ["wsFactoryRaw", "wsFactoryLib"] as const) {
    for (const body of bodies) {
      // (a) no level below 0.8× the best lower level
      const levels = rows.filter((r) => r.body === body).sort((x, y) => x.inflight - y.inflight);
      let best: SweepRow | undefined;
      let worst = { ratio: Infinity, row: undefined as SweepRow | undefined, best: best };
      for (const row of levels) {
        if (best) {
          const ratio = row[column] / best[column];
          if (ratio < worst.ratio) worst = { ratio, row, best };
        }
        if (!best || row[column] > best[column]) best = row;
      }
      const ratio = worst.row ? worst.ratio : NaN;
      checks.push({
        id: "a",
        target: "no level below 0.8× the best lower level",
        column,
        body,
        pass: worst.row ? worst.ratio >= 0.8 : false,
        ratio,
        threshold: 0.8,
        detail: worst.row
          ? `worst: ${nf(worst.row.inflight)} in flight ${nf(worst.row[column])} = ${
            nf(ratio, 2)
          }× best lower (${nf(worst.best![column])} at ${nf(worst.best!.inflight)})`
          : "fewer than two levels",
      });
      // (b) 10 in flight ≥ 2× 1 in flight
      const one = at(body, 1);
      const ten = at(body, 10);
      const r10 = one && ten ? ten[column] / one[column] : NaN;
      checks.push({
        id: "b",
        target: "10 in flight ≥ 2× 1 in flight",
        column,
        body,
        pass: r10 >= 2,
        ratio: r10,
        threshold: 2,
        detail: one && ten
          ? `${nf(ten[column])} vs ${nf(one[column])} = ${nf(r10, 2)}×`
          : "1 or 10 in flight not measured",
      });
    }
    // (c) 4 KB at 1 in flight ≥ 0.2× 100 B at 1 in flight
    const small = at(100, 1);
    const big = at(4096, 1);
    const rc = small && big ? big[column] / small[column] : NaN;
    checks.push({
      id: "c",
      target: "4 KB at 1 in flight ≥ 0.2× 100 B at 1 in flight",
      column,
      body: null,
      pass: rc >= 0.2,
      ratio: rc,
      threshold: 0.2,
      detail: small && big
        ? `${nf(big[column])} vs ${nf(small[column])} = ${nf(rc, 2)}×`
        : "not measured",
    });
  }
  return checks;
}

/** The sweep as Markdown: the table, then the checks. */
export function sweepMarkdown(r: SweepResult): string {
  const lines: string[] = [];
  lines.push(
    `Sweep, req/s: requests in flight × body (JSON request size), Deno's built-in WebSocket ` +
      `("native") vs \`wsFactory\` from \`@seed/callbacks/deno\`; raw = \`nc.request\` + ` +
      `\`JSON.parse\`, lib = \`endpoint.request\` (object contract, a string field carrying the ` +
      `body). One responder (${r.responder}); median of ${r.settings.rounds} rounds, ` +
      `2 × ${r.settings.sampleMs} ms per client per cell per round, the four clients ` +
      `alternating (ABCD ABCD); ${nf(r.seconds, 1)} s.`,
  );
  lines.push("");
  lines.push(`| body | in flight | ${SWEEP_COLUMNS.map((c) => LABEL[c]).join(" | ")} |`);
  lines.push(`| --- | ---: | ${SWEEP_COLUMNS.map(() => "---:").join(" | ")} |`);
  for (const row of r.rows) {
    lines.push(
      `| ${bodyName(row.body)} | ${nf(row.inflight)} | ${
        SWEEP_COLUMNS.map((c) => nf(row[c])).join(" | ")
      } |`,
    );
  }
  lines.push("");
  lines.push("Deno targets for `wsFactory`:");
  lines.push("");
  lines.push("| check | client | body | result | numbers |");
  lines.push("| --- | --- | --- | --- | --- |");
  for (const c of r.checks) {
    lines.push(
      `| (${c.id}) ${c.target} | ${LABEL[c.column]} | ${
        c.body === null ? "" : bodyName(c.body)
      } | ${c.pass ? "pass" : "**FAIL**"} | ${c.detail} |`,
    );
  }
  return lines.join("\n") + "\n";
}
