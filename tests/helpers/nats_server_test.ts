import assert from "node:assert/strict";
import { Events } from "nats.ws";
import type { NatsConnection } from "nats.ws";
import { connectWs } from "./connect.ts";
import { NATS_SERVER_NOT_FOUND, startNatsServer } from "./nats_server.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** subscribes an echo responder on `subject` ("echo:" + payload) */
function echo(nc: NatsConnection, subject: string): void {
  nc.subscribe(subject, {
    callback: (err, msg) => {
      if (!err) msg.respond(enc.encode(`echo:${dec.decode(msg.data)}`));
    },
  });
}

/** resolves on the next status event of `type`; call it before triggering the event */
async function nextStatus(nc: NatsConnection, type: string): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type === type) return;
  }
  throw new Error(`status iterator ended before a "${type}" event`);
}

/**
 * Runs `fn` while recording every WebSocket constructed (connectWs' factory looks the global up
 * on each call). The sanitizers only notice a socket left open by close() when its closing
 * handshake is still running at the end of the test, so the tests also assert it directly.
 */
async function withSocketLog<T>(fn: (sockets: WebSocket[]) => Promise<T>): Promise<T> {
  const Original = globalThis.WebSocket;
  const sockets: WebSocket[] = [];
  globalThis.WebSocket = class extends Original {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      sockets.push(this);
    }
  };
  try {
    return await fn(sockets);
  } finally {
    globalThis.WebSocket = Original;
  }
}

function assertAllClosed(sockets: WebSocket[], atLeast: number): void {
  assert.ok(sockets.length >= atLeast, `expected >= ${atLeast} sockets, saw ${sockets.length}`);
  const states = sockets.map((s) => s.readyState);
  assert.deepEqual(states, sockets.map(() => WebSocket.CLOSED), `readyStates: ${states}`);
}

async function roundTrip(nc: NatsConnection, subject: string, text: string): Promise<void> {
  const reply = await nc.request(subject, enc.encode(text), { timeout: 2000 });
  assert.equal(dec.decode(reply.data), `echo:${text}`);
}

// Each test starts its own server with `await using`, so it is stopped only when the test
// function returns: the socket-leak checks (assertAllClosed after nc.close()) run while the server
// is still up. A server stopped first would tear the client's WebSocket down itself and hide a
// socket that close() left open.

Deno.test("helpers - start server, request/reply over websocket, close", async () => {
  await using server = await startNatsServer();
  assert.ok(server.pid > 0);
  assert.equal(server.natsUrl, `nats://127.0.0.1:${server.port}`);
  assert.equal(server.wsUrl, `ws://127.0.0.1:${server.wsPort}`);
  assert.notEqual(server.port, server.wsPort);

  await withSocketLog(async (sockets) => {
    const nc = await connectWs(server);
    try {
      echo(nc, "helpers.echo");
      await roundTrip(nc, "helpers.echo", "hi");
    } finally {
      await nc.close();
    }
    assertAllClosed(sockets, 1);
    assert.equal(nc.isClosed(), true);
    // closed() resolves once closed, without leaving anything pending
    assert.equal(await nc.closed(), undefined);
    await nc.close(); // closing again is harmless
  });
});

Deno.test("helpers - close() also waits for sockets from a client-initiated reconnect", async () => {
  await using server = await startNatsServer();
  await withSocketLog(async (sockets) => {
    const nc = await connectWs(server.wsUrl, { reconnectTimeWait: 50 });
    try {
      echo(nc, "helpers.reconnect");
      await roundTrip(nc, "helpers.reconnect", "a");
      const reconnected = nextStatus(nc, Events.Reconnect);
      await nc.reconnect();
      await reconnected;
      await roundTrip(nc, "helpers.reconnect", "b");
    } finally {
      await nc.close();
    }
    assertAllClosed(sockets, 2);
  });
});

Deno.test("helpers - drain() waits for the socket too", async () => {
  await using server = await startNatsServer();
  await withSocketLog(async (sockets) => {
    const a = await connectWs(server);
    const b = await connectWs(server);
    try {
      echo(a, "helpers.drain");
      await a.flush(); // the server has the subscription before b asks
      await roundTrip(b, "helpers.drain", "x");
      await a.drain();
      assert.equal(a.isClosed(), true);
      assert.equal(sockets[0]?.readyState, WebSocket.CLOSED);
    } finally {
      await a.close();
      await b.close();
    }
    assertAllClosed(sockets, 2);
  });
});

Deno.test("helpers - closed() settles when the server goes away (no reconnect)", async () => {
  await using server = await startNatsServer();
  const nc = await connectWs(server, { reconnect: false });
  const closed = nc.closed();
  await server.kill();
  await closed;
  assert.equal(nc.isClosed(), true);
  await nc.close();

  // connecting to a server that is gone rejects without leaving the failed socket behind
  await assert.rejects(connectWs(server));

  await server.stop();
  await server.stop(); // idempotent
});

Deno.test("helpers - kill and restart on the same ports, client reconnects", async () => {
  await using server = await startNatsServer();
  const { port, wsPort } = server;
  const firstPid = server.pid;

  await withSocketLog(async (sockets) => {
    const nc = await connectWs(server, {
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 50,
      reconnectJitter: 0,
    });
    try {
      echo(nc, "helpers.restart");
      await roundTrip(nc, "helpers.restart", "1");

      const disconnected = nextStatus(nc, Events.Disconnect);
      const reconnected = nextStatus(nc, Events.Reconnect);
      await server.kill();
      await disconnected;

      await server.restart();
      assert.equal(server.port, port);
      assert.equal(server.wsPort, wsPort);
      assert.notEqual(server.pid, firstPid);

      await reconnected;
      // the subscription was re-sent on reconnect
      await roundTrip(nc, "helpers.restart", "2");
    } finally {
      await nc.close();
    }
    // the first socket, the failed attempts while down and the reconnected one
    assertAllClosed(sockets, 2);
  });
});

Deno.test("helpers - a client closed while its server is down closes cleanly", async () => {
  await using server = await startNatsServer();
  await withSocketLog(async (sockets) => {
    const nc = await connectWs(server, { maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    const disconnected = nextStatus(nc, Events.Disconnect);
    await server.kill();
    await disconnected;
    // let a reconnect attempt fail, then close while the reconnect loop is waiting: close()
    // must not return before nats.ws' pending reconnect timer has run
    await new Promise((resolve) => setTimeout(resolve, 300));
    await nc.close();
    assert.equal(nc.isClosed(), true);
    assertAllClosed(sockets, 2);
  });
});

Deno.test("helpers - extra config is applied; bad config reports stderr", async () => {
  await using server = await startNatsServer({ config: "max_payload: 1024" });
  const nc = await connectWs(server);
  try {
    assert.equal(nc.info?.max_payload, 1024);
  } finally {
    await nc.close();
  }

  await assert.rejects(startNatsServer({ config: "this is { not valid" }), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /nats-server exited early/);
    assert.match(err.message, /[Pp]arse error/); // the server's stderr is included
    return true;
  });
});

Deno.test("helpers - missing nats-server binary gives the install message", async () => {
  const missing = "/nonexistent/nats-server-for-test";
  await assert.rejects(startNatsServer({ bin: missing }), { message: NATS_SERVER_NOT_FOUND });

  const previous = Deno.env.get("NATS_SERVER_BIN");
  Deno.env.set("NATS_SERVER_BIN", missing);
  try {
    await assert.rejects(startNatsServer(), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(
        err.message,
        'nats-server not found: install it with "apt-get install -y nats-server" ' +
          "(or put nats-server on PATH, or set NATS_SERVER_BIN)",
      );
      assert.ok(err.cause instanceof Deno.errors.NotFound);
      return true;
    });
  } finally {
    if (previous === undefined) Deno.env.delete("NATS_SERVER_BIN");
    else Deno.env.set("NATS_SERVER_BIN", previous);
  }
});
