/**
 * Runs a page in a real browser for tests: serves the HTML and the bundle (from
 * `bundle()` in ./bundle.ts) from 127.0.0.1 on an ephemeral port, and drives Chromium
 * through playwright-core.
 *
 * Every process, server and page it creates is awaited or closed by its `close()` (or
 * `await using`), so tests using it pass Deno's op and resource sanitizers.
 *
 * @module
 */

import { type Browser, chromium, type Page } from "../deps/playwright.ts";

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
