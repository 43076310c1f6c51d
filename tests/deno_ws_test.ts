import { wsconnect } from "@nats-io/nats-core";
import type { NatsConnection as CoreConnection } from "@nats-io/nats-core";
import type { NatsConnection } from "nats.ws";
import { assert, assertEquals, assertInstanceOf, assertRejects, assertThrows } from "@std/assert";
import { createWsFactory, NoDelayWebSocket, type WsFactory, wsFactory } from "../deno.ts";
import { type ConnectFn, connectTracked, TrackedFactory } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import { connectionFixture } from "./helpers/fixture.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { nextEvent } from "./helpers/spy.ts";
import { serverFrame, startWsPeer } from "./helpers/ws_peer.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function echo(nc: NatsConnection | CoreConnection, subject = "echo"): void {
  (nc as NatsConnection).subscribe(subject, {
    callback: (_err, msg) => {
      msg.respond(msg.data);
    },
  });
}

/** `n` bytes of a pattern that shows misplaced or unmasked bytes */
function pattern(n: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + (i >> 8)) & 0xff);
}

/** nats.ws through a tracked copy of `factory`. */
function connectWith(
  server: NatsServer | string,
  factory: WsFactory = wsFactory,
  options: Record<string, unknown> = {},
): Promise<NatsConnection> {
  const servers = typeof server === "string" ? server : server.wsUrl;
  return connectTracked(new TrackedFactory(factory), { servers, ...options });
}

/** A self-signed certificate for 127.0.0.1 made with openssl in `dir`. */
async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`openssl failed: ${decoder.decode(out.stderr)}`);
  return { cert, key };
}

Deno.test("deno - wsFactory connects over ws:// and carries requests", async () => {
  await using server = await startNatsServer();
  const tracked = new TrackedFactory(wsFactory);
  const nc = await connectTracked(tracked, { servers: server.wsUrl });
  try {
    echo(nc);
    const small = await nc.request("echo", encoder.encode("hi"), { timeout: 2_000 });
    assertEquals(decoder.decode(small.data), "hi");
    // 200 KB: a 64-bit length frame each way
    const body = pattern(200 * 1024);
    const reply = await nc.request("echo", body, { timeout: 2_000 });
    assertEquals(reply.data, body);
    assertEquals(tracked.sockets.length, 1);
    const socket = tracked.sockets[0]!;
    assertInstanceOf(socket, NoDelayWebSocket);
    assertEquals(socket.binaryType, "arraybuffer");
    assertEquals(socket.readyState, WebSocket.OPEN);
  } finally {
    await nc.close();
  }
  assertEquals(tracked.sockets[0]!.readyState, WebSocket.CLOSED);
});

Deno.test("deno - wsFactory works with @nats-io/nats-core wsconnect", async () => {
  await using server = await startNatsServer();
  const nc = await connectTracked<CoreConnection>(
    new TrackedFactory(wsFactory),
    { servers: server.wsUrl },
    wsconnect as unknown as ConnectFn<CoreConnection>,
  );
  try {
    echo(nc);
    const reply = await nc.request("echo", encoder.encode("core"), { timeout: 2_000 });
    assertEquals(decoder.decode(reply.data), "core");
  } finally {
    await nc.close();
  }
});

Deno.test("deno - wsFactory connects over wss:// with caCerts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deno-ws-tls-" });
  try {
    const { cert, key } = await selfSignedCert(dir);
    await using server = await startNatsServer({
      config: [
        "websocket {",
        '  host: "127.0.0.1"',
        "  port: -1",
        `  tls { cert_file: ${JSON.stringify(cert)}, key_file: ${JSON.stringify(key)} }`,
        "}",
      ].join("\n"),
    });
    const url = `wss://127.0.0.1:${server.wsPort}`;

    // without the certificate the TLS handshake fails: the chain really is verified
    await assertRejects(() => connectWith(url, wsFactory));

    const tracked = new TrackedFactory(
      createWsFactory({ caCerts: [await Deno.readTextFile(cert)] }),
    );
    const nc = await connectTracked(tracked, { servers: url });
    try {
      echo(nc);
      const body = new Uint8Array(4096).fill(42);
      const reply = await nc.request("echo", body, { timeout: 2_000 });
      assertEquals(reply.data, body);
      assertEquals(tracked.sockets[0]!.url, `${url}/`);
    } finally {
      await nc.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno - wsFactory reconnects after a server restart", async () => {
  await using server = await startNatsServer();
  const tracked = new TrackedFactory(wsFactory);
  const nc = await connectTracked(tracked, {
    servers: server.wsUrl,
    reconnectTimeWait: 50,
    maxReconnectAttempts: -1,
  });
  try {
    echo(nc);
    await nc.flush();
    const statuses = nc.status();
    const reconnected = (async () => {
      for await (const s of statuses) if (s.type === "reconnect") return true;
      return false;
    })();
    await server.kill();
    await server.restart();
    assert(await reconnected, "no reconnect status");
    const reply = await nc.request("echo", encoder.encode("again"), { timeout: 2_000 });
    assertEquals(decoder.decode(reply.data), "again");
    assert(tracked.sockets.length >= 2, "the reconnect did not go through the factory");
    assert(tracked.sockets.every((s) => s instanceof NoDelayWebSocket));
  } finally {
    await nc.close();
  }
});

Deno.test("deno - no-delay: 10 requests with 4 KB bodies complete well under 40 ms", async () => {
  await using server = await startNatsServer();
  const responder = await connectWith(server);
  const caller = await connectWith(server);
  try {
    echo(responder);
    await responder.flush();
    const body = new Uint8Array(4096).fill(1);
    const batch = () => Promise.all(Array.from({ length: 10 }, () => caller.request("echo", body)));
    await batch(); // warm up
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await batch();
      times.push(performance.now() - t0);
    }
    const min = Math.min(...times);
    // with Nagle on, each batch waits for a 40 ms delayed ACK
    assert(min < 30, `fastest batch took ${min.toFixed(1)} ms: TCP_NODELAY off? (${times})`);
  } finally {
    await caller.close();
    await responder.close();
  }
});

contractSuite(
  "endpoint (deno wsFactory)",
  () => connectionFixture("deno wsFactory", (server) => connectWith(server)),
);

// The client's protocol handling, against a scripted peer.

Deno.test("deno - NoDelayWebSocket rejects a wrong Sec-WebSocket-Accept", async () => {
  const peer = startWsPeer({ accept: "d3Jvbmcgd3Jvbmcgd3Jvbmc=" });
  const ws = new NoDelayWebSocket(peer.url);
  const error = nextEvent<ErrorEvent>(ws, "error");
  const closed = nextEvent<CloseEvent>(ws, "close");
  const conn = await peer.accepted;
  try {
    assert((await error).message.includes("Sec-WebSocket-Accept"));
    const ev = await closed;
    assertEquals([ev.code, ev.wasClean, ws.readyState], [1006, false, WebSocket.CLOSED]);
  } finally {
    conn.close();
  }
});

Deno.test("deno - NoDelayWebSocket masks frames and uses 7-, 16- and 64-bit lengths", async () => {
  const peer = startWsPeer();
  const ws = new NoDelayWebSocket(peer.url);
  assertThrows(() => ws.send("too early"), DOMException);
  const conn = await peer.accepted;
  try {
    assert(/^sec-websocket-version: 13\r$/im.test(conn.request));
    await nextEvent(ws, "open");
    const sizes = [0, 125, 126, 300, 65_535, 65_536, 70_000];
    const bodies = sizes.map(pattern);
    for (const b of bodies) ws.send(b);
    ws.send("héllo");
    for (const b of bodies) {
      const f = await conn.readFrame();
      assertEquals([f.fin, f.opcode, f.masked], [true, 2, true]);
      assertEquals(f.payload, b);
    }
    const text = await conn.readFrame();
    assertEquals([text.opcode, text.masked, decoder.decode(text.payload)], [1, true, "héllo"]);
    assertEquals(ws.bufferedAmount, 0);
    ws.close();
    const close = await conn.readFrame();
    assertEquals([close.opcode, close.payload.length], [8, 0]);
    await conn.write(serverFrame(8, new Uint8Array(0)));
    conn.close();
    const ev = await nextEvent<CloseEvent>(ws, "close");
    assertEquals([ev.code, ev.wasClean], [1005, true]);
  } finally {
    conn.close();
  }
});

Deno.test("deno - NoDelayWebSocket reassembles fragments and answers pings between them", async () => {
  const peer = startWsPeer();
  const ws = new NoDelayWebSocket(peer.url);
  ws.binaryType = "arraybuffer";
  const messages: unknown[] = [];
  ws.onmessage = (e) => messages.push(e.data);
  const conn = await peer.accepted;
  try {
    await nextEvent(ws, "open");
    const big = pattern(70_000);
    await conn.write(serverFrame(2, big.subarray(0, 100), { fin: false }));
    await conn.write(serverFrame(9, encoder.encode("p1")));
    await conn.write(serverFrame(0, big.subarray(100, 40_000), { fin: false }));
    await conn.write(serverFrame(0, big.subarray(40_000)));
    await conn.write(serverFrame(1, encoder.encode("té"), { fin: false }));
    await conn.write(serverFrame(0, encoder.encode("xt")));
    await conn.write(serverFrame(2, pattern(300)));
    const pong = await conn.readFrame();
    assertEquals([pong.opcode, pong.masked, decoder.decode(pong.payload)], [10, true, "p1"]);
    // the server starts the closing handshake
    await conn.write(serverFrame(8, new Uint8Array([0x0f, 0xa0, ...encoder.encode("bye")])));
    const echo = await conn.readFrame();
    assertEquals([echo.opcode, (echo.payload[0]! << 8) | echo.payload[1]!], [8, 4000]);
    const closed = nextEvent<CloseEvent>(ws, "close");
    conn.close();
    const ev = await closed;
    assertEquals([ev.code, ev.reason, ev.wasClean], [4000, "bye", true]);
    assertEquals(messages.length, 3);
    assertEquals(new Uint8Array(messages[0] as ArrayBuffer), big);
    assertEquals(messages[1], "téxt");
    assertEquals(new Uint8Array(messages[2] as ArrayBuffer), pattern(300));
  } finally {
    conn.close();
  }
});

Deno.test("deno - NoDelayWebSocket fails the connection on a masked server frame", async () => {
  const peer = startWsPeer();
  const ws = new NoDelayWebSocket(peer.url);
  const conn = await peer.accepted;
  try {
    await nextEvent(ws, "open");
    const error = nextEvent<ErrorEvent>(ws, "error");
    const closed = nextEvent<CloseEvent>(ws, "close");
    await conn.write(serverFrame(2, pattern(10), { mask: true }));
    const close = await conn.readFrame();
    assertEquals([close.opcode, (close.payload[0]! << 8) | close.payload[1]!], [8, 1002]);
    assert(await conn.readEof(), "the client did not drop the connection");
    assert((await error).message.includes("masked"));
    const ev = await closed;
    assertEquals([ev.code, ev.wasClean], [1006, false]);
  } finally {
    conn.close();
  }
});

Deno.test("deno - NoDelayWebSocket close() gives up after closeTimeout", async () => {
  const peer = startWsPeer();
  const ws = new NoDelayWebSocket(peer.url, { closeTimeout: 100 });
  const conn = await peer.accepted;
  try {
    await nextEvent(ws, "open");
    const closed = nextEvent<CloseEvent>(ws, "close");
    ws.close(4001, "x".repeat(200));
    const frame = await conn.readFrame();
    assertEquals([frame.opcode, frame.payload.length], [8, 2 + 123]);
    // no answer from the peer: the client drops the connection itself
    const ev = await closed;
    assertEquals([ev.code, ev.wasClean], [1006, false]);
    assert(await conn.readEof());
  } finally {
    conn.close();
  }
});
