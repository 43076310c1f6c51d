/**
 * Runs a Cloudflare Worker locally for tests: bundles its TypeScript entry with esbuild
 * (everything included: nats.ws, valibot, the library), writes a workerd config, starts
 * `workerd serve` from the `workerd` npm package on 127.0.0.1 with an ephemeral port (workerd
 * reports the port it bound through `--control-fd`), and waits until it answers HTTP.
 *
 * Every process, pipe and temp file it creates is awaited, closed or removed by
 * {@linkcode Workerd.stop}, so tests using it pass Deno's op and resource sanitizers.
 *
 * @module
 */

import * as esbuild from "esbuild";
import * as workerdPackage from "workerd";

/** Options for {@linkcode startWorkerd}. */
export interface WorkerdOptions {
  /** The bundled module's text, from {@linkcode bundleWorker}. */
  script: string;
  /** Text bindings (`env.NAME`). */
  bindings?: Record<string, string>;
  /** Defaults to the workerd package's own (the newest date it supports). */
  compatibilityDate?: string;
  /** Compatibility flags. */
  compatibilityFlags?: string[];
  /** The workerd binary; defaults to env `WORKERD_BIN`, then the `workerd` npm package's. */
  bin?: string;
}

/** A running workerd started by {@linkcode startWorkerd}. */
export interface Workerd extends AsyncDisposable {
  /** Process id. */
  readonly pid: number;
  /** The HTTP port on 127.0.0.1. */
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Temp dir holding the bundle and the config; removed by `stop()`. */
  readonly dir: string;
  /** What workerd wrote to stderr so far (uncaught exceptions, `console.*`). */
  readonly log: string;
  /** SIGTERM (SIGKILL after a grace period), await exit and the pipes, remove the dir; idempotent. */
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const MAX_LOG_CHARS = 64 * 1024;

/** The workerd npm package's CommonJS exports, as Deno exposes them. */
interface WorkerdPackage {
  /** the binary's path */
  default: string;
  compatibilityDate: string;
  version: string;
}

const pkg = (workerdPackage as unknown as { default: WorkerdPackage }).default;

/** The workerd package's version and compatibility date. */
export const workerdVersion: { version: string; compatibilityDate: string } = {
  version: pkg.version,
  compatibilityDate: pkg.compatibilityDate,
};

/**
 * The directory Deno keeps an npm package in (esbuild does not know Deno's npm cache).
 * `import.meta.resolve` gives `npm:name@version` (deno.json's import map) before the package is
 * loaded, and the file URL of its entry module after.
 */
async function npmPackageDir(name: string): Promise<string> {
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
 * Bundles a Worker entry into one ES module and returns its text. esbuild runs in a `deno run`
 * of this module, awaited to its exit: `esbuild.stop()` kills esbuild's service process without
 * waiting for it, which Deno's sanitizers report as a leaked child process.
 */
export async function bundleWorker(entry: string | URL): Promise<string> {
  const entryPath = entry instanceof URL || entry.startsWith("file:")
    ? decodeURIComponent(new URL(entry).pathname)
    : entry;
  const dir = await Deno.makeTempDir({ prefix: "worker-bundle-" });
  try {
    const outfile = `${dir}/worker.js`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        "--config",
        decodeURIComponent(new URL("../../deno.json", import.meta.url).pathname),
        decodeURIComponent(new URL(import.meta.url).pathname),
        entryPath,
        outfile,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const dec = new TextDecoder();
      throw new Error(
        `bundling ${entryPath} failed (code ${out.code}):\n` +
          `${dec.decode(out.stdout)}${dec.decode(out.stderr)}`.trim(),
      );
    }
    return await Deno.readTextFile(outfile);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * The bundling itself (run by {@linkcode bundleWorker} in a child process): esbuild, format
 * esm, platform browser, every import included. The bare imports the entry reaches (`nats.ws`,
 * `valibot`) resolve to Deno's npm cache through a node_modules of symlinks next to `outfile`
 * (`nodePaths`). `crypto` stays external: nats.ws (tweetnacl) only `require`s it where
 * `globalThis.crypto` is missing, and Workers have it.
 */
async function bundle(
  entryPath: string,
  outfile: string,
  packages: readonly string[] = ["nats.ws", "valibot"],
): Promise<void> {
  const nodeModules = `${outfile.slice(0, outfile.lastIndexOf("/"))}/node_modules`;
  for (const name of packages) {
    const target = await npmPackageDir(name);
    const link = `${nodeModules}/${name}`;
    await Deno.mkdir(link.slice(0, link.lastIndexOf("/")), { recursive: true });
    await Deno.symlink(target, link);
  }
  try {
    await esbuild.build({
      entryPoints: [entryPath],
      outfile,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      external: ["crypto"],
      nodePaths: [nodeModules],
      logLevel: "error",
    });
  } finally {
    await esbuild.stop();
  }
}

if (import.meta.main) {
  const [entryPath, outfile] = Deno.args;
  if (!entryPath || !outfile) throw new Error("usage: workerd.ts <entry.ts> <outfile.js>");
  await bundle(entryPath, outfile);
}

/** A capnp text literal (JSON's escapes are capnp's). */
function text(s: string): string {
  return JSON.stringify(s);
}

function buildConfig(options: WorkerdOptions): string {
  const bindings = Object.entries(options.bindings ?? {})
    .map(([name, value]) => `(name = ${text(name)}, text = ${text(value)})`);
  const flags = (options.compatibilityFlags ?? []).map(text);
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    # The default "internet" service allows public addresses only: a WebSocket to
    # 127.0.0.1 fails with "connecting to 127.0.0.1:<port> is not allowed".
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
    (name = "http", address = ${text(`${HOST}:0`)}, http = (), service = "main"),
  ],
);

const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = ${text(options.compatibilityDate ?? pkg.compatibilityDate)},
  compatibilityFlags = [${flags.join(", ")}],
  bindings = [${bindings.join(", ")}],
  globalOutbound = "internet",
);
`;
}

/** One spawned workerd with its stdout (control messages) and stderr drained to EOF. */
class WorkerdProcess {
  readonly child: Deno.ChildProcess;
  exited = false;
  readonly status: Promise<Deno.CommandStatus>;
  readonly drained: Promise<void>;
  /** resolves with the port of the "http" socket, or undefined if stdout ended first */
  readonly listening: Promise<number | undefined>;
  #log = "";

  constructor(bin: string, configFile: string) {
    // --control-fd=1: workerd writes {"event":"listen","socket":"http","port":N} on stdout
    // once the socket is bound (Deno.Command cannot hand a child a fourth descriptor).
    const child = new Deno.Command(bin, {
      args: ["serve", configFile, "--control-fd=1"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.status = child.status.then((s) => {
      this.exited = true;
      return s;
    });
    let onPort!: (port: number | undefined) => void;
    this.listening = new Promise((resolve) => onPort = resolve);
    const stdout = (async () => {
      let buffered = "";
      try {
        for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            const port = listenPort(line);
            if (port !== undefined) onPort(port);
          }
        }
      } catch {
        // stream errored: nothing more to read
      } finally {
        onPort(undefined);
      }
    })();
    const stderr = (async () => {
      try {
        for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
          this.#log += chunk;
          if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS);
        }
      } catch {
        // stream errored: nothing more to collect
      }
    })();
    this.drained = Promise.all([stdout, stderr]).then(() => {});
  }

  get log(): string {
    return this.#log;
  }

  signal(sig: Deno.Signal): void {
    if (this.exited) return;
    try {
      this.child.kill(sig);
    } catch {
      // already gone
    }
  }

  async wait(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.drained;
    return status;
  }

  async terminate(graceMs: number): Promise<void> {
    if (!this.exited) {
      this.signal("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), graceMs);
      });
      try {
        if (await Promise.race([this.status, grace]) === "timeout") this.signal("SIGKILL");
      } finally {
        clearTimeout(timer);
      }
    }
    await this.wait();
  }
}

function listenPort(line: string): number | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const msg = JSON.parse(line) as { event?: string; socket?: string; port?: number };
    return msg.event === "listen" && msg.socket === "http" && typeof msg.port === "number"
      ? msg.port
      : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves once the port answers an HTTP request (any status). */
async function waitHttp(proc: WorkerdProcess, url: string, deadline: number): Promise<void> {
  while (true) {
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      return;
    } catch (err) {
      if (proc.exited || Date.now() > deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts `workerd serve` with the bundled `script` as the only worker, on 127.0.0.1 and a port
 * workerd picks, its outbound network open to private and loopback addresses (so the Worker can
 * reach a local nats-server). Resolves once it answers HTTP. Always `stop()` it (or
 * `await using`). Throws with workerd's stderr when it exits or does not come up.
 */
export async function startWorkerd(options: WorkerdOptions): Promise<Workerd> {
  const bin = options.bin ?? Deno.env.get("WORKERD_BIN") ?? pkg.default;
  const dir = await Deno.makeTempDir({ prefix: "workerd-test-" });
  let proc: WorkerdProcess | undefined;
  try {
    const configFile = `${dir}/config.capnp`;
    await Deno.writeTextFile(`${dir}/worker.js`, options.script);
    await Deno.writeTextFile(configFile, buildConfig(options));
    proc = new WorkerdProcess(bin, configFile);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), READY_TIMEOUT_MS);
    });
    let port: number | "timeout" | undefined;
    try {
      port = await Promise.race([proc.listening, timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (typeof port !== "number") {
      throw new Error(
        `workerd (pid ${proc.child.pid}) ${
          port === "timeout" ? `reported no port within ${READY_TIMEOUT_MS} ms` : "exited"
        }:\n${proc.log.trim()}`,
      );
    }
    const url = `http://${HOST}:${port}`;
    await waitHttp(proc, url, deadline);
    const started = proc;
    let stopped: Promise<void> | undefined;
    const stop = () =>
      stopped ??= (async () => {
        try {
          await started.terminate(STOP_GRACE_MS);
        } finally {
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      })();
    return {
      pid: started.child.pid,
      port,
      url,
      dir,
      get log() {
        return started.log;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await proc?.terminate(STOP_GRACE_MS);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (proc && err instanceof Error && !err.message.startsWith("workerd")) {
      throw new Error(`workerd did not come up:\n${proc.log.trim()}`, { cause: err });
    }
    throw err;
  }
}
