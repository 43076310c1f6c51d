import net from "node:net";
import tls from "node:tls";
import { wsconnect } from "./deps/nats_core.ts";
import type { NatsConnection as CoreConnection } from "./deps/nats_core.ts";
import type { NatsConnection } from "nats.ws";
import { assert, assertEquals, assertInstanceOf, assertMatch, assertRejects } from "@std/assert";
import { createWsFactory, type WsFactory, wsFactory } from "../deno.ts";
import { type ConnectFn, connectTracked, TrackedFactory } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import { connectionFixture, type NatsFixture } from "./helpers/fixture.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { raceTimeout } from "./helpers/process.ts";
import { nextEvent } from "./helpers/spy.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function echo(nc: NatsConnection | CoreConnection, subject = "echo"): void {
  (nc as NatsConnection).subscribe(subject, {
    callback: (_err, msg) => {
      msg.respond(msg.data);
    },
  });
}

/** `n` bytes of a pattern that shows misplaced bytes */
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

/** The `node:net` socket (a `tls.TLSSocket` for `wss://`) under a `ws` WebSocket. */
function tcpOf(socket: WebSocket): net.Socket {
  const tcp = (socket as unknown as { _socket?: net.Socket | null })._socket;
  assert(tcp, "the WebSocket has no underlying node:net socket");
  return tcp;
}

/**
 * Records every `setNoDelay` call on a `node:net` socket (TLS sockets
 * included) while installed, and, for the sockets of the factories it
 * wraps, whether their TCP connection had no-delay turned on by the time
 * the WebSocket opened, i.e. before the NATS client could send a byte.
 */
class NoDelaySpy implements Disposable {
  /** every call: the socket and the value asked for */
  readonly calls: { socket: net.Socket; noDelay: boolean }[] = [];
  /** per WebSocket wrapped: no-delay on (and never turned off) at its `open` event */
  readonly atOpen = new Map<WebSocket, boolean>();
  readonly #original = net.Socket.prototype.setNoDelay;

  constructor() {
    const calls = this.calls;
    const original = this.#original;
    net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
      calls.push({ socket: this, noDelay: noDelay ?? true });
      return original.call(this, noDelay);
    };
  }

  /** the last value asked for on `tcp`, if any */
  noDelayOf(tcp: net.Socket): boolean | undefined {
    return this.calls.findLast((c) => c.socket === tcp)?.noDelay;
  }

  /** `factory` with its sockets observed at `open` */
  wrap(factory: WsFactory): WsFactory {
    return async (url, options) => {
      const opened = await factory(url, options);
      const socket = opened.socket;
      socket.addEventListener("open", () => {
        this.atOpen.set(socket, this.noDelayOf(tcpOf(socket)) === true);
      }, { once: true });
      return opened;
    };
  }

  /** puts `setNoDelay` back */
  [Symbol.dispose](): void {
    net.Socket.prototype.setNoDelay = this.#original;
  }
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
    // an npm ws socket over node:net, not Deno's built-in WebSocket
    assert(!((socket as unknown) instanceof WebSocket), "the factory made a built-in WebSocket");
    assertInstanceOf(tcpOf(socket), net.Socket);
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

Deno.test("deno - wsFactory connects over wss:// with caCerts, TCP_NODELAY on under TLS", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deno-ws-tls-" });
  try {
    const { cert, key } = await selfSignedCert(dir);
    await using server = await startNatsServer({ config: tlsWebsocketConfig(cert, key) });
    const url = `wss://127.0.0.1:${server.wsPort}`;

    // without the certificate the TLS handshake fails: the chain really is verified
    const err = await assertRejects(() => connectWith(url, wsFactory));
    assertMatch(err.message, /self-signed certificate/);

    using spy = new NoDelaySpy();
    const tracked = new TrackedFactory(
      spy.wrap(createWsFactory({ caCerts: [await Deno.readTextFile(cert)] })),
    );
    const nc = await connectTracked(tracked, { servers: url });
    try {
      echo(nc);
      const body = new Uint8Array(4096).fill(42);
      const reply = await nc.request("echo", body, { timeout: 2_000 });
      assertEquals(reply.data, body);
      const socket = tracked.sockets[0]!;
      assertEquals(socket.url, `${url}/`);
      assertInstanceOf(tcpOf(socket), tls.TLSSocket);
      assertEquals(spy.atOpen.get(socket), true, "no-delay was not on when the socket opened");
    } finally {
      await nc.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno - wsFactory reconnects after a server restart, each socket with no-delay on", async () => {
  await using server = await startNatsServer();
  using spy = new NoDelaySpy();
  const tracked = new TrackedFactory(spy.wrap(wsFactory));
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
    // every socket that opened had no-delay on (attempts refused while the server was down
    // never open)
    const opened = tracked.sockets.filter((s) => spy.atOpen.has(s));
    assert(opened.length >= 2, "the first and the reconnected socket opened");
    assert(opened.every((s) => spy.atOpen.get(s) === true), "a socket opened with Nagle on");
  } finally {
    await nc.close();
  }
});

Deno.test("deno - no-delay: batches of 4 KB requests go out on a socket with TCP_NODELAY on from its open", async () => {
  // Nagle on is what makes every batch of NATS traffic that passes ~1 KB wait for the
  // server's 40 ms delayed ACK (docs/deno-websocket-nagle.md). Deno's built-in WebSocket
  // turns no-delay off; the factory's socket must have it on before the NATS client writes
  // anything, and keep it on while batches of 10 requests with 4 KB bodies go out.
  await using server = await startNatsServer();
  const responder = await connectWith(server);
  using spy = new NoDelaySpy();
  const tracked = new TrackedFactory(spy.wrap(wsFactory));
  const caller = await connectTracked(tracked, { servers: server.wsUrl });
  try {
    echo(responder);
    await responder.flush();
    const socket = tracked.sockets[0]!;
    const body = pattern(4096);
    for (let round = 0; round < 3; round++) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, () => caller.request("echo", body, { timeout: 2_000 })),
      );
      for (const reply of replies) assertEquals(reply.data, body);
    }
    assertEquals(spy.atOpen.get(socket), true, "no-delay was not on when the socket opened");
    const tcp = tcpOf(socket);
    const asked = spy.calls.filter((c) => c.socket === tcp).map((c) => c.noDelay);
    assert(asked.length > 0 && asked.every((on) => on), `setNoDelay calls: ${asked}`);
  } finally {
    await caller.close();
    await responder.close();
  }
});

Deno.test("deno - createWsFactory sends headers and protocols, offers no permessage-deflate", async () => {
  const upgrade = Promise.withResolvers<Headers>();
  const serverClosed = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    upgrade.resolve(new Headers(req.headers));
    const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "nats" });
    socket.onclose = () => serverClosed.resolve();
    return response;
  });
  try {
    const factory = createWsFactory({
      headers: { Authorization: "Bearer t0ken" },
      protocols: ["nats"],
    });
    const { socket, encrypted } = await factory(`ws://127.0.0.1:${server.addr.port}`);
    assertEquals(encrypted, false);
    const closed = nextEvent<CloseEvent>(socket, "close");
    await nextEvent(socket, "open");
    const headers = await upgrade.promise;
    assertEquals(headers.get("authorization"), "Bearer t0ken");
    assertEquals(headers.get("sec-websocket-protocol"), "nats");
    assertEquals(headers.get("sec-websocket-extensions"), null);
    assertEquals(socket.protocol, "nats");
    socket.close(1000);
    assertEquals((await closed).code, 1000);
    await serverClosed.promise;
  } finally {
    await server.shutdown();
  }
});

Deno.test("deno - a failed upgrade with no error listener closes the socket and throws nothing", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("no", { status: 500 }),
  );
  try {
    // nobody listens for "error": an npm ws socket would throw it out of an I/O callback
    const { socket } = await wsFactory(`ws://127.0.0.1:${server.addr.port}`);
    const ev = await nextEvent<CloseEvent>(socket, "close");
    assertEquals([ev.code, socket.readyState], [1006, WebSocket.CLOSED]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("deno - a refused connection leaves no socket or op behind", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const tracked = new TrackedFactory(wsFactory);
  await assertRejects(() =>
    connectTracked(tracked, {
      servers: `ws://127.0.0.1:${port}`,
      reconnect: false,
      maxReconnectAttempts: 0,
    })
  );
  assert(tracked.sockets.length >= 1, "the connection went through the factory");
  assert(tracked.sockets.every((s) => s.readyState === WebSocket.CLOSED));
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
