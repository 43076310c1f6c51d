/**
 * Bundles and minifies `mod.ts` with esbuild (nats.ws and valibot external)
 * and prints `{ "esbuild": version, "minifiedBytes": n, "gzipBytes": n }`.
 * Run by `bench/bench.ts` as a subprocess: `deno run -A bench/bundle.ts`.
 * `bench/weight.ts` bundles with the same options.
 *
 * @module
 */

import * as esbuild from "../tests/deps/esbuild.ts";

/** How the library's weight is measured: minified ESM, its two dependencies left out. */
export const BUNDLE_OPTIONS = {
  bundle: true,
  minify: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  external: ["nats.ws", "valibot"],
  write: false,
  logLevel: "error",
} as const satisfies esbuild.BuildOptions;

/** The gzipped size of `code`, in bytes. */
export async function gzipBytes(code: string | Uint8Array<ArrayBuffer>): Promise<number> {
  const stream = new Blob([code]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

if (import.meta.main) {
  try {
    const result = await esbuild.build({
      ...BUNDLE_OPTIONS,
      entryPoints: [new URL("../mod.ts", import.meta.url).pathname],
    });
    const code = result.outputFiles[0]!.contents as Uint8Array<ArrayBuffer>;
    console.log(JSON.stringify({
      esbuild: esbuild.version,
      minifiedBytes: code.length,
      gzipBytes: await gzipBytes(code),
    }));
  } finally {
    await esbuild.stop();
  }
}
