/**
 * The layout's rules, checked on the source: `src/` uses web standards only,
 * and each dependency is imported by the one file that needs it.
 */

import { assertEquals } from "@std/assert";

const ROOT = new URL("../", import.meta.url);

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory) yield* sources(`${path}/`);
    else if (path.endsWith(".ts")) yield path;
  }
}

/** Every library file (what a user downloads), with its text without comments. */
async function library(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const roots = [
    "mod.ts",
    "testing.ts",
    "deno.ts",
    "micro.ts",
    "durable.ts",
    "otel.ts",
    "cloudflare.ts",
  ];
  const all = [...roots];
  for await (const path of sources("src/")) all.push(path);
  for await (const path of sources("deno/")) all.push(path);
  for (const path of all) {
    const text = await Deno.readTextFile(new URL(path, ROOT));
    // Doc comments hold examples that import anything: only code counts.
    files.set(path, text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, ""));
  }
  return files;
}

/** The files whose code imports `specifier` (exactly, or a path under it). */
function importers(files: Map<string, string>, specifier: string): string[] {
  const pattern = new RegExp(
    `from\\s+"(npm:)?${specifier.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}(@[^"]*)?(/[^"]*)?"`,
  );
  return [...files].filter(([, code]) => pattern.test(code)).map(([path]) => path).sort();
}

Deno.test("layout - src/ uses web standards only: no Deno namespace, no node: modules", async () => {
  const offenders = [...await library()]
    .filter(([path, code]) =>
      path.startsWith("src/") && (/\bDeno\./.test(code) || /["']node:/.test(code))
    )
    .map(([path]) => path);
  assertEquals(offenders, []);
});

Deno.test("layout - each dependency is imported by the one file that needs it", async () => {
  const files = await library();
  assertEquals(importers(files, "nats.ws"), ["src/transports/nats.ts"]);
  assertEquals(importers(files, "@nats-io"), []);
  assertEquals(importers(files, "ws"), ["deno/ws_factory.ts"]);
  assertEquals(importers(files, "@valibot/to-json-schema"), ["micro.ts"]);
  assertEquals(importers(files, "@opentelemetry/api"), ["otel.ts"]);
  // The core does not reach into an add-on entry point.
  const core = [...files].filter(([path]) =>
    !["micro.ts", "durable.ts", "otel.ts", "cloudflare.ts"].includes(path) &&
    !path.startsWith("src/micro/") && !path.startsWith("src/durable/") &&
    !path.startsWith("src/cloudflare/")
  );
  assertEquals(
    core.filter(([, code]) => /from\s+"[./]*\/?(src\/)?(micro|durable|otel|cloudflare)/.test(code)),
    [],
  );
});
