/**
 * Runs a Cloudflare Worker locally for tests: given its bundle (from `bundle()` in ./bundle.ts,
 * platform browser), writes a workerd config, starts `workerd serve` from the `workerd` npm
 * package on 127.0.0.1 with an ephemeral port (workerd reports the port it bound through
 * `--control-fd`), and waits until it answers HTTP.
 *
 * Every process, pipe and temp file it creates is awaited, closed or removed by
 * {@linkcode Workerd.stop}, so tests using it pass Deno's op and resource sanitizers.
 *
 * @module
 */

import { workerdPackage } from "../deps/workerd.ts";
import { Process, raceTimeout } from "./process.ts";

/** Options for {@linkcode startWorkerd}. */
export interface WorkerdOptions {
  /** The bundled module's text (`bundle()` in ./bundle.ts). */
  script: string;
  /** Text bindings (`env.NAME`). */
  bindings?: Record<string, string>;
  /** Defaults to the workerd package's own (the newest date it supports). */
  compatibilityDate?: string;
  /** Compatibility flags. */
  compatibilityFlags?: string[];
  /**
   * Durable Object namespaces, binding name → the class the script exports; their storage is
   * in memory, so a restarted workerd starts every object afresh (as an eviction does).
   */
  durableObjects?: Record<string, string>;
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

/** A capnp text literal (JSON's escapes are capnp's). */
function text(s: string): string {
  return JSON.stringify(s);
}

function buildConfig(options: WorkerdOptions): string {
  const objects = Object.entries(options.durableObjects ?? {});
  const bindings = [
    ...Object.entries(options.bindings ?? {})
      .map(([name, value]) => `(name = ${text(name)}, text = ${text(value)})`),
    ...objects.map(([name, className]) =>
      `(name = ${text(name)}, durableObjectNamespace = ${text(className)})`
    ),
  ];
  const namespaces = [...new Set(objects.map(([, className]) => className))].map((className) =>
    `(className = ${text(className)}, uniqueKey = ${text(`test-${className}`)})`
  );
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
  globalOutbound = "internet",${
    namespaces.length === 0 ? "" : `
  durableObjectNamespaces = [${namespaces.join(", ")}],
  durableObjectStorage = (inMemory = void),`
  }
);
`;
}

/**
 * Spawns `workerd serve`; `listening` resolves with the port of the "http" socket, or undefined
 * if stdout ended first.
 */
function spawnWorkerd(
  bin: string,
  configFile: string,
): { proc: Process; listening: Promise<number | undefined> } {
  let onPort!: (port: number | undefined) => void;
  const listening = new Promise<number | undefined>((resolve) => onPort = resolve);
  // --control-fd=1: workerd writes {"event":"listen","socket":"http","port":N} on stdout
  // once the socket is bound (Deno.Command cannot hand a child a fourth descriptor).
  const proc = new Process(bin, {
    args: ["serve", configFile, "--control-fd=1"],
    onStdoutLine: (line) => {
      const port = listenPort(line.trim());
      if (port !== undefined) onPort(port);
    },
  });
  proc.stdoutDone.then(() => onPort(undefined));
  return { proc, listening };
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
async function waitHttp(proc: Process, url: string, deadline: number): Promise<void> {
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
  let proc: Process | undefined;
  try {
    const configFile = `${dir}/config.capnp`;
    await Deno.writeTextFile(`${dir}/worker.js`, options.script);
    await Deno.writeTextFile(configFile, buildConfig(options));
    const spawned = spawnWorkerd(bin, configFile);
    proc = spawned.proc;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    const port = await raceTimeout(spawned.listening, READY_TIMEOUT_MS);
    if (typeof port !== "number") {
      throw new Error(
        `workerd (pid ${proc.pid}) ${
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
      pid: started.pid,
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
