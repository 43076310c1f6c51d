/**
 * Bundles and minifies `mod.ts` with esbuild (nats.ws and valibot external)
 * and prints `{ "esbuild": version, "minifiedBytes": n, "gzipBytes": n }`.
 * Run by `bench/bench.ts` as a subprocess: `deno run -A bench/bundle.ts`.
 *
 * @module
 */

import * as esbuild from "esbuild";

const entry = new URL("../mod.ts", import.meta.url).pathname;
try {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    external: ["nats.ws", "valibot"],
    write: false,
    logLevel: "error",
  });
  const code = result.outputFiles[0]!.contents;
  const gzipped = await new Response(
    new Blob([code as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer();
  console.log(JSON.stringify({
    esbuild: esbuild.version,
    minifiedBytes: code.length,
    gzipBytes: gzipped.byteLength,
  }));
} finally {
  await esbuild.stop();
}
