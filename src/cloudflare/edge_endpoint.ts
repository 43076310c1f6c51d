/**
 * The Worker's side of the edge: `request()` as an endpoint has it, sent
 * through the callbacks Durable Object instead of a NATS connection of the
 * Worker's own. The body is validated and encoded here, before anything
 * crosses; the reply is validated here against the contract; a signal stays
 * here (it cannot cross) and an abort tells the object to stop waiting.
 *
 * @module
 */

import { assertContract, type Contract, type ReplyOf, type RequestOf } from "../contract.ts";
import { DisconnectedError, EdgeError, TimeoutError } from "../errors.ts";
import type { RequestOptions } from "../options.ts";
import { invalid, summarize } from "../reply.ts";
import { checkTimeout, encodeRequest, MAX_TIMEOUT } from "../request.ts";
import { checkResponse } from "../responses.ts";
import { decodeText, errorText } from "../wire.ts";
import {
  EDGE_VERSION,
  type EdgeAnswer,
  type EdgeRequest,
  errorOf,
  responseData,
} from "./protocol.ts";

/**
 * A stub of the callbacks object: Durable Object RPC methods where the
 * Worker's compatibility date has them (2024-04-03 or later), `fetch`
 * always.
 */
export interface CallbacksStub {
  /** Durable Object RPC: sends a request. */
  request?(message: EdgeRequest): Promise<unknown>;
  /** Durable Object RPC: stops waiting for one. */
  cancel?(id: string): unknown;
  /** The object's `fetch` handler. */
  fetch(input: string, init?: RequestInit): Promise<Response>;
}

/** The Durable Object namespace binding of `CallbacksObject` (`env.CALLBACKS`). */
export interface CallbacksNamespace {
  /** The id of the object of a name. */
  idFromName(name: string): unknown;
  /** A stub of the object of an id. */
  get(id: unknown): unknown;
}

/** Options of {@linkcode edgeEndpoint}. */
export interface EdgeEndpointOptions {
  /**
   * Which object serves the requests: each name is one object and one NATS
   * connection. Spread load over a few by picking one of a few names per
   * request (`String(Math.floor(Math.random() * 4))`). Default `"callbacks"`.
   */
  shard?: string;
  /** Default time to wait for a reply, in milliseconds. Default 30,000. */
  timeout?: number;
  /**
   * The fetch handler's `ctx.waitUntil`: keeps the Worker running until the
   * object was told to stop waiting for an aborted request. Without it the
   * runtime may drop that message once the response is sent, and the
   * object waits until the request's deadline.
   */
  waitUntil?: (promise: Promise<unknown>) => void;
}

/** Requests through the callbacks object: see {@linkcode edgeEndpoint}. */
export interface EdgeEndpoint {
  /**
   * Sends a request and resolves with its reply, validated and typed by the
   * contract; rejects with the errors of `Endpoint.request`, and with an
   * `EdgeError` when the object cannot serve (its settings, its version).
   */
  request<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options?: RequestOptions,
  ): Promise<ReplyOf<C>>;
  /** Requests this endpoint is waiting on. */
  readonly pending: number;
}

/**
 * How long a Worker waits past a request's timeout for the object's own
 * answer (its `TimeoutError` or `DisconnectedError`) before it gives up on
 * the object.
 */
export const EDGE_GRACE_MS = 1_000;

const DEFAULT_TIMEOUT = 30_000;

/** Where the `fetch` fallback sends (the host is not looked up: the stub takes it). */
const FETCH_BASE = "https://callbacks.invalid/";

/**
 * An endpoint for a Worker whose callbacks go through a `CallbacksObject`
 * (a Durable Object holding one NATS connection for many Workers), so the
 * Worker opens no connection of its own. Cheap: make one per HTTP request.
 *
 * @param namespace The Durable Object namespace `CallbacksObject` is bound to.
 * @param options `shard` (which object), `timeout`, `waitUntil`.
 * @returns An endpoint with `request()`.
 *
 * @example A Worker route over the callbacks object
 * ```ts ignore
 * import { CallbacksObject, edgeEndpoint } from "@seed/callbacks/cloudflare";
 * export { CallbacksObject };
 *
 * export default {
 *   async fetch(request: Request, env: Env, ctx: ExecutionContext) {
 *     const endpoint = edgeEndpoint(env.CALLBACKS, { waitUntil: (p) => ctx.waitUntil(p) });
 *     const left = await endpoint.request(CheckStock, { sku: "A-1" }, {
 *       timeout: 2_000,
 *       signal: request.signal,
 *     });
 *     return Response.json({ left });
 *   },
 * };
 * ```
 */
export function edgeEndpoint(
  namespace: CallbacksNamespace,
  options: EdgeEndpointOptions = {},
): EdgeEndpoint {
  if (
    typeof namespace?.idFromName !== "function" || typeof namespace.get !== "function"
  ) {
    throw new TypeError(
      "edgeEndpoint takes the Durable Object namespace CallbacksObject is bound to, e.g. env.CALLBACKS",
    );
  }
  const { shard = "callbacks" } = options;
  if (typeof shard !== "string" || shard === "") {
    throw new TypeError(`edgeEndpoint option shard must be a non-empty string, got ${shard}`);
  }
  const timeout = options.timeout === undefined
    ? DEFAULT_TIMEOUT
    : checkTimeout(options.timeout, "edgeEndpoint option timeout");
  const { waitUntil } = options;
  if (waitUntil !== undefined && typeof waitUntil !== "function") {
    throw new TypeError("edgeEndpoint option waitUntil must be a function, e.g. ctx.waitUntil");
  }
  const stub = namespace.get(namespace.idFromName(shard)) as CallbacksStub;
  return new Edge(stub, { timeout, waitUntil });
}

class Edge implements EdgeEndpoint {
  readonly #stub: CallbacksStub;
  readonly #timeout: number;
  readonly #waitUntil: ((promise: Promise<unknown>) => void) | undefined;
  #pending = 0;

  constructor(
    stub: CallbacksStub,
    options: { timeout: number; waitUntil: ((promise: Promise<unknown>) => void) | undefined },
  ) {
    this.#stub = stub;
    this.#timeout = options.timeout;
    this.#waitUntil = options.waitUntil;
  }

  get pending(): number {
    return this.#pending;
  }

  async request<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options: RequestOptions = {},
  ): Promise<ReplyOf<C>> {
    assertContract(contract, "request");
    const timeout = options.timeout === undefined
      ? this.#timeout
      : checkTimeout(options.timeout, "request option timeout");
    const { signal, headers } = options;
    signal?.throwIfAborted();
    const { subject } = contract;
    const { data } = encodeRequest(contract, body, { headers, timeout, maxPayload: Infinity });
    const id = crypto.randomUUID();
    const message: EdgeRequest = {
      v: EDGE_VERSION,
      id,
      subject,
      body: decodeText(data),
      timeout,
      // What the endpoint would send: an object of the names and values (none for null).
      headers: headers == null ? undefined : { ...headers },
      response: responseData(contract.response),
      idempotent: contract.idempotent,
    };
    let answered = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    this.#pending++;
    try {
      const answer = await new Promise<unknown>((resolve, reject) => {
        if (signal) {
          onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
        }
        timer = setTimeout(
          () =>
            reject(
              new TimeoutError(
                `no answer from the callbacks object for ${subject} within ${timeout} ms ` +
                  `(and ${EDGE_GRACE_MS} ms of grace): check that the object, NATS and a ` +
                  `responder run, or raise the timeout`,
                { subject, timeout },
              ),
            ),
          Math.min(timeout + EDGE_GRACE_MS, MAX_TIMEOUT),
        );
        // A stub that throws, or answers with no promise, fails as one that rejects.
        Promise.resolve().then(() => this.#send(message)).then((answer) => {
          answered = true;
          resolve(answer);
        }, (cause) => {
          answered = true;
          reject(
            new DisconnectedError(
              `the callbacks object failed while ${subject} waited (${errorText(cause)}): it ` +
                `may or may not have been processed; send again if that is safe`,
              { cause, subject, timeout },
            ),
          );
        });
      });
      return readAnswer(answer, { contract, timeout }) as ReplyOf<C>;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal!.removeEventListener("abort", onAbort);
      this.#pending--;
      // Aborted, or no answer in time: the object stops waiting too.
      if (!answered) this.#cancel(id);
    }
  }

  #send(message: EdgeRequest): Promise<unknown> {
    const stub = this.#stub;
    if (typeof stub.request === "function") return stub.request(message);
    return stub.fetch(`${FETCH_BASE}request`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(message),
    }).then(async (response) => {
      if (response.ok) return await response.json().catch(() => undefined); // read as malformed
      await response.body?.cancel();
      const answer: EdgeAnswer = {
        v: EDGE_VERSION,
        error: {
          name: "EdgeError",
          reason: "object",
          message: `the callbacks object answered HTTP ${response.status}: check that ` +
            `CallbacksObject is the class bound to this Durable Object namespace`,
        },
      };
      return answer;
    });
  }

  #cancel(id: string): void {
    const stub = this.#stub;
    let sent: Promise<unknown>;
    try {
      sent = Promise.resolve(
        typeof stub.cancel === "function" ? stub.cancel(id) : stub.fetch(`${FETCH_BASE}cancel`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ v: EDGE_VERSION, id }),
        }).then((response) => response.body?.cancel()),
      );
    } catch (error) {
      sent = Promise.reject(error);
    }
    // Lost, the object stops at the request's deadline anyway.
    const done = sent.catch(() => {});
    try {
      this.#waitUntil?.(done);
    } catch {
      // not in a request any more: as above
    }
  }
}

/** The reply's value, validated against the contract; throws the error the answer carries. */
function readAnswer(
  input: unknown,
  { contract, timeout }: { contract: Contract; timeout: number },
): unknown {
  let error: Error;
  try {
    const answer = input as { v?: unknown; value?: unknown; error?: EdgeAnswer["error"] } | null;
    if (typeof answer !== "object" || answer === null || answer.v !== EDGE_VERSION) {
      error = new EdgeError(
        `the callbacks object answered ${contract.subject} in a shape this Worker does not ` +
          `read (edge protocol version ${EDGE_VERSION}): deploy the Worker and the object ` +
          `from the same version of @seed/callbacks`,
        { reason: "protocol" },
      );
    } else if (answer.error !== undefined) {
      error = errorOf(answer.error, { subject: contract.subject, timeout });
    } else if (!("value" in answer)) {
      error = new EdgeError(
        `the callbacks object answered ${contract.subject} with neither a value nor an error`,
        { reason: "protocol" },
      );
    } else {
      const checked = checkResponse(contract.response, answer.value);
      if (checked.ok) return checked.value;
      error = invalid(contract.subject, summarize(checked.issues), {
        issues: checked.issues,
      }).error;
    }
  } catch (cause) {
    error = new EdgeError(
      `the callbacks object's answer to ${contract.subject} cannot be read (${errorText(cause)})`,
      { reason: "protocol", cause },
    );
  }
  throw error;
}
