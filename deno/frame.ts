/**
 * RFC 6455 framing for a WebSocket client: {@linkcode encodeFrame} builds one
 * masked frame in one buffer (header, mask key and payload together, so the
 * frame goes out in one write), {@linkcode FrameDecoder} parses the server's
 * frames incrementally from the bytes read off the socket.
 *
 * @module
 */

/** Frame opcodes (RFC 6455 §5.2). */
export const Opcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;

/** A frame opcode. */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/** One decoded frame. */
export interface Frame {
  /** the FIN bit: last fragment of a message */
  fin: boolean;
  /** the opcode */
  opcode: number;
  /** the (unmasked) payload, a buffer of its own */
  payload: Uint8Array<ArrayBuffer>;
}

/** A protocol violation by the peer; `code` is the close code to answer with. */
export class FrameError extends Error {
  /** close code (1002 protocol error, 1009 too big) */
  readonly code: number;
  /** @param code close code @param message what was wrong */
  constructor(code: number, message: string) {
    super(message);
    this.name = "FrameError";
    this.code = code;
  }
}

/** Whether an opcode is a control frame (close, ping, pong). */
export function isControl(opcode: number): boolean {
  return (opcode & 0x8) !== 0;
}

// Mask keys come from a pool of random bytes refilled in bulk: one
// getRandomValues call per 1024 frames instead of one per frame.
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

function maskKey(out: Uint8Array, at: number): void {
  if (poolOffset + 4 > POOL_SIZE) {
    crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  out[at] = pool[poolOffset]!;
  out[at + 1] = pool[poolOffset + 1]!;
  out[at + 2] = pool[poolOffset + 2]!;
  out[at + 3] = pool[poolOffset + 3]!;
  poolOffset += 4;
}

/**
 * Encodes one client frame (masked, as RFC 6455 §5.3 requires) into a single
 * buffer: 2–14 header bytes, then the masked payload.
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
): Uint8Array<ArrayBuffer> {
  const len = payload.byteLength;
  const lenBytes = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const headerLen = 2 + lenBytes + 4;
  const out = new Uint8Array(headerLen + len);
  out[0] = (fin ? 0x80 : 0) | (opcode & 0x0f);
  if (lenBytes === 0) {
    out[1] = 0x80 | len;
  } else if (lenBytes === 2) {
    out[1] = 0x80 | 126;
    out[2] = len >>> 8;
    out[3] = len & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(len));
  }
  const k = headerLen - 4;
  maskKey(out, k);
  const m0 = out[k]!, m1 = out[k + 1]!, m2 = out[k + 2]!, m3 = out[k + 3]!;
  out.set(payload, headerLen);
  let i = headerLen;
  const end = headerLen + len;
  const end4 = end - ((end - headerLen) & 3);
  for (; i < end4; i += 4) {
    out[i] = out[i]! ^ m0;
    out[i + 1] = out[i + 1]! ^ m1;
    out[i + 2] = out[i + 2]! ^ m2;
    out[i + 3] = out[i + 3]! ^ m3;
  }
  const mask = [m0, m1, m2, m3];
  for (let j = 0; i < end; i++, j++) out[i] = out[i]! ^ mask[j]!;
  return out;
}

/** What {@linkcode FrameDecoder.push} decoded from one chunk. */
export interface Decoded {
  /** the frames completed, in order, including those before a protocol error */
  frames: Frame[];
  /**
   * the protocol violation that stopped decoding, or `undefined`; it comes
   * after `frames` on the wire, and the decoder stays failed (every later
   * push returns it again with no frames)
   */
  error: FrameError | undefined;
}

/**
 * Incremental decoder of server frames. Feed it what was read with
 * {@linkcode FrameDecoder.push}; it returns the frames completed so far.
 * Server frames must not be masked and no extension is negotiated, so RSV
 * bits must be 0; control frames must be final and at most 125 bytes.
 */
export class FrameDecoder {
  readonly #maxPayload: number;
  #header = new Uint8Array(14);
  #headerLen = 0;
  #need = 2; // header bytes needed so far (grows once the length field is known)
  #payload: Uint8Array<ArrayBuffer> | undefined;
  #payloadLen = 0;
  #filled = 0;
  #fin = false;
  #opcode = 0;
  #error: FrameError | undefined;

  /** @param maxPayload largest payload accepted in one frame */
  constructor(maxPayload: number) {
    this.#maxPayload = maxPayload;
  }

  /**
   * Consumes `chunk` (copied; the caller may reuse it) and returns the
   * frames it completed. A protocol violation does not throw: it ends the
   * chunk's decoding and is returned as `error` after the frames decoded
   * before it, so that the caller can act on those before failing the
   * connection.
   */
  push(chunk: Uint8Array): Decoded {
    const frames: Frame[] = [];
    if (this.#error) return { frames, error: this.#error };
    try {
      this.#decode(chunk, frames);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.#error = err;
    }
    return { frames, error: this.#error };
  }

  #decode(chunk: Uint8Array, frames: Frame[]): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.#payload === undefined) {
        // header
        const take = Math.min(this.#need - this.#headerLen, chunk.length - off);
        this.#header.set(chunk.subarray(off, off + take), this.#headerLen);
        this.#headerLen += take;
        off += take;
        if (this.#headerLen < this.#need) break;
        if (!this.#parseHeader()) continue; // needs extended length bytes
        if (this.#payloadLen === 0) {
          frames.push(this.#complete());
          continue;
        }
      }
      const payload = this.#payload!;
      const take = Math.min(this.#payloadLen - this.#filled, chunk.length - off);
      payload.set(chunk.subarray(off, off + take), this.#filled);
      this.#filled += take;
      off += take;
      if (this.#filled === this.#payloadLen) frames.push(this.#complete());
    }
  }

  /** true when the header is complete and the payload buffer allocated */
  #parseHeader(): boolean {
    const h = this.#header;
    const b0 = h[0]!, b1 = h[1]!;
    if (this.#need === 2) {
      if (b0 & 0x70) throw new FrameError(1002, "reserved bits set without a negotiated extension");
      if (b1 & 0x80) throw new FrameError(1002, "server frames must not be masked");
      const opcode = b0 & 0x0f;
      if (![0x0, 0x1, 0x2, 0x8, 0x9, 0xa].includes(opcode)) {
        throw new FrameError(1002, `unknown opcode 0x${opcode.toString(16)}`);
      }
      const len7 = b1 & 0x7f;
      if (isControl(opcode)) {
        if (!(b0 & 0x80)) throw new FrameError(1002, "fragmented control frame");
        if (len7 > 125) throw new FrameError(1002, "control frame payload over 125 bytes");
      }
      if (len7 === 126) {
        this.#need = 4;
        return false;
      }
      if (len7 === 127) {
        this.#need = 10;
        return false;
      }
      this.#start(b0, len7);
      return true;
    }
    const view = new DataView(h.buffer, 0, this.#need);
    let len: number;
    if (this.#need === 4) {
      len = view.getUint16(2);
    } else {
      const big = view.getBigUint64(2);
      if (big >> 63n) throw new FrameError(1002, "64-bit length with the high bit set");
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameError(1009, "frame too large");
      len = Number(big);
    }
    this.#start(b0, len);
    return true;
  }

  #start(b0: number, len: number): void {
    if (len > this.#maxPayload) {
      throw new FrameError(1009, `frame of ${len} bytes over the ${this.#maxPayload} byte limit`);
    }
    this.#fin = (b0 & 0x80) !== 0;
    this.#opcode = b0 & 0x0f;
    this.#payloadLen = len;
    this.#payload = new Uint8Array(len);
    this.#filled = 0;
  }

  #complete(): Frame {
    const frame = { fin: this.#fin, opcode: this.#opcode, payload: this.#payload! };
    this.#payload = undefined;
    this.#headerLen = 0;
    this.#need = 2;
    return frame;
  }
}
