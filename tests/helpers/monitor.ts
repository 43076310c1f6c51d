/**
 * nats-server's monitoring endpoints for tests: where the server wrote its
 * monitoring port, and `/connz` (the connections, open or closed).
 *
 * @module
 */

import { assert } from "@std/assert";
import type { NatsServer } from "./nats_server.ts";

/** One connection in `/connz`. */
export interface Connection {
  cid: number;
  name?: string;
  reason?: string;
}

/** `/connz`'s answer. */
export interface Connz {
  num_connections: number;
  total: number;
  connections: Connection[];
}

/** The server's open or closed connections. */
export async function connz(monitor: string, state: "open" | "closed"): Promise<Connz> {
  const res = await fetch(`${monitor}/connz?state=${state}&limit=10000`);
  if (!res.ok) throw new Error(`/connz: ${res.status} ${await res.text()}`);
  return await res.json() as Connz;
}

/** The monitoring URL nats-server wrote to its ports file (`http: "127.0.0.1:-1"` in the config). */
export async function monitorUrl(server: NatsServer): Promise<string> {
  const ports = JSON.parse(
    await Deno.readTextFile(`${server.dir}/nats-server_${server.pid}.ports`),
  ) as { monitoring?: string[] };
  const url = ports.monitoring?.[0];
  assert(url, `no monitoring port in the ports file: ${JSON.stringify(ports)}`);
  return url;
}

/** How many client connections the server has accepted since it started (`/varz`). */
export async function totalConnections(monitor: string): Promise<number> {
  const res = await fetch(`${monitor}/varz`);
  if (!res.ok) throw new Error(`/varz: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { total_connections: number }).total_connections;
}
