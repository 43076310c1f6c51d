/**
 * Bundles a TypeScript entry with esbuild for tests (the browser page, the Worker, the Node
 * smoke test), resolving bare imports (`nats.ws`, `valibot`) through deno.json's import map into
 * Deno's npm cache.
 *
 * esbuild runs in a `deno run` of this module, awaited to its exit: `esbuild.stop()` kills
 * esbuild's service process without waiting for it to exit (the npm package's `stop` calls
 * `child.kill()` and resolves at once), which Deno's sanitizers report as a leaked child
 * process and a pending "wait for a subprocess" op.
 *
 * @module
 */

import * as esbuild from "../deps/esbuild.ts";

/** Options for {@linkcode bundle}. */
export interface BundleOptions {
  platform: "browser" | "node" | "neutral";
  /** Defaults to `"esm"`. */
  format?: "esm" | "cjs" | "iife";
  /** Defaults to `"es2022"`. */
  target?: string;
  /** Imports left to the runtime; `crypto` always is (see {@linkcode ALWAYS_EXTERNAL}). */
  external?: string[];
  minify?: boolean;
}

/**
 * nats.ws (tweetnacl) only `require`s `crypto` where `globalThis.crypto` is missing; browsers,
 * Workers and Node 20+ have it.
 */
const ALWAYS_EXTERNAL = ["crypto"];

/** Bundles `entry` (a path or a file URL) with every import not external; returns the text. */
export async function bundle(entry: string | URL, options: BundleOptions): Promise<string> {
  const entryPath = entry instanceof URL || entry.startsWith("file:")
    ? decodeURIComponent(new URL(entry).pathname)
    : entry;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--quiet",
      "--config",
      decodeURIComponent(new URL("../../deno.json", import.meta.url).pathname),
      decodeURIComponent(new URL(import.meta.url).pathname),
      entryPath,
      JSON.stringify(options),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `bundling ${entryPath} failed (code ${out.code}):\n${dec.decode(out.stderr)}`.trim(),
    );
  }
  return dec.decode(out.stdout);
}

/**
 * The directory Deno keeps an npm package in that deno.json maps, e.g. to symlink into a
 * node_modules for Node. `import.meta.resolve` gives `npm:name@version` before the package is
 * loaded (in this process), and the file URL of its entry module after.
 */
export async function npmPackageDir(name: string): Promise<string> {
  const resolved = import.meta.resolve(name);
  const npm = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)@([^/]+)$/.exec(resolved);
  if (npm) {
    const dir = `${await denoNpmCache()}/registry.npmjs.org/${npm[1]}/${npm[2]}`;
    await Deno.stat(`${dir}/package.json`);
    return dir;
  }
  if (resolved.startsWith("file:")) {
    // walk up from the entry module to the package.json that names the package
    let dir = decodeURIComponent(new URL(".", resolved).pathname).replace(/\/$/, "");
    while (dir.length > 1) {
      try {
        const meta = JSON.parse(await Deno.readTextFile(`${dir}/package.json`)) as {
          name?: string;
        };
        if (meta.name === name) return dir;
      } catch {
        // no package.json here
      }
      dir = dir.slice(0, dir.lastIndexOf("/"));
    }
  }
  throw new Error(`cannot find the npm package ${name} (it resolves to ${resolved})`);
}

async function denoNpmCache(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdin: "null",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`deno info --json failed (code ${out.code})`);
  return (JSON.parse(new TextDecoder().decode(out.stdout)) as { npmCache: string }).npmCache;
}

/**
 * esbuild plugin resolving bare imports the way Deno does, through deno.json's import map into
 * Deno's npm cache: esbuild knows neither. Deno's `import.meta.resolve` gives the package's
 * entry file only once the package is loaded, so the package is imported first (here, in the
 * bundling process).
 */
const denoNpm: esbuild.Plugin = {
  name: "deno-npm",
  setup(build) {
    const external = new Set(build.initialOptions.external ?? []);
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (external.has(args.path)) return undefined;
      await import(args.path);
      const resolved = import.meta.resolve(args.path);
      if (!resolved.startsWith("file:")) {
        return { errors: [{ text: `${args.path} resolves to ${resolved}, not to a file` }] };
      }
      return { path: decodeURIComponent(new URL(resolved).pathname) };
    });
  },
};

/** The bundling itself, run by {@linkcode bundle} in a child process; writes to stdout. */
async function build(entryPath: string, options: BundleOptions): Promise<void> {
  try {
    const result = await esbuild.build({
      entryPoints: [entryPath],
      bundle: true,
      format: options.format ?? "esm",
      platform: options.platform,
      target: options.target ?? "es2022",
      minify: options.minify ?? false,
      write: false,
      external: [...ALWAYS_EXTERNAL, ...options.external ?? []],
      plugins: [denoNpm],
      logLevel: "error",
    });
    const [file] = result.outputFiles;
    if (!file) throw new Error(`esbuild wrote no output for ${entryPath}`);
    for (let written = 0; written < file.contents.length;) {
      written += await Deno.stdout.write(file.contents.subarray(written));
    }
  } finally {
    await esbuild.stop();
  }
}

if (import.meta.main) {
  const [entryPath, options] = Deno.args;
  if (!entryPath || !options) {
    throw new Error("usage: bundle.ts <entry.ts> <options json>  (writes the bundle to stdout)");
  }
  await build(entryPath, JSON.parse(options) as BundleOptions);
}
