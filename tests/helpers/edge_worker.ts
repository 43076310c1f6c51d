/**
 * The Worker the workerd edge tests run: it re-exports `CallbacksObject`
 * (bound as `CALLBACKS`) and turns each test request into one
 * `edgeEndpoint(...).request(...)`, answering with the value, or with the
 * error's class name, fields and the library classes it is an instance of.
 *
 *   POST /call  { contract, body, timeout?, abortAfter?, shard? }
 *   GET  /stats?shard=   the object's stats (RPC)
 *   POST /raw   a message sent to the object as it is (RPC)
 *
 * @module
 */

import {
  CallbackError,
  DisconnectedError,
  InvalidReplyError,
  InvalidRequestError,
  NoReplyError,
  NoRespondersError,
  RemoteError,
  TimeoutError,
} from "../../mod.ts";
import {
  type CallbacksNamespace,
  CallbacksObject,
  type CallbacksStub,
  edgeEndpoint,
  EdgeError,
} from "../../cloudflare.ts";
import { EdgeApprove, EdgeNobody, EdgeOrder, EdgeStock } from "./edge_contracts.ts";

export { CallbacksObject };

const CONTRACTS = {
  stock: EdgeStock,
  approve: EdgeApprove,
  order: EdgeOrder,
  nobody: EdgeNobody,
} as const;

const CLASSES = {
  CallbackError,
  NoReplyError,
  TimeoutError,
  NoRespondersError,
  DisconnectedError,
  RemoteError,
  InvalidReplyError,
  InvalidRequestError,
  EdgeError,
} as const;

interface Env {
  CALLBACKS: CallbacksNamespace;
}

interface Call {
  contract: keyof typeof CONTRACTS;
  body: unknown;
  timeout?: number;
  abortAfter?: number;
  shard?: string;
}

function stubOf(env: Env, shard: string | null): CallbacksStub {
  return env.CALLBACKS.get(env.CALLBACKS.idFromName(shard ?? "callbacks")) as CallbacksStub;
}

/** The part of a fetch handler's context the Worker uses. */
interface Context {
  waitUntil(promise: Promise<unknown>): void;
}

async function call(input: Call, { env, ctx }: { env: Env; ctx: Context }): Promise<unknown> {
  const endpoint = edgeEndpoint(env.CALLBACKS, {
    ...(input.shard ? { shard: input.shard } : {}),
    waitUntil: (p) => ctx.waitUntil(p),
  });
  const controller = new AbortController();
  const timer = input.abortAfter === undefined
    ? undefined
    : setTimeout(() => controller.abort(new Error("aborted by the Worker")), input.abortAfter);
  const started = Date.now();
  try {
    const value = await endpoint.request(
      CONTRACTS[input.contract],
      input.body as never,
      {
        signal: controller.signal,
        ...(input.timeout === undefined ? {} : { timeout: input.timeout }),
      },
    );
    return { ok: true, value, pending: endpoint.pending };
  } catch (error) {
    const e = error as Record<string, unknown> & Error;
    return {
      ok: false,
      name: e.name,
      message: e.message,
      reason: e.reason,
      code: e.code,
      data: e.data,
      subject: e.subject,
      timeout: e.timeout,
      classes: Object.entries(CLASSES).filter(([, c]) => error instanceof c).map(([n]) => n),
      elapsed: Date.now() - started,
      pending: endpoint.pending,
    };
  } finally {
    clearTimeout(timer);
  }
}

export default {
  async fetch(request: Request, env: Env, ctx: Context): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/call" && request.method === "POST") {
      return Response.json(await call(await request.json() as Call, { env, ctx }));
    }
    if (url.pathname === "/stats") {
      const stub = stubOf(env, url.searchParams.get("shard"));
      if (typeof stub.request !== "function") {
        return Response.json(await (await stub.fetch("https://callbacks.invalid/stats")).json());
      }
      return Response.json(await (stub as unknown as { stats(): Promise<unknown> }).stats());
    }
    if (url.pathname === "/raw" && request.method === "POST") {
      return Response.json(await stubOf(env, null).request!(await request.json()));
    }
    return new Response("not found", { status: 404 });
  },
};
