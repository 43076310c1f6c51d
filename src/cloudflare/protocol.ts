/**
 * What a Worker and its callbacks Durable Object say to each other: one
 * versioned request message (the body already validated and encoded by the
 * Worker) and one answer (the reply's value, or the error it settled with).
 * Both are plain data, so they cross as Durable Object RPC arguments or as
 * JSON over `fetch`. Reading either never throws: a message that does not
 * fit becomes an {@linkcode EdgeError}.
 *
 * @module
 */

import { type Contract, defineRequest } from "../contract.ts";
import {
  ClosedError,
  DisconnectedError,
  EdgeError,
  type EdgeErrorReason,
  InvalidReplyError,
  InvalidRequestError,
  type Issue,
  NoRespondersError,
  PendingLimitError,
  RemoteError,
  TimeoutError,
} from "../errors.ts";
import { checkTimeout } from "../request.ts";
import { enumOf, int, object, type ResponseKind } from "../responses.ts";
import type { Schema } from "../schema.ts";
import { errorText } from "../wire.ts";

/** The version of the message shapes below; an object refuses any other. */
export const EDGE_VERSION = 1;

/** The reply kind, as it crosses: an enum's members travel with it. */
export type EdgeResponse =
  | { readonly kind: "int" }
  | { readonly kind: "enum"; readonly values: readonly (string | number)[] }
  | { readonly kind: "object" };

/** A callback request, from a Worker to the object. */
export interface EdgeRequest {
  /** {@linkcode EDGE_VERSION} */
  readonly v: number;
  /** The Worker's id for it, to cancel it by. */
  readonly id: string;
  /** The contract's subject. */
  readonly subject: string;
  /** The body as JSON text, validated against the contract by the Worker. */
  readonly body: string;
  /** Milliseconds the Worker waits. */
  readonly timeout: number;
  /** Extra headers to send. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** The reply's kind. */
  readonly response: EdgeResponse;
  /** The contract's `idempotent` flag. */
  readonly idempotent?: boolean | undefined;
}

/** An error as it crosses: its class name, message and the fields its class carries. */
export interface EdgeErrorData {
  /** The class's name: `TimeoutError`, `RemoteError`, … */
  readonly name: string;
  /** Its message. */
  readonly message: string;
  /** A `RemoteError`'s code. */
  readonly code?: number | undefined;
  /** A `RemoteError`'s description. */
  readonly description?: string | undefined;
  /** A `RemoteError`'s data. */
  readonly data?: unknown;
  /** An `InvalidReplyError`'s or `InvalidRequestError`'s issues. */
  readonly issues?: readonly Issue[] | undefined;
  /** An `EdgeError`'s reason. */
  readonly reason?: string | undefined;
}

/** The object's answer to an {@linkcode EdgeRequest}. */
export type EdgeAnswer =
  | { readonly v: number; readonly value: unknown; readonly error?: undefined }
  | { readonly v: number; readonly error: EdgeErrorData; readonly value?: undefined };

/** A request read by the object: the contract to send it with, and its options. */
export interface ReadRequest {
  readonly id: string;
  readonly contract: Contract;
  readonly body: unknown;
  readonly timeout: number;
  readonly headers: Readonly<Record<string, string>> | undefined;
}

/** Takes any value: the Worker validated the body, and validates the reply. */
const ANY: Schema = Object.freeze({
  "~standard": Object.freeze({
    version: 1 as const,
    vendor: "@seed/callbacks",
    validate: (value: unknown) => ({ value }),
  }),
});

const ANY_OBJECT = object(ANY);

/** The longest id an object keeps (a `crypto.randomUUID()` is 36 characters). */
const MAX_ID = 64;

/** An answer carrying an error. */
export function failed(error: unknown): EdgeAnswer {
  return { v: EDGE_VERSION, error: errorData(error) };
}

/** The longest message an object answers with: a hostile message is not echoed whole. */
const MAX_MESSAGE = 300;

function protocol(message: string): EdgeError {
  const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
  return new EdgeError(text, { reason: "protocol" });
}

/**
 * Reads a request as the object receives it: a request, or the error to
 * answer with (its shape, its version or one of its fields is wrong).
 */
export function readRequest(input: unknown): ReadRequest | EdgeError {
  try {
    const message = input as Partial<EdgeRequest> | null;
    if (typeof message !== "object" || message === null) {
      return protocol("the callbacks object was sent something that is not a request message");
    }
    if (message.v !== EDGE_VERSION) {
      return protocol(
        `the Worker speaks version ${String(message.v).slice(0, 20)} of the edge protocol and ` +
          `this callbacks object version ${EDGE_VERSION}: deploy the Worker and the object ` +
          `from the same version of @seed/callbacks`,
      );
    }
    const { id, subject, body, headers, response, idempotent } = message;
    if (typeof id !== "string" || id === "" || id.length > MAX_ID) {
      return protocol(`a request's id must be a string of 1 to ${MAX_ID} characters`);
    }
    if (typeof body !== "string") return protocol("a request's body must be JSON text");
    if (
      headers !== undefined &&
      (typeof headers !== "object" || headers === null || Array.isArray(headers))
    ) {
      return protocol("a request's headers must be an object of strings");
    }
    if (idempotent !== undefined && typeof idempotent !== "boolean") {
      return protocol("a request's idempotent flag must be a boolean");
    }
    const timeout = checkTimeout(message.timeout, "a request's timeout");
    const contract = defineRequest({
      subject: subject as string,
      request: ANY,
      response: responseOf(response),
      ...(idempotent ? { idempotent } : {}),
    });
    return { id, contract, body: JSON.parse(body), timeout, headers };
  } catch (error) {
    return protocol(`the callbacks object cannot read the request: ${errorText(error)}`);
  }
}

function responseOf(response: EdgeResponse | undefined): ResponseKind {
  switch (response?.kind) {
    case "int":
      return int();
    case "enum":
      if (!Array.isArray(response.values)) throw new TypeError("an enum reply needs its members");
      return enumOf(response.values);
    case "object":
      return ANY_OBJECT;
    default:
      throw new TypeError("the reply kind must be int, enum or object");
  }
}

/** The reply kind of a contract, as it crosses. */
export function responseData(response: ResponseKind): EdgeResponse {
  return response.kind === "enum" ? { kind: "enum", values: response.values } : {
    kind: response.kind,
  };
}

/** An error as plain data: its class name, message and the fields its class carries. */
export function errorData(error: unknown): EdgeErrorData {
  if (!(error instanceof Error)) {
    return { name: "EdgeError", message: errorText(error), reason: "object" };
  }
  const { name, message } = error;
  if (error instanceof RemoteError) {
    const { code, description, data } = error;
    return { name, message, code, description, data: plain(data) };
  }
  if (error instanceof InvalidReplyError || error instanceof InvalidRequestError) {
    return { name, message, issues: error.issues.map(plainIssue) };
  }
  if (error instanceof EdgeError) return { name, message, reason: error.reason };
  return { name, message };
}

/** What crosses of a value: JSON data (a remote error's data already is). */
function plain(value: unknown): unknown {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
}

function plainIssue(issue: Issue): Issue {
  const path = issue.path?.map((item) =>
    String(typeof item === "object" && item !== null ? item.key : item)
  );
  return path === undefined ? { message: String(issue.message) } : {
    message: String(issue.message),
    path,
  };
}

const REASONS: ReadonlySet<string> = new Set<EdgeErrorReason>([
  "config",
  "connect",
  "protocol",
  "object",
]);

/**
 * The error an answer carries, as the class the endpoint would have
 * rejected with; what is not one of the library's becomes an `EdgeError`.
 * `about` is the Worker's request: its subject and the time it could wait.
 */
export function errorOf(
  data: EdgeErrorData,
  about: { subject: string; timeout: number },
): Error {
  if (typeof data !== "object" || data === null) {
    return protocol(
      `the callbacks object's answer to ${about.subject} carries an error it cannot read`,
    );
  }
  const message = String(data.message);
  const issues = { issues: issuesOf(data.issues, message) };
  switch (data.name) {
    case "TimeoutError":
      return new TimeoutError(message, about);
    case "NoRespondersError":
      return new NoRespondersError(message, about);
    case "DisconnectedError":
      return new DisconnectedError(message, about);
    case "InvalidReplyError":
      return new InvalidReplyError(message, issues);
    case "InvalidRequestError":
      return new InvalidRequestError(message, issues);
    case "ClosedError":
      return new ClosedError(message);
    case "PendingLimitError":
      return new PendingLimitError(message);
    case "RemoteError":
      if (Number.isInteger(data.code) && typeof data.description === "string") {
        return new RemoteError(message, {
          code: data.code!,
          description: data.description,
          data: data.data,
        });
      }
      break;
    case "EdgeError":
      if (REASONS.has(data.reason!)) {
        return new EdgeError(message, { reason: data.reason as EdgeErrorReason });
      }
      break;
  }
  return new EdgeError(
    `the callbacks object failed: ${String(data.name).slice(0, 40)}: ${message}`,
    { reason: "object" },
  );
}

/** An answer's issues, as the error classes carry them: each with a message (text). */
function issuesOf(issues: unknown, message: string): Issue[] {
  if (!Array.isArray(issues)) return [{ message }];
  const read = issues.slice(0, 100).map((issue): Issue => {
    const text = (issue as { message?: unknown } | null)?.message;
    const path = (issue as { path?: unknown } | null)?.path;
    const item = { message: typeof text === "string" ? text : String(text) };
    return Array.isArray(path) ? { ...item, path: path.map(String) } : item;
  });
  return read.length === 0 ? [{ message }] : read;
}
