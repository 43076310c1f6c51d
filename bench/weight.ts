/**
 * What the library's weight is made of, and how far each possible cut would
 * take it: `mod.ts` bundled and minified as `bench/bundle.ts` does
 * (`BUNDLE_OPTIONS`: esbuild, nats.ws and valibot external), then gzipped:
 *
 * - per source file (esbuild's bytes in the minified output);
 * - for an app that imports only `Endpoint`, `natsTransport`, `defineRequest`
 *   and the three response kinds (what tree-shaking leaves);
 * - without `memoryTransport`;
 * - with `@seed/callbacks/durable` on top;
 * - with `@seed/callbacks/otel` on top (`@opentelemetry/api` external);
 * - with `@seed/callbacks/micro` on top (`@valibot/to-json-schema` external), what an app
 *   that makes micro services adds;
 * - with `@seed/callbacks/cloudflare` on top: a Worker and its callbacks Durable Object (the
 *   object's nats.ws `connect` external, as everywhere here);
 * - each of those with every string literal and template text over 12
 *   characters deleted (what the code alone weighs, without its messages);
 * - nats.ws itself (`connect` and `headers`), for scale.
 *
 * `deno run -A bench/weight.ts` prints a Markdown table; `--json` prints JSON.
 *
 * @module
 */

import * as esbuild from "../tests/deps/esbuild.ts";
import { parse } from "../tests/deps/acorn.ts";
import { BUNDLE_OPTIONS, gzipBytes } from "./bundle.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** A bundle's size, minified and gzipped. */
interface Size {
  minified: number;
  gzip: number;
}

async function sizeOf(code: string): Promise<Size> {
  return { minified: new TextEncoder().encode(code).length, gzip: await gzipBytes(code) };
}

/** A source file's share of a bundle. */
interface FileShare {
  file: string;
  minified: number;
}

/** Bundles `contents` (a module in the repository root): its code, and its files, largest first. */
async function bundle(
  contents: string,
  options: esbuild.BuildOptions = {},
): Promise<{ code: string; files: FileShare[] }> {
  const result = await esbuild.build({
    ...BUNDLE_OPTIONS,
    ...options,
    stdin: { contents, resolveDir: ROOT, loader: "ts", sourcefile: "entry.ts" },
    absWorkingDir: ROOT,
    metafile: true,
  });
  const output = Object.values(result.metafile!.outputs)[0]!;
  const files = Object.entries(output.inputs).filter(([, input]) => input.bytesInOutput > 0)
    .map(([file, input]) => ({ file, minified: input.bytesInOutput }))
    .sort((a, b) => b.minified - a.minified);
  return { code: new TextDecoder().decode(result.outputFiles![0]!.contents), files };
}

/** Deletes the text of every string literal and template part longer than 12 characters. */
export function stripMessages(code: string): string {
  const cuts: [number, number][] = [];
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== "object") return;
    if (Array.isArray(node)) {
      for (const child of node) visit(child);
      return;
    }
    const n = node as { type?: string; start: number; end: number; value?: unknown };
    if (n.type === "Literal" && typeof n.value === "string" && n.value.length > 12) {
      cuts.push([n.start + 1, n.end - 1]);
    } else if (n.type === "TemplateElement") {
      const raw = (n.value as { raw: string }).raw;
      if (raw.length > 12) cuts.push([n.start, n.end]);
    }
    for (const child of Object.values(node)) visit(child);
  };
  visit(parse(code, { ecmaVersion: "latest", sourceType: "module" }));
  cuts.sort((a, b) => b[0] - a[0]);
  for (const [start, end] of cuts) code = code.slice(0, start) + code.slice(end);
  return code;
}

/** One row of the report. */
export interface WeightRow {
  bundle: string;
  size: Size;
  withoutMessages: Size;
}

/** The whole report. */
export interface WeightReport {
  esbuild: string;
  rows: WeightRow[];
  files: FileShare[];
  natsWs: Size;
}

/** Measures everything the module doc lists. */
export async function measureWeight(): Promise<WeightReport> {
  const mod = await Deno.readTextFile(`${ROOT}mod.ts`);
  const entries: [string, string, esbuild.BuildOptions?][] = [
    ["mod.ts", `export * from "./mod.ts";`],
    [
      "an app's import (Endpoint, natsTransport, defineRequest, int, enumOf, object)",
      `export { defineRequest, Endpoint, enumOf, int, natsTransport, object } from "./mod.ts";`,
    ],
    [
      "mod.ts without memoryTransport",
      mod.split("\n").filter((line) => !line.includes("memoryTransport")).join("\n"),
    ],
    ["mod.ts and durable.ts", `export * from "./mod.ts";\nexport * from "./durable.ts";`],
    [
      "mod.ts and otel.ts (@opentelemetry/api external)",
      `export * from "./mod.ts";\nexport * from "./otel.ts";`,
      { external: [...BUNDLE_OPTIONS.external ?? [], "@opentelemetry/api"] },
    ],
    [
      "mod.ts and micro.ts (@valibot/to-json-schema external)",
      `export * from "./mod.ts";\nexport * from "./micro.ts";`,
      { external: [...BUNDLE_OPTIONS.external ?? [], "@valibot/to-json-schema"] },
    ],
    ["mod.ts and cloudflare.ts", `export * from "./mod.ts";\nexport * from "./cloudflare.ts";`],
  ];
  const rows: WeightRow[] = [];
  let files: FileShare[] = [];
  for (const [name, contents, options] of entries) {
    const { code, files: shares } = await bundle(contents, options);
    if (name === "mod.ts") files = shares;
    rows.push({
      bundle: name,
      size: await sizeOf(code),
      withoutMessages: await sizeOf(stripMessages(code)),
    });
  }
  // nats.ws's ESM build mentions node's `crypto` in a branch browsers never take.
  const nats = await bundle(`export { connect, headers } from "nats.ws";`, {
    platform: "browser",
    external: ["crypto"],
    plugins: [npmResolver("nats.ws")],
  });
  return { esbuild: esbuild.version, rows, files, natsWs: await sizeOf(nats.code) };
}

/**
 * Resolves one npm package through Deno's own resolution (its npm cache): `import.meta.resolve`
 * gives the entry file once the package is loaded, `npm:name@version` before.
 */
function npmResolver(name: string): esbuild.Plugin {
  return {
    name: "deno-npm",
    setup(build) {
      build.onResolve({ filter: new RegExp(`^${name}$`) }, async () => {
        await import(name);
        return { path: decodeURIComponent(new URL(import.meta.resolve(name)).pathname) };
      });
    },
  };
}

function formatSize(size: Size): string {
  return `${size.minified.toLocaleString("en-US")} / **${size.gzip.toLocaleString("en-US")}**`;
}

/** The report as Markdown. */
export function weightTable(report: WeightReport): string {
  const lines = [
    `Weight, bytes minified / gzipped (esbuild ${report.esbuild}, nats.ws and valibot external):`,
    "",
    "| bundle | as shipped | string texts over 12 characters deleted |",
    "| --- | ---: | ---: |",
    ...report.rows.map((row) =>
      `| ${row.bundle} | ${formatSize(row.size)} | ${formatSize(row.withoutMessages)} |`
    ),
    `| nats.ws (\`connect\`, \`headers\`), for scale | ${formatSize(report.natsWs)} | |`,
    "",
    "| file in mod.ts | minified bytes |",
    "| --- | ---: |",
    ...report.files.map((f) => `| ${f.file} | ${f.minified.toLocaleString("en-US")} |`),
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  try {
    const report = await measureWeight();
    console.log(Deno.args.includes("--json") ? JSON.stringify(report) : weightTable(report));
  } finally {
    await esbuild.stop();
  }
}
