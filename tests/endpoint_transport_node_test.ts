import net from "node:net";
import type { NatsConnection as CoreConnection } from "./deps/nats_core.ts";
import { assert, assertEquals, assertRejects } from "@std/assert";
import { natsTransport } from "../mod.ts";
import { connectNode } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import { connectionFixture } from "./helpers/fixture.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

// The contract suite over @nats-io/transport-node: a Deno server or script that reaches
// the NATS TCP port connects with the NATS maintainers' TCP transport, no WebSocket at all.
// This file has it to itself: each transport-node connect() or wsconnect() replaces nats-core's
// module-wide transport factory, so connections of the other kind opened earlier in the same
// process stop reconnecting; Deno runs each test file in its own isolate.
contractSuite(
  "endpoint (transport-node)",
  () => connectionFixture("transport-node", (server) => connectNode(server)),
);

function echo(nc: CoreConnection, subject = "echo"): void {
  nc.subscribe(subject, {
    callback: (_err, msg) => {
      msg.respond(msg.data);
    },
  });
}

Deno.test("transport-node - connects to the TCP port and carries 4 KB requests in batches", async () => {
  await using server = await startNatsServer();
  const responder = await connectNode(server);
  const caller = await connectNode(`127.0.0.1:${server.port}`);
  try {
    echo(responder);
    await responder.flush();
    assertEquals(caller.getServer(), `127.0.0.1:${server.port}`);
    const body = new Uint8Array(4096).map((_, i) => i & 0xff);
    for (let round = 0; round < 3; round++) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, () => caller.request("echo", body, { timeout: 2_000 })),
      );
      // transport-node hands over a Buffer: compare the bytes
      for (const reply of replies) assertEquals(new Uint8Array(reply.data), body);
    }
    // natsTransport takes the connection as it takes a nats.ws or wsconnect one
    assert(natsTransport(caller).maxPayload > 4096);
  } finally {
    await caller.close();
    await responder.close();
  }
});

Deno.test("transport-node - its TCP socket has no-delay on before the first byte", async () => {
  await using server = await startNatsServer();
  const original = net.Socket.prototype.setNoDelay;
  const calls: { socket: net.Socket; noDelay: boolean; connecting: boolean }[] = [];
  net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
    calls.push({ socket: this, noDelay: noDelay ?? true, connecting: this.connecting });
    return original.call(this, noDelay);
  };
  let nc: CoreConnection;
  try {
    nc = await connectNode(server);
  } finally {
    net.Socket.prototype.setNoDelay = original;
  }
  try {
    const socket = (nc as unknown as { protocol: { transport: { socket: net.Socket } } })
      .protocol.transport.socket;
    assert(socket instanceof net.Socket, "the connection has a node:net socket");
    // asked for while the socket was still connecting: before CONNECT or any request
    assertEquals(
      calls.filter((c) => c.socket === socket).map((c) => [c.noDelay, c.connecting]),
      [[true, true]],
    );
  } finally {
    await nc.close();
  }
});

Deno.test("transport-node - refuses a ws:// URL: WebSocket ports need wsconnect and wsFactory", async () => {
  await using server = await startNatsServer();
  await assertRejects(() => connectNode(server.wsUrl), Error, "websockets");
});
