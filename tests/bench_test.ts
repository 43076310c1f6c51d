/**
 * Smoke test of the benchmark: it runs end to end with tiny counts (`--quick`)
 * and writes every section with finite numbers. No timing is asserted: the
 * numbers are recorded by hand from a full `deno task bench`.
 */
import { assert, assertEquals } from "@std/assert";

const ROOT = new URL("../", import.meta.url).pathname;

function assertFinite(value: unknown, where: string): void {
  assert(
    typeof value === "number" && Number.isFinite(value),
    `${where} should be a finite number, got ${value}`,
  );
}

Deno.test("bench - the benchmark runs end to end with tiny counts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-test-" });
  try {
    const json = `${dir}/out.json`;
    const out = await runScript(["bench/bench.ts", "--quick", "--json", json]);
    assert(out.includes("| measure |"), "prints the Markdown table");
    assert((await Deno.readTextFile(`${dir}/out.md`)).includes("| measure |"), "writes the .md");

    const r = JSON.parse(await Deno.readTextFile(json));
    for (const key of ["date", "machine", "settings"]) assert(r[key], `has ${key}`);
    for (const key of ["os", "arch", "deno", "natsServer", "natsWs"]) {
      assert(typeof r.machine[key] === "string" && r.machine[key], `machine.${key}`);
    }
    assertFinite(r.machine.cpus, "machine.cpus");

    assertEquals(
      r.throughput.map((t: { case: string; inflight: number }) => `${t.case}@${t.inflight}`)
        .filter((name: string) => /^(object|int|enum)@/.test(name)).sort(),
      [
        "enum@1",
        "enum@100",
        "enum@1000",
        "int@1",
        "int@100",
        "int@1000",
        "object@1",
        "object@100",
        "object@1000",
      ],
    );
    assertEquals(r.gather.map((g: { inflight: number }) => g.inflight), [1, 10]);
    for (const g of r.gather) {
      for (const key of ["libraryGps", "rawGps", "ratio"]) {
        assertFinite(g[key], `gather@${g.inflight}.${key}`);
      }
      assertEquals(g.errors, 0, `gather@${g.inflight} had failed gathers`);
    }
    assert(out.includes("gathers of 10 object replies"), "the gather row is in the table");
    for (const t of r.throughput) {
      for (const key of ["libraryRps", "rawRps", "ratio"]) {
        assertFinite(t[key], `throughput ${t.case}@${t.inflight}.${key}`);
      }
      assertEquals(t.errors, 0, `throughput ${t.case}@${t.inflight} had failed requests`);
    }
    for (const side of ["library", "raw"]) {
      for (const key of ["p50", "p99", "mean"]) {
        assertFinite(r.latency[side][key], `latency.${side}.${key}`);
      }
      assertFinite(r.memory[side].bytesPerPending, `memory.${side}.bytesPerPending`);
      assertFinite(r.timeouts[side].wallMs, `timeouts.${side}.wallMs`);
      assertEquals(r.timeouts[side].timedOut, r.timeouts.count, `every ${side} request timed out`);
      assertEquals(r.timeouts[side].timersAfterSettle, 0, `no ${side} timer left after settle`);
      assertEquals(r.timeouts[side].timersLiveAfterClose, 0, `no ${side} timer left after close`);
    }
    assertFinite(r.latency.ratioP50, "latency.ratioP50");
    assertFinite(r.memory.ratio, "memory.ratio");
    assertEquals(r.memory.library.pending, r.memory.count, "every library request was pending");
    assertEquals(r.timeouts.library.pendingAfter, 0, "pending back to 0");
    assertFinite(r.timeouts.ratio, "timeouts.ratio");
    assertFinite(r.memoryTransport.rps, "memoryTransport.rps");
    assertFinite(r.weight.minifiedBytes, "weight.minifiedBytes");
    assertFinite(r.weight.gzipBytes, "weight.gzipBytes");
    // A size budget (esbuild is pinned, so the number is deterministic): the bundle may not
    // grow past 13 KiB gzipped without someone deciding so here. (The design's 8 KiB held until
    // the hardening; docs/weight.md says what it, the endpoint's split, requestMany and the
    // failover work cost.)
    assert(r.weight.gzipBytes <= 13 * 1024, `mod.ts is ${r.weight.gzipBytes} bytes gzipped`);

    // The tiny sweep: 1 and 10 in flight × 100 B / 4 KB, four clients, the targets computed.
    assert(out.includes("| body | in flight | native raw |"), "prints the sweep table");
    assertEquals(
      r.sweep.rows.map((row: { body: number; inflight: number }) => `${row.body}@${row.inflight}`),
      ["100@1", "100@10", "4096@1", "4096@10"],
    );
    for (const row of r.sweep.rows) {
      for (const key of ["nativeRaw", "nativeLib", "wsFactoryRaw", "wsFactoryLib"]) {
        assertFinite(row[key], `sweep ${row.body}@${row.inflight}.${key}`);
        assert(row[key] > 0, `sweep ${row.body}@${row.inflight}.${key} completed requests`);
      }
      assertEquals(row.errors, 0, `sweep ${row.body}@${row.inflight} had failed requests`);
    }
    assertEquals(
      r.sweep.checks.map((c: { id: string; column: string; body: number | null }) =>
        `${c.id}:${c.column}:${c.body}`
      ).sort(),
      [
        "a:wsFactoryLib:100",
        "a:wsFactoryLib:4096",
        "a:wsFactoryRaw:100",
        "a:wsFactoryRaw:4096",
        "b:wsFactoryLib:100",
        "b:wsFactoryLib:4096",
        "b:wsFactoryRaw:100",
        "b:wsFactoryRaw:4096",
        "c:wsFactoryLib:null",
        "c:wsFactoryRaw:null",
      ],
    );
    for (const c of r.sweep.checks) {
      assertFinite(c.ratio, `sweep check ${c.id} ${c.column} ratio`);
      assertEquals(typeof c.pass, "boolean", `sweep check ${c.id} ${c.column} pass`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bench - stripMessages deletes long string texts and keeps the code valid", async () => {
  const { stripMessages } = await import("../bench/weight.ts");
  const code =
    'let a="short",b="a message longer than twelve",c=`no reply to the ${s} request within ${t} ms`;';
  const stripped = stripMessages(code);
  assertEquals(stripped, 'let a="short",b="",c=`${s}${t} ms`;');
  new Function(stripped); // still parses
});

Deno.test("bench - the weight report measures mod.ts like bench/bundle.ts", async () => {
  const run = async (script: string, args: string[] = []) => {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    return JSON.parse(new TextDecoder().decode(stdout));
  };
  const [report, bundled] = await Promise.all([
    run("bench/weight.ts", ["--json"]),
    run("bench/bundle.ts"),
  ]);
  const [mod, app, noMemory] = report.rows;
  assertEquals(mod.size, { minified: bundled.minifiedBytes, gzip: bundled.gzipBytes });
  for (const row of report.rows) {
    assert(row.withoutMessages.gzip < row.size.gzip, `${row.bundle}: stripping shrinks it`);
  }
  assert(app.size.gzip < mod.size.gzip && noMemory.size.gzip < mod.size.gzip);
  const files = report.files.map((f: { file: string }) => f.file);
  assert(files.includes("src/endpoint.ts") && files.includes("src/transports/memory.ts"));
  const sum = report.files.reduce((n: number, f: { minified: number }) => n + f.minified, 0);
  assert(sum <= mod.size.minified, "the files add up to no more than the bundle");
  assert(report.natsWs.gzip > mod.size.gzip, "nats.ws was bundled");
});

/** Runs a benchmark script (`deno run -A …args`) to a successful end; returns what it printed. */
async function runScript(args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(stdout);
  assertEquals(code, 0, `${out}\n${new TextDecoder().decode(stderr)}`);
  return out;
}

/** The JSON report a benchmark script prints before its table. */
// deno-lint-ignore no-explicit-any
function reportOf(out: string): Record<string, any> {
  return JSON.parse(out.slice(0, out.indexOf("\n}\n") + 2));
}

Deno.test("bench - the sizing script measures its inputs with a few connections", async () => {
  const out = await runScript([
    "--v8-flags=--expose-gc",
    "bench/sizing.ts",
    "--connections",
    "20",
  ]);
  const r = reportOf(out);
  assertEquals([r.connections, r.pendingPerEndpoint, r.subscriptionsPerConnection], [20, 3, 1]);
  for (
    const key of [
      "serverBytesPerConnection",
      "serverBytesPerSubscription",
      "clientBytesPerConnection",
    ]
  ) {
    assertFinite(r[key], key);
  }
  assert(out.includes("| server resident memory per connection"), "prints the table");
});

Deno.test("bench - the durable benchmark measures round trips, throughput and storage", async () => {
  const out = await runScript(["bench/durable.ts", "--quick"]);
  const r = reportOf(out);
  for (
    const value of [
      r.latency.plain.p50,
      r.latency.durable.p50,
      r.throughput.ratio,
      r.storage.bytesPerWaitingRequest,
      r.storage.bytesPerKeptReply,
    ]
  ) assertFinite(value, "a durable measure");
  assert(out.includes("| object requests at 100 in flight"), "prints the table");
});

Deno.test("bench - the tracing benchmark compares instrumented endpoints with one that is not", async () => {
  const out = await runScript(["bench/otel.ts", "--quick"]);
  const r = reportOf(out);
  for (const value of [r.noSdk.a, r.noSdk.b, r.noSdk.ratio, r.withSdk.ratio]) {
    assertFinite(value, "a tracing measure");
  }
  assert(out.includes("no SDK registered"), "prints the table");
});

Deno.test("bench - the edge benchmark compares a connection per request with the Durable Object", async () => {
  const out = await runScript(["bench/edge.ts", "--quick"]);
  const r = reportOf(out);
  for (const way of [r.perRequest, r.object, r.noNats]) {
    for (const level of [way.sequential, way.concurrent]) {
      for (const value of [level.p50, level.p99, level.rps]) assertFinite(value, "an edge measure");
    }
    assertEquals(way.errors, 0);
  }
  assert(r.connections.perRequest > 0, "each request opened a connection");
  assertEquals(r.connections.object, 0, "the object's connection was open before the run");
  assert(out.includes("| one at a time: p50, ms"), "prints the table");
});
