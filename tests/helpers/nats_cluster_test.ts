import { assertEquals, assertNotEquals } from "@std/assert";
import { startCluster, startLeaf } from "./nats_cluster.ts";
import { waitUntil } from "./wait.ts";

Deno.test("cluster harness - routes form, a killed node restarts on its ports and routes again, a leaf node connects", async () => {
  await using cluster = await startCluster(3, { leafnodes: true, jetstream: true });
  const [a, b, c] = cluster.nodes as [
    (typeof cluster.nodes)[0],
    (typeof cluster.nodes)[0],
    (typeof cluster.nodes)[0],
  ];
  const routez = await a.monitor<{ num_routes: number }>("/routez");
  assertEquals(routez.num_routes, 2);
  const { pid, port, wsPort } = b;
  await b.kill();
  await waitUntil(
    "the route to the killed node to drop",
    async () => (await a.monitor<{ num_routes: number }>("/routez")).num_routes === 1,
  );
  await b.restart();
  assertNotEquals(b.pid, pid);
  assertEquals([b.port, b.wsPort], [port, wsPort]);
  await cluster.routed();
  const leaf = await startLeaf([c]);
  try {
    assertEquals((await c.monitor<{ leafnodes: number }>("/leafz")).leafnodes, 1);
    await leaf.kill();
    await leaf.restart();
    await leaf.connected();
  } finally {
    await leaf.stop();
  }
});
