/**
 * Runs a page in a real browser for tests: bundles the page's TypeScript with esbuild (format
 * esm, platform browser, every import included: the library, nats.ws, valibot), serves the
 * HTML and the bundle from 127.0.0.1 on an ephemeral port, and drives Chromium through
 * playwright-core.
 *
 * Every process, server and page it creates is awaited or closed by its `close()` (or
 * `await using`), so tests using it pass Deno's op and resource sanitizers.
 *
 * @module
 */

import * as esbuild from "esbuild";
import { type Browser, chromium, type Page } from "playwright-core";

/** Message of the error thrown when the Chromium binary cannot be found. */
export const CHROMIUM_NOT_FOUND: string =
  "chromium not found: install it with: apt-get install -y --no-install-recommends chromium " +
  "(or set CHROMIUM_BIN to a Chromium binary)";

const HOST = "127.0.0.1";
const DEFAULT_CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
];

/**
 * Bundles a page's entry module into one ES module for the browser and returns its text.
 *
 * esbuild runs in a `deno run` of this module, awaited to its exit: `esbuild.stop()` kills
 * esbuild's service process without waiting for it to exit (the npm package's `stop` calls
 * `child.kill()` and resolves at once), which Deno's sanitizers report as a leaked child
 * process and a pending "wait for a subprocess" op.
 */
export async function bundlePage(entry: string | URL): Promise<string> {
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
 * esbuild plugin resolving bare imports (`nats.ws`, `valibot`) the way Deno does, through
 * deno.json's import map into Deno's npm cache: esbuild knows neither. Deno's
 * `import.meta.resolve` gives the package's entry file only once the package is loaded, so the
 * package is imported first (here, in the bundling process).
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

/** The bundling itself, run by {@linkcode bundlePage} in a child process; writes to stdout. */
async function bundle(entryPath: string): Promise<void> {
  try {
    const result = await esbuild.build({
      entryPoints: [entryPath],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
      // nats.ws (tweetnacl) only `require`s crypto where `globalThis.crypto` is missing;
      // browsers have it
      external: ["crypto"],
      plugins: [denoNpm],
      logLevel: "error",
    });
    const [file] = result.outputFiles;
    if (!file) throw new Error(`esbuild wrote no output for ${entryPath}`);
    await Deno.stdout.write(file.contents);
  } finally {
    await esbuild.stop();
  }
}

if (import.meta.main) {
  const [entryPath] = Deno.args;
  if (!entryPath) throw new Error("usage: browser.ts <entry.ts>  (writes the bundle to stdout)");
  await bundle(entryPath);
}

/** What {@linkcode servePage} serves. */
export interface PageFiles {
  /** served at `/` and `/index.html` */
  html: string;
  /** the bundled script, served at `/app.js` */
  script: string;
}

/** An HTTP server started by {@linkcode servePage}. */
export interface PageServer extends AsyncDisposable {
  /** `http://127.0.0.1:<port>/` */
  readonly url: string;
  /** Shuts the server down and awaits it; idempotent. */
  close(): Promise<void>;
}

/** Serves a page's HTML and its script from 127.0.0.1 on an ephemeral port. */
export function servePage(files: PageFiles): PageServer {
  const routes: Record<string, { body: string; type: string }> = {
    "/": { body: files.html, type: "text/html; charset=utf-8" },
    "/index.html": { body: files.html, type: "text/html; charset=utf-8" },
    "/app.js": { body: files.script, type: "text/javascript; charset=utf-8" },
  };
  const server = Deno.serve({ hostname: HOST, port: 0, onListen: () => {} }, (req) => {
    const route = routes[new URL(req.url).pathname];
    return route
      ? new Response(route.body, { headers: { "content-type": route.type } })
      : new Response("not found", { status: 404 });
  });
  let closed: Promise<void> | undefined;
  const close = () => closed ??= server.shutdown().then(() => server.finished);
  return {
    url: `http://${HOST}:${server.addr.port}/`,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A Chromium started by {@linkcode launchChromium}. */
export interface Chromium extends AsyncDisposable {
  readonly browser: Browser;
  /** Closes every page and the browser, and awaits its exit; idempotent. */
  close(): Promise<void>;
}

/**
 * Launches headless Chromium (`CHROMIUM_BIN`, else /usr/bin/chromium) through playwright-core.
 * Throws {@linkcode CHROMIUM_NOT_FOUND} when the binary is missing.
 */
export async function launchChromium(): Promise<Chromium> {
  const executablePath = Deno.env.get("CHROMIUM_BIN") ?? DEFAULT_CHROMIUM;
  try {
    await Deno.stat(executablePath);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new Error(CHROMIUM_NOT_FOUND, { cause: err });
    throw err;
  }
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  let closed: Promise<void> | undefined;
  const close = () => closed ??= browser.close();
  return { browser, close, [Symbol.asyncDispose]: close };
}

/** A page opened by {@linkcode openPage}. */
export interface OpenedPage extends AsyncDisposable {
  readonly page: Page;
  /** console errors and uncaught exceptions the page reported so far */
  readonly errors: readonly string[];
  /** Closes the page; idempotent. */
  close(): Promise<void>;
}

/** Opens `url` in a new page, recording the page's console errors and uncaught exceptions. */
export async function openPage(browser: Browser, url: string): Promise<OpenedPage> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console.error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`uncaught: ${err.name}: ${err.message}`));
  let closed: Promise<void> | undefined;
  const close = () => closed ??= page.close();
  try {
    await page.goto(url);
  } catch (err) {
    await close();
    throw err;
  }
  return { page, errors, close, [Symbol.asyncDispose]: close };
}
