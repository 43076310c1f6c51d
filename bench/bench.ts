/**
 * Side-by-side benchmark of @seed/callbacks against raw nats.ws, in one run,
 * against one nats-server (websocket) and one responder connection.
 *
 *     deno task bench [--quick] [--sweep] [--rounds N] [--json path]
 *     deno run -A bench/bench.ts [the same] [--ws-factory module]
 *
 * `deno task bench` runs every section but the sweep through `--ws-factory
 * deno.ts` (the `wsFactory` Deno users should use); without `--ws-factory`
 * they run over Deno's built-in WebSocket, whose Nagle stall then dominates
 * 5 to 300 requests in flight for both clients.
 *
 * Every timing is reported as a ratio against raw nats.ws measured in the
 * same run (library/raw): the absolute numbers depend on the machine.
 *
 * - throughput at 1, 100, 1000 requests in flight: `endpoint.request` vs
 *   `nc.request` + decoding, both against the SAME plain nats.ws responder
 *   that answers in the library's wire format (`Callback-Kind` header), so
 *   only the client differs; median of rounds, A and B alternating (ABAB);
 *   one extra row answers with the library's own responder (`endpoint.handle`)
 *   vs a raw responder, so both sides differ;
 * - sequential round-trip latency p50/p99, in alternating chunks;
 * - heap per pending callback (subprocess with --expose-gc), 100k waiting;
 * - 100k requests timing out (subprocess): wall time to all settled,
 *   `pending` after, and whether anything (a timer) keeps the event loop
 *   alive once the connection is closed, plus how long the process takes to
 *   exit by itself;
 * - the in-memory transport's round trips per second;
 * - scatter-gather (bench/gather.ts): `endpoint.requestMany` vs nats.ws
 *   `requestMany` + `JSON.parse`, ten responders, 1 and 20 gathers in flight;
 * - mod.ts bundled + minified (esbuild, nats.ws and valibot external), gzipped;
 * - the sweep (bench/sweep.ts): 1…1000 requests in flight × 100 B / 4 KB
 *   bodies, Deno's built-in WebSocket vs `wsFactory` from `../deno.ts`, raw vs
 *   library, with the Deno targets checked. `--sweep` runs only the sweep;
 *   `--quick` runs a tiny one (1 and 10 in flight, 1 round).
 *
 * @module
 */

import { natsServerBin } from "../tests/prerequisites.ts";
import { headers as natsHeaders, type NatsConnection } from "nats.ws";
import { Endpoint, KIND_HEADER, memoryTransport, natsTransport } from "../mod.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";
import {
  Approve,
  BODY,
  CheckStock,
  connectBench,
  countTimers,
  decoder,
  encoder,
  gc,
  loadWsFactory,
  median,
  ORDER,
  percentile,
  PlaceOrder,
  PlaceOrderLib,
  run,
  type Sample,
  type Send,
  Silent,
  SUBJECT,
  tick,
  type WsFactory,
} from "./lib.ts";
import { gatherBench, gatherTableRows } from "./gather.ts";
import {
  sweep,
  SWEEP_BODIES,
  SWEEP_LEVELS,
  sweepMarkdown,
  type SweepResult,
  type SweepSettings,
} from "./sweep.ts";

const ROOT = new URL("../", import.meta.url);
const SELF = new URL(import.meta.url).pathname;

// ---------------------------------------------------------------- arguments

interface Args {
  quick: boolean;
  sweep: boolean;
  rounds: number | undefined;
  json: string;
  wsFactory: string | undefined;
  child: string | undefined;
  url: string | undefined;
  count: number | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    quick: false,
    sweep: false,
    rounds: undefined,
    json: "bench/results/latest.json",
    wsFactory: undefined,
    child: undefined,
    url: undefined,
    count: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") args.quick = true;
    else if (a === "--sweep") args.sweep = true;
    else if (a === "--rounds") args.rounds = positive(value(), a);
    else if (a === "--json") args.json = value();
    else if (a === "--ws-factory") args.wsFactory = value();
    else if (a === "--child") args.child = value();
    else if (a === "--url") args.url = value();
    else if (a === "--count") args.count = positive(value(), a);
    else if (a === "--help" || a === "-h") {
      console.log(
        "deno task bench [--quick] [--sweep] [--rounds N] [--json path] [--ws-factory module-path]",
      );
      Deno.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer`);
  return n;
}

interface Settings {
  rounds: number;
  sampleMs: number;
  warmupMs: number;
  latencyCount: number;
  latencyChunk: number;
  memoryCount: number;
  timeoutCount: number;
  timeoutMs: number;
  memoryTransportMs: number;
  sweep: SweepSettings;
}

function settingsFor(args: Args): Settings {
  return args.quick
    ? {
      rounds: args.rounds ?? 1,
      sampleMs: 60,
      warmupMs: 60,
      latencyCount: 40,
      latencyChunk: 20,
      memoryCount: 2_000,
      timeoutCount: 2_000,
      timeoutMs: 200,
      memoryTransportMs: 100,
      sweep: { levels: [1, 10], bodies: [...SWEEP_BODIES], rounds: 1, sampleMs: 30, warmupMs: 30 },
    }
    : {
      rounds: args.rounds ?? 5,
      sampleMs: 500,
      warmupMs: 500,
      latencyCount: 2_000,
      latencyChunk: 100,
      memoryCount: 100_000,
      timeoutCount: 100_000,
      timeoutMs: 200,
      memoryTransportMs: 1_000,
      sweep: {
        levels: [...SWEEP_LEVELS],
        bodies: [...SWEEP_BODIES],
        rounds: args.rounds ?? 5,
        sampleMs: 200,
        warmupMs: 100,
      },
    };
}

// ---------------------------------------------------------------- the clients

interface Case {
  name: string;
  inflight: number;
  library: Send;
  raw: Send;
}

function rawRequest(nc: NatsConnection, subject: string): (body: unknown) => Promise<Uint8Array> {
  return async (body) =>
    (await nc.request(subject, encoder.encode(JSON.stringify(body)), { timeout: 30_000 })).data;
}

/**
 * Plain nats.ws responders answering in the library's wire format, a library
 * responder, and a subscriber that never answers.
 */
function startResponders(rc: NatsConnection): Endpoint {
  const kind = (k: string) => {
    const h = natsHeaders();
    h.set(KIND_HEADER, k);
    return h;
  };
  const objectReply = encoder.encode(JSON.stringify(ORDER));
  const objectHeaders = kind("object");
  rc.subscribe(SUBJECT.object, {
    callback: (_e, m) => m.respond(objectReply, { headers: objectHeaders }),
  });
  const intReply = encoder.encode("42");
  const intHeaders = kind("int");
  rc.subscribe(SUBJECT.int, { callback: (_e, m) => m.respond(intReply, { headers: intHeaders }) });
  const enumReply = encoder.encode(JSON.stringify("Approved"));
  const enumHeaders = kind("enum");
  rc.subscribe(SUBJECT.enum, {
    callback: (_e, m) => m.respond(enumReply, { headers: enumHeaders }),
  });
  // The raw twin of the library responder below: decodes, answers without headers.
  rc.subscribe(`${SUBJECT.libObject}.raw`, {
    callback: (_e, m) => {
      const { sku, qty } = JSON.parse(decoder.decode(m.data));
      m.respond(encoder.encode(JSON.stringify({ orderId: `${sku}x${qty}`, eta: 2 })));
    },
  });
  rc.subscribe(SUBJECT.silent, { callback: () => {} });
  const responder = new Endpoint(natsTransport(rc), { sendOnly: true });
  responder.handle(PlaceOrderLib, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
  return responder;
}

function casesFor(endpoint: Endpoint, cc: NatsConnection, fast: NatsConnection): Case[] {
  const rawObject = rawRequest(cc, SUBJECT.object);
  const rawInt = rawRequest(cc, SUBJECT.int);
  const rawEnum = rawRequest(cc, SUBJECT.enum);
  const rawLibObject = rawRequest(cc, `${SUBJECT.libObject}.raw`);
  const kinds: [string, Send, Send][] = [
    [
      "object",
      () => endpoint.request(PlaceOrder, BODY),
      async () => JSON.parse(decoder.decode(await rawObject(BODY))),
    ],
    [
      "int",
      () => endpoint.request(CheckStock, BODY),
      async () => Number(decoder.decode(await rawInt(BODY))),
    ],
    [
      "enum",
      () => endpoint.request(Approve, BODY),
      async () => decoder.decode(await rawEnum(BODY)),
    ],
  ];
  const cases: Case[] = [];
  for (const inflight of [1, 100, 1000]) {
    for (const [name, library, raw] of kinds) cases.push({ name, inflight, library, raw });
  }
  // A harder anchor: nats.ws with noAsyncTraces skips the two stack captures per request.
  const rawFast = rawRequest(fast, SUBJECT.object);
  for (const inflight of [1, 1000]) {
    cases.push({
      name: "object vs raw with `noAsyncTraces: true`",
      inflight,
      library: () => endpoint.request(PlaceOrder, BODY),
      raw: async () => JSON.parse(decoder.decode(await rawFast(BODY))),
    });
  }
  cases.push({
    name: "object, both sides (endpoint.handle vs raw responder)",
    inflight: 1000,
    library: () => endpoint.request(PlaceOrderLib, BODY),
    raw: async () => JSON.parse(decoder.decode(await rawLibObject(BODY))),
  });
  return cases;
}

// ---------------------------------------------------------------- measuring

interface ThroughputRow {
  case: string;
  inflight: number;
  libraryRps: number;
  rawRps: number;
  /** Median of the per-round ratios library/raw. */
  ratio: number;
  errors: number;
  rounds: { libraryRps: number; rawRps: number; ratio: number }[];
}

async function throughput(cases: Case[], s: Settings): Promise<ThroughputRow[]> {
  for (const c of cases) {
    await run(c.raw, c.inflight, s.warmupMs);
    await run(c.library, c.inflight, s.warmupMs);
  }
  const perRound: ThroughputRow["rounds"][] = cases.map(() => []);
  const errors = cases.map(() => 0);
  for (let round = 0; round < s.rounds; round++) {
    for (const [i, c] of cases.entries()) {
      // A B A B, starting with the other side every round.
      const a: Sample[] = [];
      const b: Sample[] = [];
      for (let k = 0; k < 4; k++) {
        const libraryTurn = (k + round) % 2 === 0;
        const sample = await run(libraryTurn ? c.library : c.raw, c.inflight, s.sampleMs / 2);
        (libraryTurn ? a : b).push(sample);
        errors[i]! += sample.errors;
      }
      const rate = (xs: Sample[]) =>
        xs.reduce((t, x) => t + x.ops, 0) / xs.reduce((t, x) => t + x.ms, 0) * 1000;
      const libraryRps = rate(a);
      const rawRps = rate(b);
      perRound[i]!.push({ libraryRps, rawRps, ratio: libraryRps / rawRps });
    }
    console.error(`  throughput round ${round + 1}/${s.rounds} done`);
  }
  return cases.map((c, i) => ({
    case: c.name,
    inflight: c.inflight,
    libraryRps: median(perRound[i]!.map((r) => r.libraryRps)),
    rawRps: median(perRound[i]!.map((r) => r.rawRps)),
    ratio: median(perRound[i]!.map((r) => r.ratio)),
    errors: errors[i]!,
    rounds: perRound[i]!,
  }));
}

interface Latency {
  count: number;
  library: { p50: number; p99: number; mean: number };
  raw: { p50: number; p99: number; mean: number };
  ratioP50: number;
  ratioP99: number;
}

async function latency(c: Case, s: Settings): Promise<Latency> {
  const lib: number[] = [];
  const raw: number[] = [];
  for (let i = 0; i < 50; i++) {
    await c.library();
    await c.raw();
  }
  let turn = 0;
  while (lib.length < s.latencyCount || raw.length < s.latencyCount) {
    const libraryTurn = turn++ % 2 === 0;
    const into = libraryTurn ? lib : raw;
    const send = libraryTurn ? c.library : c.raw;
    for (let i = 0; i < s.latencyChunk && into.length < s.latencyCount; i++) {
      const t = performance.now();
      await send();
      into.push(performance.now() - t);
    }
  }
  const stats = (xs: number[]) => ({
    p50: percentile(xs, 50),
    p99: percentile(xs, 99),
    mean: xs.reduce((a, b) => a + b, 0) / xs.length,
  });
  const library = stats(lib);
  const rawStats = stats(raw);
  return {
    count: s.latencyCount,
    library,
    raw: rawStats,
    ratioP50: library.p50 / rawStats.p50,
    ratioP99: library.p99 / rawStats.p99,
  };
}

async function memoryTransportRate(s: Settings): Promise<{ inflight: number; rps: number }> {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus, { maxPending: 200_000 });
  responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
  const send = () => caller.request(PlaceOrder, BODY);
  await run(send, 1000, s.warmupMs);
  const rates: number[] = [];
  for (let i = 0; i < Math.max(3, s.rounds); i++) {
    const r = await run(send, 1000, s.memoryTransportMs);
    rates.push(r.ops / r.ms * 1000);
  }
  return { inflight: 1000, rps: median(rates) };
}

// ---------------------------------------------------------------- subprocesses

interface ChildResult {
  [key: string]: number | boolean | null | string;
}

async function runChild(
  kind: string,
  url: string,
  count: number,
  wsFactory: string | undefined,
  extraFlags: string[] = [],
): Promise<ChildResult & { exitMs: number }> {
  const args = [
    "run",
    "-A",
    ...extraFlags,
    SELF,
    "--child",
    kind,
    "--url",
    url,
    "--count",
    String(count),
  ];
  if (wsFactory) args.push("--ws-factory", wsFactory);
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  // Read lines as they come: the result line's arrival time is compared with the exit.
  let result: ChildResult | undefined;
  let resultAt = NaN;
  let buffer = "";
  const text = child.stdout.pipeThrough(new TextDecoderStream());
  for await (const chunk of text) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.startsWith("RESULT ")) {
        result = JSON.parse(line.slice(7));
        resultAt = performance.now();
      }
    }
  }
  const status = await child.status;
  const exitMs = performance.now() - resultAt;
  if (!status.success || result === undefined) {
    throw new Error(`bench child ${kind} failed (exit code ${status.code})`);
  }
  return { ...result, exitMs };
}

function report(result: ChildResult): void {
  console.log(`RESULT ${JSON.stringify(result)}`);
}

/** Child: heap growth per pending callback, library or raw, nothing ever answers. */
async function childMemory(raw: boolean, url: string, count: number, factory?: WsFactory) {
  const nc = await connectBench(url, factory);
  const endpoint = new Endpoint(natsTransport(nc), { timeout: 600_000, maxPending: count + 200 });
  const send = raw
    ? rawRequestLong(nc, SUBJECT.silent)
    : () => endpoint.request(Silent, BODY, { timeout: 600_000 });
  // Warm up the code path and open the inbox subscription before the baseline.
  const warm: Promise<unknown>[] = [];
  for (let i = 0; i < 100; i++) warm.push(send().catch(() => {}));
  const promises: Promise<unknown>[] = new Array(count);
  await nc.flush();
  gc();
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) promises[i] = send().catch(() => {});
  await nc.flush();
  await tick(50);
  gc();
  const after = Deno.memoryUsage().heapUsed;
  const pending = raw ? count : endpoint.pending - warm.length;
  await endpoint.close();
  await nc.close();
  await Promise.all([...warm, ...promises]);
  report({
    bytesPerPending: (after - before) / count,
    heapBefore: before,
    heapAfter: after,
    pending,
  });
}

function rawRequestLong(nc: NatsConnection, subject: string): Send {
  const data = encoder.encode(JSON.stringify(BODY));
  return () => nc.request(subject, data, { timeout: 600_000 });
}

/** Child: `count` requests to a silent subject, all timing out after `timeoutMs`. */
async function childTimeouts(
  raw: boolean,
  url: string,
  count: number,
  timeoutMs: number,
  factory?: WsFactory,
) {
  const timers = countTimers();
  const nc = await connectBench(url, factory);
  const endpoint = new Endpoint(natsTransport(nc), { maxPending: count + 1 });
  const data = encoder.encode(JSON.stringify(BODY));
  const send = raw
    ? () => nc.request(SUBJECT.silent, data, { timeout: timeoutMs })
    : () => endpoint.request(Silent, BODY, { timeout: timeoutMs });
  let timedOut = 0;
  let other = 0;
  const onError = (e: unknown) => {
    const name = (e as Error)?.name;
    const code = (e as { code?: string })?.code;
    if (name === "TimeoutError" || code === "TIMEOUT") timedOut++;
    else other++;
  };
  await nc.flush();
  const base = timers.live();
  const start = performance.now();
  const promises: Promise<unknown>[] = new Array(count);
  for (let i = 0; i < count; i++) promises[i] = send().then(() => other++, onError);
  const sentMs = performance.now() - start;
  const whilePending = timers.live().timeouts - base.timeouts;
  await Promise.all(promises);
  const wallMs = performance.now() - start;
  const pendingAfter = raw ? null : endpoint.pending;
  // Live timers once everything settled, the endpoint still open (nats.ws' ping
  // interval is one interval); then again after closing only the connection.
  const settled = timers.live();
  await nc.close();
  const closed = timers.live();
  report({
    wallMs,
    sentMs,
    timedOut,
    other,
    pendingAfter,
    timersWhilePending: whilePending,
    timersAfterSettle: settled.timeouts + settled.intervals - base.timeouts - base.intervals,
    timersLiveAfterClose: closed.timeouts + closed.intervals,
  });
  // No Deno.exit: the parent measures how long the process takes to end by itself.
}

// ---------------------------------------------------------------- machine & output

async function natsServerVersion(): Promise<string> {
  try {
    const out = await new Deno.Command(natsServerBin() ?? "nats-server", {
      args: ["--version"],
      stdout: "piped",
    })
      .output();
    return new TextDecoder().decode(out.stdout).trim().replace(/^nats-server:\s*/, "");
  } catch {
    return "unknown";
  }
}

async function packageVersion(name: string): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const spec: string = config.imports?.[name] ?? "";
  return spec.replace(/^npm:(@[^/]+\/)?[^@]+@/, "") || "unknown";
}

async function bundleWeight(): Promise<
  { esbuild: string; minifiedBytes: number; gzipBytes: number }
> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("bundle.ts", import.meta.url).pathname],
    cwd: ROOT.pathname,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("bench/bundle.ts failed");
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!);
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : String(n);

// deno-lint-ignore no-explicit-any
function timeoutCell(t: any): string {
  return `${fmt(t.timedOut)} · ${t.pendingAfter ?? "—"} · ${
    fmt(t.timersWhilePending)
  } / ${t.timersAfterSettle} / ${t.timersLiveAfterClose} · ${fmt(t.exitMs)}`;
}

// deno-lint-ignore no-explicit-any
function markdown(r: any): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(
    `Measured ${r.date} on ${m.os}/${m.arch}, ${m.cpus} CPUs, Deno ${m.deno} (V8 ${m.v8}), ` +
      `nats-server ${m.natsServer}, nats.ws ${m.natsWs}, valibot ${m.valibot}, ` +
      `WebSocket ${m.wsFactory}${r.settings.quick ? " — QUICK run, tiny counts" : ""}.` +
      (r.throughput
        ? ` Throughput: median of ${r.settings.rounds} rounds, library and raw alternating (ABAB).`
        : ""),
  );
  if (r.throughput) mainTable(r, lines);
  if (r.sweep) lines.push("", sweepMarkdown(r.sweep).trimEnd());
  return lines.join("\n") + "\n";
}

// deno-lint-ignore no-explicit-any
function mainTable(r: any, lines: string[]): void {
  lines.push("");
  lines.push("| measure | in flight | library | raw nats.ws | library/raw |");
  lines.push("| --- | ---: | ---: | ---: | ---: |");
  for (const t of r.throughput) {
    lines.push(
      `| ${t.case}, req/s | ${fmt(t.inflight)} | ${fmt(t.libraryRps)} | ${fmt(t.rawRps)} | ${
        fmt(t.ratio, 2)
      } |`,
    );
  }
  const l = r.latency;
  lines.push(
    `| sequential round trip p50, ms (${fmt(l.count)} each) | 1 | ${fmt(l.library.p50, 3)} | ${
      fmt(l.raw.p50, 3)
    } | ${fmt(l.ratioP50, 2)} |`,
  );
  lines.push(
    `| sequential round trip p99, ms | 1 | ${fmt(l.library.p99, 3)} | ${fmt(l.raw.p99, 3)} | ${
      fmt(l.ratioP99, 2)
    } |`,
  );
  const mem = r.memory;
  lines.push(
    `| heap per pending callback, bytes (${fmt(mem.count)} waiting) | ${fmt(mem.count)} | ${
      fmt(mem.library.bytesPerPending)
    } | ${fmt(mem.raw.bytesPerPending)} | ${fmt(mem.ratio, 2)} |`,
  );
  const to = r.timeouts;
  lines.push(
    `| ${fmt(to.count)} requests timing out (${to.timeoutMs} ms): wall time to all settled, ms | ${
      fmt(to.count)
    } | ${fmt(to.library.wallMs)} | ${fmt(to.raw.wallMs)} | ${fmt(to.ratio, 2)} |`,
  );
  lines.push(
    `| — timed out · \`pending\` after · timers alive while waiting / after settle / after \`nc.close()\` · process exit, ms | | ${
      timeoutCell(to.library)
    } | ${timeoutCell(to.raw)} | |`,
  );
  lines.push(
    `| in-memory transport, object round trips/s | ${fmt(r.memoryTransport.inflight)} | ${
      fmt(r.memoryTransport.rps)
    } | | |`,
  );
  lines.push(...gatherTableRows(r.gather));
  lines.push(
    `| weight: mod.ts minified (esbuild ${r.weight.esbuild}), bytes / gzipped | | ${
      fmt(r.weight.minifiedBytes)
    } / **${fmt(r.weight.gzipBytes)}** | | |`,
  );
}

// ---------------------------------------------------------------- main

async function main(args: Args): Promise<void> {
  const s = settingsFor(args);
  const began = performance.now();
  await using server = await startNatsServer();
  const sections = args.sweep ? {} : await mainSections(args, s, server.wsUrl);
  const levels = s.sweep.levels.join("/");
  console.error(
    `sweep: ${levels} in flight × ${s.sweep.bodies.join("/")} B × ${s.sweep.rounds} rounds`,
  );
  const sweepResult: SweepResult = await sweep(server.wsUrl, s.sweep);
  const result = {
    date: new Date().toISOString(),
    machine: {
      os: Deno.build.os,
      arch: Deno.build.arch,
      target: Deno.build.target,
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      typescript: Deno.version.typescript,
      natsServer: await natsServerVersion(),
      natsWs: await packageVersion("nats.ws"),
      valibot: await packageVersion("valibot"),
      wsFactory: args.wsFactory ?? "Deno's built-in WebSocket",
    },
    settings: { quick: args.quick, sweepOnly: args.sweep, ...s },
    ...sections,
    sweep: sweepResult,
    totalSeconds: (performance.now() - began) / 1000,
  };
  const md = markdown(result);
  const jsonPath = args.json;
  const mdPath = jsonPath.replace(/\.json$/, "") + ".md";
  for (const path of [jsonPath, mdPath]) {
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
    await Deno.mkdir(dir, { recursive: true });
  }
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(mdPath, md);
  console.log(md);
  console.error(`wrote ${jsonPath} and ${mdPath} (${fmt(result.totalSeconds, 1)} s)`);
}

/** Every section but the sweep, on connections through `--ws-factory` (or native). */
async function mainSections(args: Args, s: Settings, url: string) {
  const factory = args.wsFactory ? await loadWsFactory(args.wsFactory) : undefined;
  const rc = await connectBench(url, factory);
  const cc = await connectBench(url, factory);
  const fast = await connectBench(url, factory, { noAsyncTraces: true });
  const responder = startResponders(rc);
  await rc.flush();
  const endpoint = new Endpoint(natsTransport(cc), { timeout: 30_000, maxPending: 200_000 });
  try {
    const cases = casesFor(endpoint, cc, fast);
    console.error(`throughput: ${cases.length} cases × ${s.rounds} rounds`);
    const rows = await throughput(cases, s);
    console.error("sequential latency");
    const lat = await latency(cases[0]!, s);
    console.error("in-memory transport");
    const mem = await memoryTransportRate(s);
    console.error("scatter-gather");
    const gather = await gatherBench(url, {
      rounds: s.rounds,
      sampleMs: s.sampleMs,
      warmupMs: s.warmupMs,
      levels: args.quick ? [1, 10] : [1, 20],
    }, factory);
    console.error("memory per pending callback (subprocesses with --expose-gc)");
    const gcFlags = ["--v8-flags=--expose-gc"];
    const memRaw = await runChild("memory-raw", url, s.memoryCount, args.wsFactory, gcFlags);
    const memLib = await runChild("memory-lib", url, s.memoryCount, args.wsFactory, gcFlags);
    console.error("timeouts (subprocesses)");
    const toRaw = await runChild("timeouts-raw", url, s.timeoutCount, args.wsFactory);
    const toLib = await runChild("timeouts-lib", url, s.timeoutCount, args.wsFactory);
    console.error("weight (esbuild subprocess)");
    const weight = await bundleWeight();
    return {
      throughput: rows,
      latency: lat,
      memory: {
        count: s.memoryCount,
        library: memLib,
        raw: memRaw,
        ratio: Number(memLib.bytesPerPending) / Number(memRaw.bytesPerPending),
      },
      timeouts: {
        count: s.timeoutCount,
        timeoutMs: s.timeoutMs,
        library: toLib,
        raw: toRaw,
        ratio: Number(toLib.wallMs) / Number(toRaw.wallMs),
      },
      memoryTransport: mem,
      gather,
      weight,
    };
  } finally {
    await endpoint.close();
    await responder.close();
    await cc.close();
    await fast.close();
    await rc.close();
  }
}

async function child(args: Args): Promise<void> {
  const factory = args.wsFactory ? await loadWsFactory(args.wsFactory) : undefined;
  const url = args.url!;
  const count = args.count!;
  switch (args.child) {
    case "memory-raw":
      return await childMemory(true, url, count, factory);
    case "memory-lib":
      return await childMemory(false, url, count, factory);
    case "timeouts-raw":
      return await childTimeouts(true, url, count, settingsFor(args).timeoutMs, factory);
    case "timeouts-lib":
      return await childTimeouts(false, url, count, settingsFor(args).timeoutMs, factory);
    default:
      throw new Error(`unknown child ${args.child}`);
  }
}

if (import.meta.main) {
  const args = parseArgs(Deno.args);
  if (args.child) await child(args);
  else await main(args);
}
