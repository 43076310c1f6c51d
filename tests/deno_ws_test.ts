import { wsconnect } from "@nats-io/nats-core";
import type { NatsConnection as CoreConnection } from "@nats-io/nats-core";
import type { NatsConnection } from "nats.ws";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { createWsFactory, NoDelayWebSocket, type WsFactory, wsFactory } from "../deno.ts";
import { FrameDecoder, FrameError } from "../deno/frame.ts";
import { setTcpConnect } from "../deno/websocket.ts";
import { type ConnectFn, connectTracked, TrackedFactory } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import { connectionFixture, type NatsFixture } from "./helpers/fixture.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { raceTimeout } from "./helpers/process.ts";
import { nextEvent } from "./helpers/spy.ts";
import { type PeerConn, serverFrame, startWsPeer } from "./helpers/ws_peer.ts";

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

/** nats-server config for a TLS websocket listener on an ephemeral port. */
function tlsWebsocketConfig(cert: string, key: string): string {
  return [
    "websocket {",
    '  host: "127.0.0.1"',
    "  port: -1",
    `  tls { cert_file: ${JSON.stringify(cert)}, key_file: ${JSON.stringify(key)} }`,
    "}",
  ].join("\n");
}

/** `promise`'s value; rejects with an Error naming `what` if it is still pending after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const r = await raceTimeout(promise, ms);
  if (r === "timeout") throw new Error(`${what}: not within ${ms} ms`);
  return r;
}

/** What sockets did to their TCP connections, in order: `setNoDelay` calls and write sizes. */
interface ConnSpy {
  /** `"noDelay:true"`, `"write:<bytes>"`… */
  readonly log: string[];
  /** `conn.write()` calls (bytes each), handshake included */
  readonly writes: number[];
  /** puts `Deno.connect` back */
  restore(): void;
}

/** A NoDelayWebSocket to a scripted peer, recording the messages it gets; and the peer's side. */
async function recordingSocket(): Promise<
  { ws: NoDelayWebSocket; messages: unknown[]; conn: PeerConn }
> {
  const peer = startWsPeer();
  const ws = new NoDelayWebSocket(peer.url);
  ws.binaryType = "arraybuffer";
  const messages: unknown[] = [];
  ws.onmessage = (e) => messages.push(e.data);
  return { ws, messages, conn: await peer.accepted };
}

/** Runs `open` with {@linkcode spyTcp} on: the sockets it constructs are spied. */
async function whileSpied<T>(open: () => Promise<T>): Promise<[T, ConnSpy]> {
  const spy = spyTcp();
  try {
    return [await open(), spy];
  } finally {
    spy.restore();
  }
}

/** Makes the sockets constructed until `restore()` record what they do to their TCP connection. */
function spyTcp(): ConnSpy {
  const log: string[] = [];
  const writes: number[] = [];
  const restore = setTcpConnect(async (options) => {
    const conn = await Deno.connect(options);
    const setNoDelay = conn.setNoDelay.bind(conn);
    conn.setNoDelay = (noDelay?: boolean) => {
      log.push(`noDelay:${noDelay ?? true}`);
      setNoDelay(noDelay);
    };
    const write = conn.write.bind(conn);
    conn.write = (p: Uint8Array) => {
      log.push(`write:${p.length}`);
      writes.push(p.length);
      return write(p);
    };
    return conn;
  });
  return { log, writes, restore };
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
    await using server = await startNatsServer({ config: tlsWebsocketConfig(cert, key) });
    const url = `wss://127.0.0.1:${server.wsPort}`;

    // without the certificate the TLS handshake fails: the chain really is verified
    const err = await assertRejects(() => connectWith(url, wsFactory));
    assertMatch(err.message, /invalid peer certificate: UnknownIssuer/);

    const tracked = new TrackedFactory(
      createWsFactory({ caCerts: [await Deno.readTextFile(cert)] }),
    );
    const [nc, spy] = await whileSpied(() => connectTracked(tracked, { servers: url }));
    try {
      // under TLS too, the TCP connection gets no-delay on, once (TLS writes bypass the spy)
      assertEquals(spy.log, ["noDelay:true"]);
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
    await server.restart(); // throws by itself if the server is not ready within 10 s
    // maxReconnectAttempts -1 retries for ever: a broken reconnect must fail, not hang
    assert(await within(reconnected, 10_000, "no reconnect after the restart"), "no reconnect");
    const reply = await nc.request("echo", encoder.encode("again"), { timeout: 2_000 });
    assertEquals(decoder.decode(reply.data), "again");
    assert(tracked.sockets.length >= 2, "the reconnect did not go through the factory");
    assert(tracked.sockets.every((s) => s instanceof NoDelayWebSocket));
  } finally {
    await nc.close();
  }
});

Deno.test("deno - no-delay: 4 KB requests to nats-server go out with no-delay on, each frame in one write", async () => {
  // End to end, the two properties the unit tests below prove one by one: Nagle on, or a frame
  // written in two parts, is what makes every batch wait for a 40 ms delayed ACK.
  await using server = await startNatsServer();
  const responder = await connectWith(server);
  const tracked = new TrackedFactory(wsFactory);
  const [caller, spy] = await whileSpied(() => connectTracked(tracked, { servers: server.wsUrl }));
  try {
    echo(responder);
    await responder.flush();
    const socket = tracked.sockets[0]!;
    const sent: number[] = [];
    const send = socket.send.bind(socket);
    socket.send = (data) => {
      sent.push(new Uint8Array(data as ArrayBuffer | Uint8Array).byteLength);
      send(data);
    };
    const before = spy.writes.length;
    const body = pattern(4096);
    for (let round = 0; round < 3; round++) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, () => caller.request("echo", body, { timeout: 2_000 })),
      );
      for (const reply of replies) assertEquals(reply.data, body);
    }
    assertEquals(spy.log.filter((e) => e.startsWith("noDelay")), ["noDelay:true"]);
    assert(sent.some((n) => n > 4096), "nats.ws sent frames of a whole request or more");
    // Frames are header (2 + extended length + 4-byte mask key) and payload. The socket may
    // combine frames sent in one tick into one write, but never splits one: every write ends
    // where a frame ends, and the writes carry every frame's bytes.
    const ends = (sizes: number[]) =>
      sizes.map((n, k) => n + sizes.slice(0, k).reduce((a, b) => a + b, 0));
    const frames = sent.map((n) => n + 6 + (n < 126 ? 0 : n < 65536 ? 2 : 8));
    const writes = spy.writes.slice(before);
    const frameEnds = new Set(ends(frames));
    assertEquals(ends(writes).filter((end) => !frameEnds.has(end)), [], `writes ${writes}`);
    assertEquals(ends(writes).at(-1), ends(frames).at(-1));
  } finally {
    await caller.close();
    await responder.close();
  }
});

contractSuite(
  "endpoint (deno wsFactory)",
  () => connectionFixture("deno wsFactory", (server) => connectWith(server)),
);

/** A self-signed certificate and key (PEM text), made once for the wss:// contract suite. */
let wssPem: Promise<{ cert: string; key: string }> | undefined;

async function makePem(): Promise<{ cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "deno-wss-pem-" });
  try {
    const { cert, key } = await selfSignedCert(dir);
    return { cert: await Deno.readTextFile(cert), key: await Deno.readTextFile(key) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The contract suite's fixture over wss://: a nats-server whose websocket
 * listener has TLS with a self-signed certificate, and two connections
 * through `createWsFactory({ caCerts })`. The certificate files live in a
 * temp dir removed with the fixture.
 */
async function wssFixture(): Promise<NatsFixture> {
  const pem = await (wssPem ??= makePem());
  const dir = await Deno.makeTempDir({ prefix: "deno-wss-fixture-" });
  try {
    const cert = `${dir}/cert.pem`;
    const key = `${dir}/key.pem`;
    await Deno.writeTextFile(cert, pem.cert);
    await Deno.writeTextFile(key, pem.key);
    const factory = createWsFactory({ caCerts: [pem.cert] });
    const fx = await connectionFixture(
      "deno wsFactory wss",
      (server) => connectWith(`wss://127.0.0.1:${server.wsPort}`, factory),
      { config: tlsWebsocketConfig(cert, key) },
    );
    return {
      ...fx,
      async [Symbol.asyncDispose]() {
        try {
          await fx[Symbol.asyncDispose]();
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

contractSuite("endpoint (deno wsFactory, wss://)", wssFixture);

// The client's protocol handling, against a scripted peer.

/** Closes `ws` with the peer answering the closing handshake; resolves on `close`. */
async function closeWith(ws: WebSocket, conn: PeerConn): Promise<CloseEvent> {
  const closed = nextEvent<CloseEvent>(ws, "close");
  ws.close();
  const frame = await conn.readFrame();
  assertEquals(frame.opcode, 8);
  await conn.write(serverFrame(8, new Uint8Array(0)));
  conn.close();
  return await closed;
}

Deno.test("deno - wsFactory's socket turns TCP_NODELAY on before it writes anything", async () => {
  const peer = startWsPeer();
  const [{ socket }, spy] = await whileSpied(() => wsFactory(peer.url));
  const conn = await peer.accepted;
  try {
    await nextEvent(socket, "open");
    // exactly one setNoDelay call, with true, and it came before the upgrade request
    assertEquals(spy.log.filter((e) => e.startsWith("noDelay")), ["noDelay:true"]);
    assertEquals(spy.log[0], "noDelay:true");
    assert(spy.writes.length > 0, "the handshake went through the spied connection");
    assertEquals((await closeWith(socket, conn)).wasClean, true);
  } finally {
    conn.close();
  }
});

Deno.test("deno - wsFactory's socket writes one 4 KB send() in exactly one write", async () => {
  const peer = startWsPeer();
  const [{ socket }, spy] = await whileSpied(() => wsFactory(peer.url));
  const conn = await peer.accepted;
  try {
    await nextEvent(socket, "open");
    const before = spy.writes.length; // the upgrade request
    const body = pattern(4096);
    socket.send(body);
    const frame = await conn.readFrame();
    assertEquals([frame.opcode, frame.masked, frame.payload], [2, true, body]);
    // header (2 + 2-byte length + 4-byte mask key) and payload together: one write
    assertEquals(spy.writes.slice(before), [8 + 4096]);
    assertEquals((await closeWith(socket, conn)).wasClean, true);
  } finally {
    conn.close();
  }
});

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
  const { ws, messages, conn } = await recordingSocket();
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

Deno.test("deno - FrameDecoder returns the frames before a protocol error with the error", () => {
  const decoder = new FrameDecoder(1024);
  const chunk = new Uint8Array([
    ...serverFrame(2, pattern(10)),
    ...serverFrame(1, encoder.encode("ok")),
    ...serverFrame(2, pattern(3), { mask: true }), // a masked server frame: protocol error
    ...serverFrame(1, encoder.encode("after")),
  ]);
  const { frames, error } = decoder.push(chunk);
  assertEquals(frames.map((f) => [f.opcode, f.payload.length]), [[2, 10], [1, 2]]);
  assertEquals(frames[0]!.payload, pattern(10));
  assertInstanceOf(error, FrameError);
  assertEquals(error.code, 1002);
  assertMatch(error.message, /masked/);
  // the decoder stays failed: nothing more is decoded
  const again = decoder.push(serverFrame(1, encoder.encode("later")));
  assertEquals([again.frames.length, again.error], [0, error]);
  // and a well-formed chunk decodes with no error
  const fine = new FrameDecoder(1024).push(chunk.subarray(0, 12 + 4));
  assertEquals([fine.frames.length, fine.error], [2, undefined]);
});

Deno.test("deno - NoDelayWebSocket delivers the messages read before a protocol error", async () => {
  const { ws, messages, conn } = await recordingSocket();
  try {
    await nextEvent(ws, "open");
    const error = nextEvent<ErrorEvent>(ws, "error");
    const closed = nextEvent<CloseEvent>(ws, "close");
    // two messages and a masked frame in one write (one read on loopback)
    await conn.write(
      new Uint8Array([
        ...serverFrame(2, pattern(300)),
        ...serverFrame(1, encoder.encode("second")),
        ...serverFrame(2, pattern(10), { mask: true }),
      ]),
    );
    const close = await conn.readFrame();
    assertEquals([close.opcode, (close.payload[0]! << 8) | close.payload[1]!], [8, 1002]);
    assert(await conn.readEof(), "the client did not drop the connection");
    assertMatch((await error).message, /masked/);
    assertEquals((await closed).code, 1006);
    assertEquals(messages.length, 2);
    assertEquals(new Uint8Array(messages[0] as ArrayBuffer), pattern(300));
    assertEquals(messages[1], "second");
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
