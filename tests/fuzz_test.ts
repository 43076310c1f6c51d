/**
 * Seeded, bounded fuzzing against a live nats-server.
 *
 * Reply path: an Endpoint over nats.ws requests int, enum and object contracts; a hostile
 * responder on a raw TCP socket answers each request with random or adversarial bodies, headers,
 * statuses and malformed header blocks (raw HPUB frames). Each request settles exactly once (one
 * `settle` event) with the value the reply encodes, InvalidReplyError, RemoteError (only for a
 * well-formed error reply whose code is 100–999) or NoRespondersError (only for an empty 503),
 * never TimeoutError; then the same endpoint and connection answer a fresh valid request.
 *
 * Responder path: an Endpoint handles contracts; a raw TCP requester sends adversarial requests
 * (bodies, Callback-Timeout values, malformed header blocks). Each gets exactly one answer, a
 * valid reply or an error reply with code 400 for a body that fails; the endpoint keeps answering.
 *
 * Table cases say what they allow where the README leaves a choice (a BOM before JSON, a header
 * line nats.ws cannot decode); random cases are judged by the oracles `expectReply` and
 * `expectRequest`. FUZZ_SEED=<n> runs another seed. A broken build stops after FUZZ_MAX_STALLS
 * (default 3) cases that cost a timeout, so that it still ends in seconds.
 */

import { isDeepStrictEqual } from "node:util";
import * as v from "valibot";
import { assertEquals, assertStrictEquals } from "@std/assert";
import {
  defineRequest,
  Endpoint,
  enumOf,
  int,
  InvalidReplyError,
  natsTransport,
  NoRespondersError,
  object,
  RemoteError,
  type SettleEvent,
} from "../mod.ts";
import { connectWs } from "./helpers/connect.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261201);
const MAX_STALLS = Number(Deno.env.get("FUZZ_MAX_STALLS") ?? 3);
/** A delivered reply settles in milliseconds: this only bounds how long a broken build takes. */
const TIMEOUT = 1_000;
/** How long after the last answer a duplicate would still be seen. */
const GRACE = 100;
const RANDOM_REPLIES = 240;
const RANDOM_REQUESTS = 160;
const DEEP = 100_000;

type Bytes = Uint8Array;
type Rand = () => number;
type Kind = "int" | "enum" | "object";
const KINDS: readonly Kind[] = ["int", "enum", "object"];

const encoder = new TextEncoder();
const lenient = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** Concatenates strings (as UTF-8), byte lists and byte arrays. */
function bytes(...parts: (string | number[] | Bytes)[]): Bytes {
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : Uint8Array.from(p));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
  return out;
}
/** What `f` returns, `undefined` when it throws. */
function attempt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
const utf8 = (b: Bytes) => attempt(() => strict.decode(b));
function show(b: Bytes | string): string {
  const s = typeof b === "string" ? b : lenient.decode(b.subarray(0, 60));
  return JSON.stringify(s.slice(0, 60)) + (b.length > 60 ? `…(${b.length})` : "");
}
const errorText = (e: unknown) => e instanceof Error ? `${e.name}: ${e.message.slice(0, 160)}` : e;
const union = <T>(...lists: readonly T[][]): T[] => [...new Set(lists.flat())];
/** Deep equality (0 and -0 alike); values too deep to compare are not judged. */
const same = (a: unknown, b: unknown) =>
  attempt(() => isDeepStrictEqual(a, b) || (a === 0 && b === 0)) ?? true;
function within<T>(promise: Promise<T>, ms: number): Promise<T | "stalled"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stall = new Promise<"stalled">((resolve) => timer = setTimeout(resolve, ms, "stalled"));
  return Promise.race([promise, stall]).finally(() => clearTimeout(timer));
}
/** mulberry32. */
function prng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;
const between = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const noise = (r: Rand, n: number) => Uint8Array.from({ length: n }, () => between(r, 0, 255));

type RawMsg = { subject: string; reply: string; headers: Bytes; data: Bytes };

/** A minimal NATS client on a raw TCP socket: it publishes any header block and reads HMSGs. */
class RawNats {
  readonly errors: string[] = [];
  onMsg: (msg: RawMsg) => void = () => {};
  readonly #conn: Deno.Conn;
  readonly #reading: Promise<void>;
  #buf: Bytes = new Uint8Array(0);
  #pongs: (() => void)[] = [];
  #writing = Promise.resolve();
  #closing = false;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#reading = this.#read();
  }
  static async open(server: NatsServer, subject: string): Promise<RawNats> {
    const raw = new RawNats(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    raw.#send('CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n');
    raw.#send(`SUB ${subject} 1\r\n`);
    await raw.flush();
    return raw;
  }
  /** PUB without a header block, HPUB with one (even an empty or a malformed one). */
  publish(subject: string, reply: string, header: Bytes | undefined, data: Bytes): void {
    const to = reply ? `${subject} ${reply}` : subject, h = header?.length ?? 0;
    const op = header ? `HPUB ${to} ${h} ${h + data.length}` : `PUB ${to} ${data.length}`;
    this.#send(`${op}\r\n`, header ?? [], data, "\r\n");
  }
  /** Resolves once the server has processed everything sent before. */
  async flush(): Promise<void> {
    const pong = new Promise<void>((resolve) => this.#pongs.push(resolve));
    this.#send("PING\r\n");
    if (await within(pong, 5 * TIMEOUT) === "stalled") throw new Error("raw NATS: no PONG");
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writing;
    this.#closing = true;
    this.#conn.close();
    await this.#reading;
  }
  #send(...parts: (string | number[] | Bytes)[]): void {
    const data = bytes(...parts);
    this.#writing = this.#writing.then(async () => {
      for (let at = 0; at < data.length;) at += await this.#conn.write(data.subarray(at));
    }).catch((error) => void this.errors.push(`write: ${error}`));
  }
  async #read(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (let n; (n = await this.#conn.read(chunk)) !== null;) {
        this.#buf = bytes(this.#buf, chunk.subarray(0, n));
        this.#parse();
      }
    } catch (error) {
      if (!this.#closing) this.errors.push(`read: ${error}`);
    }
  }
  #parse(): void {
    let at = 0;
    for (let eol; (eol = this.#buf.indexOf(10, at)) > 0;) {
      const [op, ...args] = lenient.decode(this.#buf.subarray(at, eol - 1)).split(" ");
      if (op === "MSG" || op === "HMSG") { // MSG <subject> <sid> [reply] [<hdr size>] <size>
        const size = Number(args.at(-1)), hdr = op === "HMSG" ? Number(args.at(-2)) : 0;
        if (this.#buf.length < eol + 1 + size + 2) break;
        const payload = this.#buf.slice(eol + 1, eol + 1 + size);
        at = eol + 1 + size + 2;
        const reply = args.length === (op === "HMSG" ? 5 : 4) ? args[2]! : "";
        const [headers, data] = [payload.subarray(0, hdr), payload.subarray(hdr)];
        this.onMsg({ subject: args[0]!, reply, headers, data });
      } else {
        at = eol + 1;
        if (op === "PING") this.#send("PONG\r\n");
        else if (op === "PONG") this.#pongs.shift()?.();
        else if (op === "-ERR") this.errors.push(args.join(" "));
      }
    }
    this.#buf = this.#buf.slice(at);
  }
}

// ---- Bodies: a valid one as is, padded, mutated, or garbage and adversarial ones instead.

const MEMBERS = ["Approved", "Rejected", 7] as const;
const Obj = v.object({ id: v.string(), n: v.number() });
const PAD = ["", " ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\ufeff", "\0"];
const SOUP = [...'[]{}",:0123456789-+.eE tnrfalsu\\/\u00e9\ufeff\n'];
const TEXT = [...'ab "\\/\u00e9\u2713\0\u2028'];
const nest = (d: number, open = "[", close = "]", inner = "") =>
  open.repeat(d) + inner + close.repeat(d);
// deno-fmt-ignore
const ADVERSARIAL: ((r: Rand) => string | Bytes)[] = [
  () => '{"toString":1}', () => '{"valueOf":{}}', () => '{"toString":1,"valueOf":1}',
  () => '[{"toString":1}]', () => '{"__proto__":{"polluted":true},"id":"a","n":1}',
  () => '{"constructor":{"prototype":{"polluted":true}},"id":"a","n":1}',
  (r) => { const d = Math.floor(10 ** (1 + r() * 4)); // 10 … 100 000 deep
    return pick(r, [nest(d), "[".repeat(d), nest(d, '{"a":', "}", "1"), nest(d, '{"a":[', "]}")]); },
  (r) => JSON.stringify("x".repeat(5 * 10 ** between(r, 1, 5))),
  (r) => JSON.stringify({ id: "y".repeat(5 * 10 ** between(r, 1, 5)), n: 1 }),
  (r) => pick(r, ["1e400", "-1e400", "123456789012345678901234567890", "9007199254740993", "-0"]),
  (r) => pick(r, ["1e3", "0x10", "NaN", "Infinity", "+1", "01", "\uff11", "1_000", "null"]),
  (r) => bytes(pick(r, [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0xf4, 0x90, 0x80, 0x80]])),
  (r) => bytes('"App', pick(r, [[0xff], [0xc3, 0x28], [0xed, 0xbf, 0xbf]]), 'roved"'),
];
const randomText = (r: Rand) => Array.from({ length: between(r, 0, 12) }, () => pick(r, TEXT));
function randomBody(r: Rand, valid: string): [string, Bytes] {
  const b = bytes(valid), at = between(r, 0, b.length), byte = [between(r, 0, 255)];
  const i = between(r, 0, ADVERSARIAL.length - 1);
  const [what, make] = pick<[string, () => Bytes]>(r, [
    ["valid", () => b],
    ["padded", () => bytes(pick(r, PAD), valid, pick(r, PAD))],
    ["bom", () => bytes("\ufeff", valid)],
    ["byte replaced", () => bytes(b.subarray(0, at), byte, b.subarray(at + 1))],
    ["byte inserted", () => bytes(b.subarray(0, at), byte, b.subarray(at))],
    ["truncated", () => b.subarray(0, at)],
    ["random bytes", () => noise(r, between(r, 0, 40))],
    ["soup", () => bytes(Array.from({ length: between(r, 1, 30) }, () => pick(r, SOUP)).join(""))],
    [`adversarial ${i}`, () => bytes(ADVERSARIAL[i]!(r))],
    [`adversarial ${i}`, () => bytes(ADVERSARIAL[i]!(r))],
  ]);
  return [what, make()];
}

// ---- Reply path: what each reply must settle its request with.

type Want = "value" | "invalid" | "remote" | "none";
type Remote = { code: number; description: string; data?: unknown };
type Expect = { want: Want[]; value?: unknown; remote?: Remote };
type Case = { name: string; kind: Kind; header: Bytes | undefined; body: Bytes };
type ReplyCase = Case & { expect: Expect };
/** A well-formed header block: a status line, Callback-Kind, NATS micro's error headers. */
type Hdr = { status?: string; kind?: string; code?: string; description?: string };

/** What a reply body decodes to under a kind (README, "Int, enum and object responses"). */
function expectBody(kind: Kind, body: Bytes): Expect {
  const text = utf8(body);
  if (text === undefined) return { want: ["invalid"] };
  if (text.startsWith("\ufeff")) { // RFC 8259 lets JSON parsers ignore a BOM; an int is decimal text
    const rest = expectBody(kind, body.subarray(3));
    const open = kind !== "int" && rest.want[0] === "value";
    return open ? { ...rest, want: ["value", "invalid"] } : { want: ["invalid"] };
  }
  if (kind === "int") {
    const ok = /^-?[0-9]+$/.test(text) && Number.isSafeInteger(Number(text));
    return ok ? { want: ["value"], value: Number(text) } : { want: ["invalid"] };
  }
  const json = attempt(() => ({ value: JSON.parse(text) as unknown }));
  if (kind === "object") {
    const checked = json && v.safeParse(Obj, json.value);
    return checked?.success ? { want: ["value"], value: checked.output } : { want: ["invalid"] };
  }
  const member = MEMBERS.find((m) => json ? m === json.value : m === text.trim());
  if (member === undefined) return { want: ["invalid"] };
  // Bare text is a plain responder's string member; whitespace around it is left open.
  return { want: json || member === text ? ["value"] : ["value", "invalid"], value: member };
}
function expectReply(kind: Kind, h: Hdr, body: Bytes): Expect {
  if (h.code !== undefined) {
    if (!/^[1-9][0-9]{2}$/.test(h.code.trim())) return { want: ["invalid"] };
    const remote = { code: Number(h.code), description: (h.description ?? "").trim() };
    if (body.length === 0) return { want: ["remote"], remote: { ...remote, data: undefined } };
    const json = attempt(() => ({ data: JSON.parse(utf8(body)!) as unknown }));
    // An error reply's body is JSON (README, "Wire format"): a text one is left open.
    return json
      ? { want: ["remote"], remote: { ...remote, ...json } }
      : { want: ["remote", "invalid"], remote };
  }
  if (h.status !== undefined) {
    return { want: h.status.startsWith("503") && body.length === 0 ? ["none"] : ["invalid"] };
  }
  const wrongKind = h.kind !== undefined && h.kind.trim() !== kind;
  return wrongKind ? { want: ["invalid"] } : expectBody(kind, body);
}
function block(h: Hdr): Bytes {
  const lines = [`NATS/1.0${h.status ? ` ${h.status}` : ""}`];
  if (h.kind !== undefined) lines.push(`Callback-Kind: ${h.kind}`);
  if (h.code !== undefined) lines.push(`Nats-Service-Error-Code: ${h.code}`);
  if (h.description !== undefined) lines.push(`Nats-Service-Error: ${h.description}`);
  return bytes(lines.join("\r\n"), "\r\n\r\n");
}
/** A case the oracle judges. */
function reply(kind: Kind, h: Hdr | undefined, body: string | Bytes, name = show(body)): ReplyCase {
  const b = bytes(body), expect = expectReply(kind, h ?? {}, b);
  return { name: `${kind} ${name}`, kind, header: h && block(h), body: b, expect };
}
/** A raw header block on an int reply, and what it allows. */
function raw(name: string, header: string | Bytes, body: string, want: Want[]): ReplyCase {
  const expect = { ...expectBody("int", bytes(body)), want };
  return { name: `raw ${name}`, kind: "int", header: bytes(header), body: bytes(body), expect };
}
const CODES = "1e3|0x10|-1||abc|99|1000|404|100|999| 404 |404.0|0404|\uff14\uff10\uff14".split("|");
const DESCRIPTIONS = ["", "not found", "d".repeat(60_000), "ünïcödé ✓ 日本 🚀"];
const STATUSES = ["503", "503 No Responders", "408 Request Timeout", "100", "999", "404 Not Found"];
const OK = "NATS/1.0\r\n";
// deno-fmt-ignore
const REPLY_TABLE: ReplyCase[] = [
  ...[" 42 ", "42\n", "\t42", "\ufeff42", "+1", "-0", "1e3", "0x10", "\uff14\uff12", "9007199254740992",
    "-9007199254740991", "4\ufffd", bytes("42", [0xff])].map((b) => reply("int", undefined, b)),
  ...['{"toString":1}', '{"valueOf":{}}', '{"toString":1,"valueOf":1}', '[{"toString":1}]', '"__proto__"',
    ' "Approved" ', '\ufeff"Approved"', "Approved", " Approved", "Approved\0", "7", "7.0", "1e400",
    '"approved"', bytes('"Appr', [0xc3, 0x28], 'oved"'), JSON.stringify("x".repeat(500_000)),
  ].map((b) => reply("enum", undefined, b)),
  ...['{"toString":1,"id":"a","n":1}', '{"valueOf":{},"id":"a","n":1}', '{"__proto__":{"id":"a","n":1}}',
    '{"id":"a","n":1,"__proto__":{"polluted":true}}', '{"id":"a","n":1e400}', '\ufeff{"id":"a","n":1}',
    '{"id":"a","n":123456789012345678901234567890}', ' {"id":"a","n":1}\r\n', '\u00a0{"id":"a","n":1}',
    bytes('{"id":"', [0xff], '","n":1}'), JSON.stringify({ id: "y".repeat(500_000), n: 1 }),
  ].map((b) => reply("object", undefined, b)),
  ...KINDS.flatMap((k) => [reply(k, undefined, nest(DEEP), "deep array"),
    reply(k, undefined, nest(DEEP, '{"a":', "}", "1"), "deep object")]),
  ...["float", "", "INT", " int ", "\u00efnt", "enum"].map((kind) => reply("int", { kind }, "1", `kind ${show(kind)}`)),
  ...CODES.map((code) => reply("int", { code, description: "nope" }, "", `error code ${show(code)}`)),
  ...DESCRIPTIONS.map((description) => reply("enum", { code: "503", description }, "", `error ${show(description)}`)),
  reply("int", { code: "404" }, "", "error without a description"),
  reply("object", { code: "409", description: "conflict" }, '{"why":"x"}', "error with JSON data"),
  reply("object", { code: "409", description: "conflict" }, "oops", "error with a text body"),
  reply("int", { code: "409", description: "x" }, bytes([0xff]), "error with an invalid UTF-8 body"),
  ...STATUSES.flatMap((status) => [reply("int", { status }, "", `status ${status}, no body`),
    reply("int", { status }, "1", `status ${status} with a body`)]),
  // A first line other than "NATS/1.0" makes a malformed message (nats.go: ErrBadHeaderMsg).
  raw("no NATS/1.0 line", "HTTP/1.1 200 OK\r\nCallback-Kind: int\r\n\r\n", "5", ["invalid"]),
  raw("NATS/2.0", "NATS/2.0\r\nCallback-Kind: int\r\n\r\n", "5", ["invalid"]),
  // nats.ws sees one first line here, nats.go reads LF lines and a wrong kind: invalid either way.
  raw("LF line ends", "NATS/1.0\nCallback-Kind: enum\n\n", "5", ["invalid"]),
  raw("empty first line", "\r\nCallback-Kind: int\r\n\r\n", "5", ["invalid", "value"]),
  raw("empty header block", "", "5", ["value"]),
  raw("line without a colon", `${OK}Callback-Kind int\r\n\r\n`, "5", ["invalid", "value"]),
  raw("key with a space", `${OK}Bad Key: 1\r\nCallback-Kind: int\r\n\r\n`, "5", ["invalid", "value"]),
  raw("non-ASCII key", `${OK}K\u00e9y: 1\r\n\r\n`, "5", ["invalid", "value"]),
  raw("invalid UTF-8 key", bytes(OK, [0xff], ": 1\r\n\r\n"), "5", ["invalid", "value"]),
  raw("empty key", `${OK}: 1\r\n\r\n`, "5", ["invalid", "value"]),
  raw("unterminated block", `${OK}Callback-Kind: int`, "5", ["invalid", "value"]),
  raw("two kinds", `${OK}Callback-Kind: int\r\nCallback-Kind: enum\r\n\r\n`, "5", ["invalid", "value"]),
  raw("2000 header lines", `${OK}${"X-Pad: v\r\n".repeat(2000)}Callback-Kind: int\r\n\r\n`, "5", ["value"]),
  ...["abc", "1e3 x", "-1", "0x1F7", "99999999999999999999"].map((s) =>
    raw(`status ${show(s)}`, `NATS/1.0 ${s}\r\n\r\n`, "", ["invalid"])),
  raw("status 503abc", "NATS/1.0 503abc\r\n\r\n", "", ["invalid", "none"]),
  raw("status 0", "NATS/1.0 0\r\n\r\n", "5", ["invalid", "value"]),
  raw("invalid UTF-8 kind", bytes(`${OK}Callback-Kind: `, [0xff, 0xfe], "\r\n\r\n"), "5", ["invalid"]),
  raw("NUL in kind", `${OK}Callback-Kind: int\0\r\n\r\n`, "5", ["invalid"]),
  raw("invalid UTF-8 code", bytes(`${OK}Nats-Service-Error-Code: 4`, [0xff], "4\r\n\r\n"), "", ["invalid"]),
  raw("invalid UTF-8 description", bytes(`${OK}Nats-Service-Error-Code: 404\r\nNats-Service-Error: `,
    [0xc3, 0x28], "\r\n\r\n"), "", ["remote", "invalid"]),
];

function validReply(r: Rand, kind: Kind): string {
  if (kind === "int") return String(pick(r, [between(r, -1e6, 1e6), Number.MAX_SAFE_INTEGER]));
  if (kind === "enum") return r() < 0.8 ? JSON.stringify(pick(r, MEMBERS)) : "Rejected";
  const n = pick(r, [0, -1.5, 1e21, between(r, -99, 99)]);
  return JSON.stringify({ id: randomText(r).join(""), n });
}
function randomReply(r: Rand, i: number): ReplyCase {
  const kind = pick(r, KINDS);
  let [what, body] = randomBody(r, validReply(r, kind));
  const h = pick<() => Hdr | undefined>(r, [
    () => undefined,
    () => undefined,
    () => ({ kind }),
    () => ({ kind: pick(r, ["int", "enum", "object", "", "INT", " int"]) }),
    () => ({ code: pick(r, CODES), description: pick(r, DESCRIPTIONS) }),
    () => ({ status: pick(r, STATUSES) }),
  ])();
  if (h?.status !== undefined && r() < 0.5) [what, body] = ["empty", new Uint8Array(0)];
  if (r() < 0.95) {
    return reply(kind, h, body, `#${i} ${show(JSON.stringify(h ?? {}))} ${what} ${show(body)}`);
  }
  // A garbage header block. Its first line is not "NATS/1.0", so the message is malformed (nats.go
  // refuses it: ErrBadHeaderMsg), unless the line is blank, which nats.ws cannot tell from valid.
  const header = bytes(noise(r, between(r, 1, 30)), "\r\n\r\n");
  const blank = lenient.decode(header).split("\r\n")[0]!.trim() === "";
  const expect = expectBody(kind, body);
  expect.want = blank ? union(["invalid"], expect.want) : ["invalid"];
  return {
    name: `${kind} #${i} garbage ${show(header)} ${what} ${show(body)}`,
    kind,
    header,
    body,
    expect,
  };
}

// ---- Reply path: the test.

const Replies = {
  int: defineRequest({ subject: "fuzz.r.int", request: v.number(), response: int() }),
  enum: defineRequest({ subject: "fuzz.r.enum", request: v.number(), response: enumOf(MEMBERS) }),
  object: defineRequest({ subject: "fuzz.r.obj", request: v.number(), response: object(Obj) }),
};
const Good = defineRequest({ subject: "fuzz.good", request: v.number(), response: int() });
type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };
const settle = (p: Promise<unknown>) =>
  p.then((value): Settled => ({ ok: true, value }), (error): Settled => ({ ok: false, error }));
const is = (e: unknown) =>
  (["invalid", "remote", "none"] as const)[
    [InvalidReplyError, RemoteError, NoRespondersError].findIndex((type) => e instanceof type)
  ];
const found = (...problems: (string | undefined | false)[]) => problems.filter(Boolean) as string[];

/**
 * Runs the cases one at a time. `run` returns a case's problems, or `undefined` when nothing came
 * within the timeout; then `fresh` must get a fresh valid answer. Stops after MAX_STALLS cases
 * that cost a timeout (calling `recover` after each). Returns one line per failing case.
 */
async function fuzz<C extends Case>(
  cases: C[],
  run: (c: C, i: number) => Promise<string[] | undefined>,
  fresh: (i: number) => Promise<boolean>,
  recover = () => Promise.resolve(),
): Promise<string[]> {
  const failures: string[] = [];
  let stalls = 0;
  for (const [i, c] of cases.entries()) {
    const problems = await run(c, i) ?? [`nothing within ${TIMEOUT} ms`];
    const answer = fresh(i).then((ok) => ok || "a wrong value", errorText);
    const healthy = await within(answer, TIMEOUT + 500);
    if (healthy !== true) problems.push(`then a fresh valid request got ${healthy}`);
    if (problems.length > 0) failures.push(`${c.name}: ${problems.join("; ")}`);
    if (!problems[0]?.startsWith("nothing within") && healthy === true) continue;
    await recover();
    if (++stalls < MAX_STALLS) continue;
    failures.push(`stopped after ${stalls} stalled cases; ${cases.length - i - 1} not run`);
    break;
  }
  return failures;
}
/** A nats.ws connection (tracked, see helpers/connect.ts) that `await using` closes. */
async function connection(server: NatsServer) {
  const nc = await connectWs(server);
  return Object.assign(nc, { [Symbol.asyncDispose]: () => nc.close() });
}

/** What is wrong with how a request settled, for its case. */
function judgeReply({ expect: { want, value, remote } }: ReplyCase, got: Settled) {
  const e = got.ok ? undefined : got.error;
  let wrong: string | undefined;
  if (!want.includes(got.ok ? "value" : is(e)!)) wrong = `expected ${want.join(" or ")}`;
  else if (got.ok && !same(got.value, value)) {
    wrong = `expected ${show(`${JSON.stringify(value)}`)}`;
  } else if (e instanceof RemoteError) {
    const ok = /^[1-9][0-9]{2}$/.test(`${e.code}`) && (!remote || (e.code === remote.code &&
      e.description === remote.description && (!("data" in remote) || same(e.data, remote.data))));
    if (!ok) wrong = `expected ${JSON.stringify(remote).slice(0, 80)}`;
  }
  const seen = got.ok ? `resolved with ${show(`${JSON.stringify(got.value)}`)}` : errorText(e);
  return wrong && `${seen}: ${wrong}`;
}

Deno.test(`fuzz - ${REPLY_TABLE.length}+${RANDOM_REPLIES} hostile replies each settle once, typed, and the endpoint keeps working (seed ${SEED})`, async () => {
  await using server = await startNatsServer();
  await using goodNc = await connection(server);
  await using good = new Endpoint(natsTransport(goodNc));
  good.handle(Good, (n) => n + 1);
  await using hostile = await RawNats.open(server, "fuzz.r.*");
  let current: ReplyCase | undefined;
  hostile.onMsg = (m) => current && hostile.publish(m.reply, "", current.header, current.body);
  const settles = new Map<string, SettleEvent[]>();
  let lastId: string | undefined;
  const open = async () => {
    const nc = await connectWs(server);
    const endpoint = new Endpoint(natsTransport(nc), { timeout: TIMEOUT });
    endpoint.addEventListener("request", (e) => lastId = e.id);
    endpoint.addEventListener("settle", (e) => settles.set(e.id, [...settles.get(e.id) ?? [], e]));
    return { endpoint, close: () => endpoint.close().then(() => nc.close()) };
  };
  let caller = await open();
  const random = prng(SEED);
  const randoms = Array.from({ length: RANDOM_REPLIES }, (_, i) => randomReply(random, i));
  let failures: string[];
  try {
    await goodNc.flush();
    failures = await fuzz(
      [...REPLY_TABLE, ...randoms],
      async (c) => {
        current = c;
        const request = caller.endpoint.request(Replies[c.kind] as typeof Replies.int, 1);
        const id = lastId!; // the request event is dispatched as the request is sent
        const got = await within(settle(request), TIMEOUT + 500);
        if (got === "stalled") return undefined;
        // The settle event comes before the promise settles; a second one would be seen below.
        const [event, ...more] = settles.get(id) ?? [], error = got.ok ? undefined : got.error;
        const once = event?.error === error && more.length === 0;
        return found(judgeReply(c, got), !once && "not one settle event");
      },
      async () => await caller.endpoint.request(Good, 41) === 42,
      async () => {
        // The connection is wedged: go on with a new one.
        await caller.close();
        caller = await open();
      },
    );
    assertStrictEquals(caller.endpoint.pending, 0);
  } finally {
    await caller.close();
  }
  for (const [id, events] of settles) {
    if (events.length !== 1) failures.push(`request ${id}: ${events.length} settle events`);
  }
  assertEquals(hostile.errors, []);
  assertStrictEquals(Object.hasOwn(Object.prototype, "polluted"), false);
  assertEquals(failures, []);
});

// ---- Responder path.

type Answer = 400 | 500 | "reply";
type RequestCase = Case & { want: Answer[]; reply?: string | undefined };
const Handled = {
  int: defineRequest({ subject: "fuzz.h.int", request: v.number(), response: int() }),
  enum: defineRequest({ subject: "fuzz.h.enum", request: v.string(), response: enumOf(MEMBERS) }),
  object: defineRequest({ subject: "fuzz.h.obj", request: Obj, response: object(Obj) }),
};
const HANDLERS = {
  int: (n: number) => n > 0 ? 1 : 0,
  enum: (s: string) => s.length % 2 ? "Approved" as const : "Rejected" as const,
  object: (o: { id: string; n: number }) => ({ id: o.id, n: o.n }),
};

/** The answer a request body deserves: a reply (with its wire text), or an error code. */
function expectRequest(kind: Kind, body: Bytes): { want: Answer[]; reply?: string } {
  const text = utf8(body);
  if (text?.startsWith("\ufeff")) {
    const rest = expectRequest(kind, body.subarray(3));
    return { ...rest, want: union<Answer>([400], rest.want) };
  }
  const json = attempt(() => ({ value: JSON.parse(text!) as unknown }));
  const checked = json && v.safeParse(Handled[kind].request as v.GenericSchema, json.value);
  if (!checked?.success) return { want: [400] };
  const out = (HANDLERS[kind] as (x: unknown) => unknown)(checked.output);
  const wire = kind === "int" ? String(out) : JSON.stringify(out);
  // JSON cannot carry every value a schema takes (Infinity becomes null): then no reply is valid.
  const fits = kind !== "object" || v.safeParse(Obj, JSON.parse(wire)).success;
  return fits ? { want: ["reply"], reply: wire } : { want: [400, 500] };
}
/** A request case; a malformed header block also allows a 400. */
function request(name: string, kind: Kind, body: string | Bytes, header?: Bytes, bad = false) {
  const b = bytes(body), { want, reply } = expectRequest(kind, b);
  return { name, kind, header, body: b, want: bad ? union<Answer>([400], want) : want, reply };
}
const timeoutBlock = (t: string) => bytes(`${OK}Callback-Timeout: ${t}\r\n\r\n`);
const T = timeoutBlock("1000");
const TIMEOUTS = "|-5|1e309|NaN|0|1|0.5|99999999999999999999|Infinity|0x10| 12 |abc".split("|");
// deno-fmt-ignore
const MALFORMED = ["HTTP/1.1 200 OK\r\nCallback-Timeout: 100\r\n\r\n", `${OK}Bad Key: 1\r\n\r\n`,
  `${OK}K\u00e9y: 1\r\n\r\n`, bytes(`${OK}Callback-Timeout: `, [0xff], "\r\n\r\n"), "NATS/1.0 503\r\n\r\n",
  "NATS/1.0 abc\r\n\r\n", `${OK}Callback-Timeout: 5`, "\r\n\r\n", `${OK}Callback-Timeout 5\r\n\r\n`,
].map((h) => bytes(h));
// deno-fmt-ignore
const REQUEST_TABLE: RequestCase[] = [
  ...KINDS.flatMap((k) => [request(`${k} not JSON`, k, "hello", T), request(`${k} empty body`, k, "", T),
    request(`${k} invalid UTF-8`, k, bytes([0xff, 0xfe]), T), request(`${k} deep array`, k, nest(DEEP), T),
    request(`${k} deep object`, k, nest(DEEP, '{"a":', "}", "1"), T),
    request(`${k} toString object`, k, '{"toString":1,"valueOf":1}', T)]),
  request("int 1e400", "int", "1e400", T),
  request("int whitespace", "int", " 5\n", T),
  request("enum invalid UTF-8 in a string", "enum", bytes('"a', [0xc3, 0x28], '"'), T),
  request("enum BOM", "enum", '\ufeff"ab"', T),
  request("object __proto__", "object", '{"__proto__":{"id":"a","n":1}}', T),
  request("object polluting __proto__", "object", '{"id":"a","n":1,"__proto__":{"polluted":true}}', T),
  request("object n 1e400", "object", '{"id":"a","n":1e400}', T),
  request("object long id", "object", JSON.stringify({ id: "y".repeat(400_000), n: 1 }), T),
  request("object invalid UTF-8 in id", "object", bytes('{"id":"', [0xff], '","n":1}'), T),
  ...TIMEOUTS.map((t) => request(`Callback-Timeout ${show(t)}`, "object", '{"id":"t","n":1}', timeoutBlock(t))),
  request("no headers", "object", '{"id":"t","n":1}'),
  ...MALFORMED.flatMap((h) => [request(`malformed ${show(h)}`, "object", '{"id":"m","n":2}', h, true),
    request(`malformed ${show(h)}, bad body`, "enum", "[", h, true)]),
];
function validRequest(r: Rand, kind: Kind): string {
  if (kind === "int") return JSON.stringify(pick(r, [between(r, -9, 9), 1.5, -3e10, 0]));
  if (kind === "enum") return JSON.stringify(randomText(r).join(""));
  return JSON.stringify({ id: randomText(r).join(""), n: pick(r, [0, 1.5, between(r, -99, 99)]) });
}
function randomRequest(r: Rand, i: number): RequestCase {
  const kind = pick(r, KINDS), roll = r();
  const [what, body] = randomBody(r, validRequest(r, kind));
  const header = roll < 0.2 ? undefined : roll < 0.92 ? timeoutBlock(pick(r, TIMEOUTS)) : undefined;
  const malformed = roll >= 0.92 ? pick(r, MALFORMED) : undefined;
  const name = `#${i} ${kind} ${what} ${show(body)} ${show(header ?? malformed ?? "")}`;
  return request(name, kind, body, header ?? malformed, malformed !== undefined);
}
function judgeAnswer(c: RequestCase, a: RawMsg): string | undefined {
  const text = lenient.decode(a.headers);
  if (!text.startsWith(OK)) return `answer with header block ${show(text)}`;
  const lines = text.split("\r\n").filter((l) => l.includes(":"));
  const headers = new Map(lines.map((l) => [l.split(":")[0], l.slice(l.indexOf(":") + 1).trim()]));
  const code = headers.get("Nats-Service-Error-Code"), kind = headers.get("Callback-Kind");
  const expected = `expected ${c.want.join(" or ")}${c.reply ? ` ${show(c.reply)}` : ""}`;
  if (code !== undefined) {
    const ok = c.want.includes(Number(code) as Answer);
    return ok
      ? undefined
      : `answered ${code} ${show(`${headers.get("Nats-Service-Error")}`)}, ${expected}`;
  }
  const body = lenient.decode(a.data);
  const fits = c.kind === "int"
    ? body === c.reply
    : attempt(() => same(JSON.parse(body), JSON.parse(c.reply!)));
  const ok = c.want.includes("reply") && kind === c.kind && fits;
  return ok ? undefined : `answered ${kind} ${show(body)}, ${expected}`;
}

Deno.test(`fuzz - ${REQUEST_TABLE.length}+${RANDOM_REQUESTS} hostile requests each get one answer, and the endpoint keeps answering (seed ${SEED})`, async () => {
  await using server = await startNatsServer();
  await using responderNc = await connection(server);
  await using callerNc = await connection(server);
  await using responder = new Endpoint(natsTransport(responderNc));
  await using caller = new Endpoint(natsTransport(callerNc), { timeout: TIMEOUT });
  responder.addEventListener("error", () => {}); // a 500 is judged by its answer
  responder.handle(Handled.int, HANDLERS.int);
  responder.handle(Handled.enum, HANDLERS.enum);
  responder.handle(Handled.object, (o, ctx) => {
    if (ctx.signal.aborted && ctx.deadline === undefined) throw new Error("aborted, no deadline");
    return HANDLERS.object(o);
  });
  await using raw = await RawNats.open(server, "fuzz.in.>");
  const answers = new Map<string, RawMsg[]>();
  const waiting = new Map<string, () => void>();
  raw.onMsg = (m) => {
    answers.set(m.subject, [...answers.get(m.subject) ?? [], m]);
    waiting.get(m.subject)?.();
  };
  const random = prng(SEED);
  const randoms = Array.from({ length: RANDOM_REQUESTS }, (_, i) => randomRequest(random, i));
  const cases = [...REQUEST_TABLE, ...randoms];
  await responderNc.flush();
  const failures = await fuzz(cases, async (c, i) => {
    const inbox = `fuzz.in.${i}`;
    const answered = new Promise<void>((resolve) => waiting.set(inbox, resolve));
    raw.publish(Handled[c.kind].subject, inbox, c.header, c.body);
    if (await within(answered, TIMEOUT) === "stalled") return undefined;
    return found(judgeAnswer(c, answers.get(inbox)![0]!));
  }, async (i) => (await caller.request(Handled.object, { id: "ok", n: i })).n === i);
  // A short grace, only to see duplicate answers.
  await raw.flush();
  await new Promise((resolve) => setTimeout(resolve, GRACE));
  for (const [inbox, got] of answers) {
    if (got.length > 1) {
      failures.push(`${cases[Number(inbox.slice(8))]?.name}: ${got.length} answers`);
    }
  }
  assertStrictEquals(caller.pending, 0);
  assertEquals(raw.errors, []);
  assertStrictEquals(Object.hasOwn(Object.prototype, "polluted"), false);
  assertEquals(failures, []);
});
