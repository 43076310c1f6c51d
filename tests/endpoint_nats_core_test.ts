import { wsconnect } from "./deps/nats_core.ts";
import type { NatsConnection as CoreConnection } from "./deps/nats_core.ts";
import { assert, assertEquals } from "@std/assert";
import { connectCore, settleOnClose } from "./helpers/connect.ts";
import { contractSuite } from "./helpers/contract_suite.ts";
import { connectionFixture, type NatsFixture } from "./helpers/fixture.ts";
import type { NatsServer } from "./helpers/nats_server.ts";

// The contract suite over @nats-io/nats-core's wsconnect(), the maintained
// successor of nats.ws: natsTransport takes either connection.
contractSuite("endpoint (nats-core)", () => connectionFixture("nats-core", (s) => connectCore(s)));

// Again with no wsFactory at all, so nats-core opens its sockets itself with
// Deno's built-in WebSocket (`new WebSocket(url)` in its ws transport), the
// way most Deno users will connect it.
contractSuite("endpoint (nats-core, its own WebSocket)", () => nativeCoreFixture());

Deno.test("nats-core - without wsFactory it dials with the global WebSocket, and its fixture waits for the close", async () => {
  await using fx = await nativeCoreFixture();
  const opened = [...NativeSockets.current!.sockets];
  // One socket per connection (caller and responder), none from a wsFactory.
  assertEquals(opened.length, 2);
  assert(opened.every((s) => s.readyState === WebSocket.OPEN), "both sockets are open");
  await fx.ready();
  await fx[Symbol.asyncDispose]();
  assert(opened.every((s) => s.readyState === WebSocket.CLOSED), "closed once disposed");
  assertEquals(NativeSockets.current, undefined, "the global WebSocket is restored");
});

/**
 * Records every socket nats-core opens through the global `WebSocket` while
 * installed, with a promise of its `close` event. The resource sanitizer
 * reports a socket whose closing handshake has not ended. nats.ws' `close()`
 * resolves before it ends; nats-core's usually waits for `onclose`, but not
 * when an `error` event came first (its ws transport then resolves at once)
 * nor for a socket a reconnect still in flight opens, so the fixture waits
 * for every socket's `close` event itself. The global is replaced by a subclass of Deno's
 * own WebSocket (same behaviour, nats-core still constructs it) only while a
 * fixture is open; Deno runs each test module in its own isolate and the
 * tests of a module one at a time, so no other test sees it.
 */
class NativeSockets {
  /** The installed recorder, if a fixture is open. */
  static current: NativeSockets | undefined;
  /** Every socket opened while installed, in order. */
  readonly sockets: WebSocket[] = [];
  readonly #closed: Promise<void>[] = [];
  readonly #original = globalThis.WebSocket;

  /** Replaces the global WebSocket with a recording subclass. */
  static install(): NativeSockets {
    if (NativeSockets.current) throw new Error("a NativeSockets recorder is already installed");
    const recorder = new NativeSockets();
    const record = (socket: WebSocket) => {
      recorder.sockets.push(socket);
      // addEventListener, not onclose: nats-core assigns (and on error clears) socket.onclose
      recorder.#closed.push(
        new Promise((resolve) => socket.addEventListener("close", () => resolve(), { once: true })),
      );
    };
    globalThis.WebSocket = class RecordedWebSocket extends recorder.#original {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        record(this);
      }
    };
    NativeSockets.current = recorder;
    return recorder;
  }

  /** Waits (at most 10 s) for every recorded socket's `close` event, then restores the global. */
  async uninstall(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), 10_000);
      });
      // Loop: a reconnect in flight may still open a socket while we wait.
      for (let seen = -1; seen !== this.#closed.length;) {
        seen = this.#closed.length;
        if (await Promise.race([Promise.all(this.#closed), timeout]) === "timeout") {
          throw new Error(`a WebSocket nats-core opened did not fire "close" within 10 s`);
        }
      }
    } finally {
      clearTimeout(timer);
      globalThis.WebSocket = this.#original;
      NativeSockets.current = undefined;
    }
  }
}

/** `wsconnect()` with no `wsFactory`; `close()` also settles a dial still in flight. */
async function connectCoreNative(server: NatsServer): Promise<CoreConnection> {
  const nc = await wsconnect({ servers: server.wsUrl });
  settleOnClose(nc);
  return nc;
}

/**
 * A nats-server and two nats-core connections with nats-core's own
 * WebSocket; disposing it resolves once every socket they opened has closed.
 */
async function nativeCoreFixture(): Promise<NatsFixture<CoreConnection>> {
  const recorder = NativeSockets.install();
  let fx: NatsFixture<CoreConnection>;
  try {
    fx = await connectionFixture("nats-core (own WebSocket)", connectCoreNative);
  } catch (error) {
    await recorder.uninstall();
    throw error;
  }
  let disposed: Promise<void> | undefined;
  return {
    ...fx,
    [Symbol.asyncDispose]: () =>
      disposed ??= (async () => {
        try {
          await fx[Symbol.asyncDispose]();
        } finally {
          await recorder.uninstall();
        }
      })(),
  };
}
