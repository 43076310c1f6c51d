/**
 * Test launcher for a local `nats-server` process with the client and websocket ports
 * bound to 127.0.0.1 on ephemeral ports.
 *
 * Every process, pipe and timer it creates is awaited or closed by {@linkcode NatsServer.stop}
 * / {@linkcode NatsServer.kill}, so tests using it pass Deno's op and resource sanitizers.
 *
 * @module
 */

import { natsServerBin } from "../prerequisites.ts";
import { Process } from "./process.ts";

/** Options for {@linkcode startNatsServer}. */
export interface NatsServerOptions {
  /** extra nats-server config text appended to the generated config (e.g. "max_payload: 1024", authorization blocks) */
  config?: string;
  /** path of the nats-server binary; defaults to env `NATS_SERVER_BIN`, then `nats-server` on PATH, then /usr/sbin */
  bin?: string;
}

/** A running (or killed, restartable) nats-server started by {@linkcode startNatsServer}. */
export interface NatsServer extends AsyncDisposable {
  /** pid of the current server process (changes on {@linkcode NatsServer.restart}) */
  readonly pid: number;
  /** client (NATS protocol) port */
  readonly port: number;
  /** websocket port */
  readonly wsPort: number;
  /** client URL: `nats://127.0.0.1:<port>` */
  readonly natsUrl: string;
  /** websocket URL: `ws://127.0.0.1:<wsPort>` */
  readonly wsUrl: string;
  /** temp dir holding the generated config and the ports file; removed by `stop()` */
  readonly dir: string;
  /** SIGTERM (SIGKILL after a grace period), await process exit, remove the temp dir; idempotent */
  stop(): Promise<void>;
  /** SIGKILL and await exit, keeping the temp dir and config so {@linkcode NatsServer.restart} works */
  kill(): Promise<void>;
  /** start again on the same port and wsPort (kills a still-running process first), wait until ready */
  restart(): Promise<void>;
}

/** Message of the error thrown when the nats-server binary cannot be found. */
export const NATS_SERVER_NOT_FOUND: string =
  'nats-server not found: install it with "apt-get install -y nats-server" ' +
  "(or put nats-server on PATH, or set NATS_SERVER_BIN)";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 20;

interface Ports {
  port: number;
  wsPort: number;
}

/** sleep that always runs to completion (never left pending when awaited) */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function quote(s: string): string {
  return JSON.stringify(s);
}

function buildConfig(dir: string, ports: Ports | undefined, extra: string | undefined): string {
  const port = ports?.port ?? -1;
  const wsPort = ports?.wsPort ?? -1;
  return [
    `listen: "${HOST}:${port}"`,
    `ports_file_dir: ${quote(dir)}`,
    `websocket {`,
    `  host: "${HOST}"`,
    `  port: ${wsPort}`,
    `  no_tls: true`,
    `}`,
    extra ?? "",
    "",
  ].join("\n");
}

/** The port of a URL nats-server wrote to its ports file; `undefined` for none. */
export function portOf(url: string | undefined): number | undefined {
  if (!url) return undefined;
  try {
    const port = Number(new URL(url).port);
    return Number.isInteger(port) && port > 0 ? port : undefined;
  } catch {
    return undefined;
  }
}

/** Spawns nats-server with `configFile`; throws {@linkcode NATS_SERVER_NOT_FOUND} if missing. */
function spawnServer(bin: string, configFile: string): Process {
  try {
    return new Process(bin, { args: ["-c", configFile] });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(NATS_SERVER_NOT_FOUND, { cause: err });
    }
    throw err;
  }
}

/** Whether a port on 127.0.0.1 accepts a TCP connection (closed at once). */
export async function tryConnect(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until the process wrote its ports file and both ports accept TCP connections.
 * Polls with short sleeps that are always awaited, so no timer outlives the call.
 */
async function waitReady(proc: Process, dir: string, configFile: string): Promise<Ports> {
  const portsFile = `${dir}/nats-server_${proc.pid}.ports`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let ports: Ports | undefined;
  while (true) {
    if (proc.exited) {
      const status = await proc.wait();
      const config = await Deno.readTextFile(configFile).catch(() => "");
      throw new Error(
        `nats-server exited early (code ${status.code}${
          status.signal ? `, signal ${status.signal}` : ""
        }):\n${proc.log.trim()}\n--- config ${configFile} ---\n${config}`,
      );
    }
    if (!ports) {
      try {
        const data = JSON.parse(await Deno.readTextFile(portsFile)) as {
          nats?: string[];
          websocket?: string[];
        };
        const port = portOf(data.nats?.[0]);
        const wsPort = portOf(data.websocket?.[0]);
        if (port && wsPort) ports = { port, wsPort };
      } catch {
        // not written yet (or partially written)
      }
    }
    if (ports && await tryConnect(ports.port) && await tryConnect(ports.wsPort)) {
      return ports;
    }
    if (Date.now() > deadline) {
      await proc.kill();
      throw new Error(
        `nats-server (pid ${proc.pid}) not ready after ${READY_TIMEOUT_MS} ms ` +
          `(ports file ${portsFile}${ports ? " found, ports not accepting" : " missing"}):\n` +
          proc.log.trim(),
      );
    }
    await sleep(POLL_MS);
  }
}

class NatsServerImpl implements NatsServer {
  #proc: Process;
  #ports: Ports;
  #dir: string;
  #bin: string;
  #extra: string | undefined;
  #stopped: Promise<void> | undefined;

  constructor(proc: Process, ports: Ports, dir: string, bin: string, extra?: string) {
    this.#proc = proc;
    this.#ports = ports;
    this.#dir = dir;
    this.#bin = bin;
    this.#extra = extra;
  }

  get pid(): number {
    return this.#proc.pid;
  }
  get port(): number {
    return this.#ports.port;
  }
  get wsPort(): number {
    return this.#ports.wsPort;
  }
  get natsUrl(): string {
    return `nats://${HOST}:${this.port}`;
  }
  get wsUrl(): string {
    return `ws://${HOST}:${this.wsPort}`;
  }
  get dir(): string {
    return this.#dir;
  }

  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      try {
        await this.#proc.terminate(STOP_GRACE_MS);
      } finally {
        await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
      }
    })();
    return this.#stopped;
  }

  kill(): Promise<void> {
    return this.#proc.kill();
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error("nats-server was stopped; it cannot be restarted");
    await this.#proc.kill();
    const configFile = `${this.#dir}/nats-server.conf`;
    await Deno.writeTextFile(configFile, buildConfig(this.#dir, this.#ports, this.#extra));
    const proc = spawnServer(this.#bin, configFile);
    this.#proc = proc;
    const ports = await waitReady(proc, this.#dir, configFile);
    if (ports.port !== this.#ports.port || ports.wsPort !== this.#ports.wsPort) {
      await proc.kill();
      throw new Error(
        `nats-server restarted on different ports: ${JSON.stringify(ports)} ` +
          `instead of ${JSON.stringify(this.#ports)}`,
      );
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts `nats-server` on 127.0.0.1 with an ephemeral client port and an ephemeral, non-TLS
 * websocket port, and resolves once both ports accept connections. Always `stop()` it (or use
 * `await using`).
 *
 * Throws an Error with an install hint when the binary is missing, and an Error containing the
 * server's stderr when it exits during startup (e.g. a bad `config`).
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = options.bin ?? natsServerBin() ?? "nats-server";
  const dir = await Deno.makeTempDir({ prefix: "nats-server-test-" });
  try {
    const configFile = `${dir}/nats-server.conf`;
    await Deno.writeTextFile(configFile, buildConfig(dir, undefined, options.config));
    const proc = spawnServer(bin, configFile);
    const ports = await waitReady(proc, dir, configFile);
    return new NatsServerImpl(proc, ports, dir, bin, options.config);
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}
