/**
 * A NATS cluster for tests: N nats-servers on 127.0.0.1 joined by routes,
 * each with a websocket listener and a monitoring port, optionally JetStream
 * and a leaf node listener, and leaf node servers attached to a hub. Every
 * port is ephemeral (`-1`) at the first start and kept on a restart; nodes
 * are stopped, killed (SIGKILL) and restarted by PID; readiness is read from
 * the monitoring endpoints (`/routez`, `/leafz`), never from a fixed sleep.
 *
 * @module
 */

import { waitUntil } from "./wait.ts";
import { natsServerBin } from "../prerequisites.ts";
import { NATS_SERVER_NOT_FOUND, portOf, tryConnect } from "./nats_server.ts";
import { Process } from "./process.ts";

const HOST = "127.0.0.1";
const READY_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 20;

/** What a node listens on. */
interface NodePorts {
  port: number;
  wsPort: number;
  httpPort: number;
  clusterPort: number | undefined;
  leafPort: number | undefined;
}

/** How a node is configured, besides its ports. */
interface NodeSpec {
  name: string;
  cluster: string | undefined;
  /** Its route port, chosen before the first start (see {@linkcode startCluster}). */
  clusterPort: () => number | undefined;
  /** Other nodes whose cluster ports this one routes to. */
  routes: () => number[];
  /** Hub leaf node ports this one connects to, as a leaf. */
  remotes: number[];
  leafListen: boolean;
  jetstream: boolean;
  extra: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One nats-server of a cluster, or a leaf node. */
export class ClusterNode {
  readonly #spec: NodeSpec;
  readonly #bin: string;
  readonly dir: string;
  #proc: Process | undefined;
  #ports: NodePorts | undefined;
  #stopped = false;

  /** @internal Use {@linkcode startCluster} or {@linkcode startLeaf}. */
  constructor(spec: NodeSpec, bin: string, dir: string) {
    this.#spec = spec;
    this.#bin = bin;
    this.dir = dir;
  }

  /** The server's name (`server_name`). */
  get name(): string {
    return this.#spec.name;
  }
  /** The current process's PID. */
  get pid(): number {
    return this.#proc!.pid;
  }
  /** Whether its process is running. */
  get running(): boolean {
    return this.#proc !== undefined && !this.#proc.exited;
  }
  /** Client (TCP) port. */
  get port(): number {
    return this.#ports!.port;
  }
  /** Websocket port. */
  get wsPort(): number {
    return this.#ports!.wsPort;
  }
  /** `ws://127.0.0.1:<wsPort>` */
  get wsUrl(): string {
    return `ws://${HOST}:${this.wsPort}`;
  }
  /** `nats://127.0.0.1:<port>` */
  get natsUrl(): string {
    return `nats://${HOST}:${this.port}`;
  }
  /** Route port; `undefined` for a node outside a cluster. */
  get clusterPort(): number | undefined {
    return this.#ports!.clusterPort;
  }
  /** Leaf node listener port; `undefined` unless it accepts leaf nodes. */
  get leafPort(): number | undefined {
    return this.#ports!.leafPort;
  }

  /** A monitoring endpoint's JSON (`/varz`, `/routez`, `/leafz`, `/connz`, …). */
  async monitor<T = Record<string, unknown>>(path: string): Promise<T> {
    const response = await fetch(`http://${HOST}:${this.#ports!.httpPort}${path}`);
    return await response.json() as T;
  }

  /** Starts the process (again, on the same ports once it has them) and waits until it serves. */
  async start(): Promise<void> {
    if (this.#stopped) throw new Error(`${this.name} was stopped; it cannot be started again`);
    if (this.running) await this.#proc!.kill();
    const configFile = `${this.dir}/nats-server.conf`;
    await Deno.writeTextFile(configFile, this.#config());
    let proc: Process;
    try {
      proc = new Process(this.#bin, { args: ["-c", configFile] });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(NATS_SERVER_NOT_FOUND, { cause: err });
      }
      throw err;
    }
    this.#proc = proc;
    const ports = await this.#waitReady(proc);
    if (this.#ports && JSON.stringify(ports) !== JSON.stringify(this.#ports)) {
      await proc.kill();
      throw new Error(`${this.name} restarted on other ports: ${JSON.stringify(ports)}`);
    }
    this.#ports = ports;
  }

  /** SIGKILL, and wait for the process to exit; `start()` brings it back on the same ports. */
  async kill(): Promise<void> {
    await this.#proc?.kill();
  }

  /** Kills it if running, then starts it again on the same ports. */
  restart(): Promise<void> {
    return this.start();
  }

  /** SIGTERM (SIGKILL after a grace period), and removes its directory. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      await this.#proc?.terminate(STOP_GRACE_MS);
    } finally {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }

  #config(): string {
    const spec = this.#spec;
    const p = this.#ports;
    const lines = [
      `server_name: ${JSON.stringify(spec.name)}`,
      `listen: "${HOST}:${p?.port ?? -1}"`,
      `http: "${HOST}:${p?.httpPort ?? -1}"`,
      `ports_file_dir: ${JSON.stringify(this.dir)}`,
      `websocket { host: "${HOST}", port: ${p?.wsPort ?? -1}, no_tls: true }`,
    ];
    if (spec.cluster !== undefined) {
      const routes = spec.routes().map((port) => `"nats-route://${HOST}:${port}"`);
      lines.push(
        `cluster { name: ${
          JSON.stringify(spec.cluster)
        }, listen: "${HOST}:${spec.clusterPort()}", ` +
          `routes: [${routes.join(", ")}] }`,
      );
    }
    const leaf: string[] = [];
    if (spec.leafListen) leaf.push(`listen: "${HOST}:${p?.leafPort ?? -1}"`);
    if (spec.remotes.length > 0) {
      const urls = spec.remotes.map((port) => `"nats-leaf://${HOST}:${port}"`);
      leaf.push(`remotes: [ { urls: [${urls.join(", ")}] } ]`);
    }
    if (leaf.length > 0) lines.push(`leafnodes { ${leaf.join("\n")} }`);
    if (spec.jetstream) {
      lines.push(`jetstream { store_dir: ${JSON.stringify(`${this.dir}/jetstream`)} }`);
    }
    lines.push(spec.extra, "");
    return lines.join("\n");
  }

  async #waitReady(proc: Process): Promise<NodePorts> {
    const portsFile = `${this.dir}/nats-server_${proc.pid}.ports`;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (true) {
      if (proc.exited) {
        await proc.wait();
        throw new Error(`${this.name} exited early:\n${proc.log.trim()}\n---\n${this.#config()}`);
      }
      try {
        const data = JSON.parse(await Deno.readTextFile(portsFile)) as Record<string, string[]>;
        const port = portOf(data.nats?.[0]);
        const wsPort = portOf(data.websocket?.[0]);
        const httpPort = portOf(data.monitoring?.[0]);
        const clusterPort = portOf(data.cluster?.[0]);
        if (
          port && wsPort && httpPort && (clusterPort || this.#spec.cluster === undefined) &&
          await tryConnect(port) && await tryConnect(wsPort)
        ) {
          // The ports file does not list the leaf node listener: /varz does.
          const varz = await (await fetch(`http://${HOST}:${httpPort}/varz`)).json();
          const leafPort = this.#spec.leafListen ? varz.leaf?.port as number : undefined;
          if (!this.#spec.leafListen || (leafPort && await tryConnect(leafPort))) {
            return { port, wsPort, httpPort, clusterPort, leafPort };
          }
        }
      } catch {
        // Not written yet, or not listening yet.
      }
      if (Date.now() > deadline) {
        await proc.kill();
        throw new Error(`${this.name} not ready after ${READY_TIMEOUT_MS} ms:\n${proc.log.trim()}`);
      }
      await sleep(POLL_MS);
    }
  }
}

/** Options of {@linkcode startCluster}. */
export interface ClusterOptions {
  /** Each node with JetStream (its own store directory). */
  jetstream?: boolean;
  /** Each node accepts leaf node connections. */
  leafnodes?: boolean;
  /** Extra config text for every node. */
  config?: string;
}

/** A running cluster. */
export interface NatsCluster extends AsyncDisposable {
  /** Its nodes, in start order. */
  readonly nodes: ClusterNode[];
  /** Every node's websocket URL, for a client that fails over. */
  readonly wsUrls: string[];
  /** Resolves once every running node has a route to every other running node. */
  routed(): Promise<void>;
  /** Stops every node (leaf nodes started with {@linkcode startLeaf} are stopped on their own). */
  stop(): Promise<void>;
}

async function makeNode(spec: NodeSpec): Promise<ClusterNode> {
  const bin = natsServerBin() ?? "nats-server";
  const dir = await Deno.makeTempDir({ prefix: `nats-${spec.name}-` });
  const node = new ClusterNode(spec, bin, dir);
  try {
    await node.start();
  } catch (error) {
    await node.stop();
    throw error;
  }
  return node;
}

/**
 * A free loopback port, chosen by the OS. Route ports are chosen this way
 * before the nodes start, because every node must know every route at its
 * first start (JetStream in a cluster refuses to start without routes).
 */
function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Starts `size` nodes routed to each other (route ports chosen by the OS
 * before they start, every other port `-1`) and resolves once the routes
 * have formed.
 */
export async function startCluster(
  size: number,
  options: ClusterOptions = {},
): Promise<NatsCluster> {
  const name = `c${crypto.randomUUID().slice(0, 8)}`;
  const nodes: ClusterNode[] = [];
  const routePorts = Array.from({ length: size }, freePort);
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    for (let i = 0; i < size; i++) {
      const spec: NodeSpec = {
        name: `${name}-${i + 1}`,
        cluster: name,
        clusterPort: () => routePorts[i],
        routes: () => routePorts.filter((_, j) => j !== i),
        remotes: [],
        leafListen: options.leafnodes === true,
        jetstream: options.jetstream === true,
        extra: options.config ?? "",
      };
      for (let attempt = 1;; attempt++) {
        try {
          nodes.push(await makeNode(spec));
          break;
        } catch (error) {
          // The port chosen for its routes was taken meanwhile (by another listener asking the
          // OS for any port): choose another; the nodes already up learn it through gossip.
          if (attempt >= 5 || !/address already in use/.test(String(error))) throw error;
          routePorts[i] = freePort();
        }
      }
    }
    const cluster: NatsCluster = {
      nodes,
      get wsUrls() {
        return nodes.map((node) => node.wsUrl);
      },
      routed: () =>
        waitUntil("the routes", async () => {
          const running = nodes.filter((node) => node.running);
          for (const node of running) {
            const routez = await node.monitor<{ routes: { remote_id: string }[] }>("/routez");
            const varzs = await Promise.all(
              running.filter((other) => other !== node).map((other) =>
                other.monitor<{ server_id: string }>("/varz")
              ),
            );
            const ids = new Set(routez.routes.map((route) => route.remote_id));
            if (!varzs.every((varz) => ids.has(varz.server_id))) return false;
          }
          return true;
        }),
      stop,
      [Symbol.asyncDispose]: stop,
    };
    await cluster.routed();
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Starts a leaf node server (with a websocket listener, as browsers reach
 * it) connected to `hubs`' leaf node listeners, and resolves once the leaf
 * connection is up.
 */
export async function startLeaf(hubs: ClusterNode[], options: { config?: string } = {}): Promise<
  ClusterNode & { connected(): Promise<void> }
> {
  const remotes = hubs.map((hub) => {
    if (hub.leafPort === undefined) throw new Error(`${hub.name} does not accept leaf nodes`);
    return hub.leafPort;
  });
  const node = await makeNode({
    name: `leaf-${crypto.randomUUID().slice(0, 8)}`,
    cluster: undefined,
    clusterPort: () => undefined,
    routes: () => [],
    remotes,
    leafListen: false,
    jetstream: false,
    extra: options.config ?? "",
  });
  const connected = () =>
    waitUntil(
      "the leaf node connection",
      async () => ((await node.monitor<{ leafnodes: number }>("/leafz")).leafnodes ?? 0) > 0,
    );
  try {
    await connected();
  } catch (error) {
    await node.stop();
    throw error;
  }
  return Object.assign(node, { connected });
}
