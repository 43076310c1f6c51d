/**
 * NATS micro services: an endpoint's handlers as a service that NATS tooling
 * discovers, measures and calls through `$SRV.PING`, `$SRV.INFO` and
 * `$SRV.STATS` (`nats micro ls|info|stats`, nats.go `micro`,
 * `@nats-io/services`). Each endpoint also publishes its contract: the
 * reply's kind and the request and response as JSON Schema, in its
 * metadata.
 *
 * @example A discoverable inventory service
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, Endpoint, int, memoryTransport, ReplyError } from "@seed/callbacks";
 * import { addService } from "@seed/callbacks/micro";
 *
 * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
 * await using endpoint = new Endpoint(memoryTransport());
 * await using svc = await addService(endpoint, {
 *   name: "inventory",
 *   version: "1.2.0",
 *   description: "Stock levels",
 *   metadata: { team: "stock" },
 * });
 * svc.handle(CheckStock, ({ sku }) => {
 *   if (sku === "") throw new ReplyError(400, "sku is empty");
 *   return 5;
 * }, { name: "check-stock" });
 * await endpoint.request(CheckStock, { sku: "A-1" });
 * const [stats] = svc.stats().endpoints;
 * assert(stats?.num_requests === 1 && stats.num_errors === 0);
 * ```
 *
 * @module
 */

import { toJsonSchema } from "@valibot/to-json-schema";
import type { Contract } from "./src/contract.ts";
import { ClosedError } from "./src/errors.ts";
import type { Endpoint } from "./src/endpoint.ts";
import type { ResponseKind } from "./src/responses.ts";
import type { Schema } from "./src/schema.ts";
import { Service, type ServiceConfig } from "./src/micro/service.ts";

export type { Service, ServiceConfig, ServiceHandleOptions } from "./src/micro/service.ts";
export type {
  EndpointInfo,
  EndpointStats,
  ServiceIdentity,
  ServiceInfo,
  ServicePing,
  ServiceStats,
} from "./src/micro/protocol.ts";

/**
 * Makes an endpoint's handlers a NATS micro service: adds a service instance
 * that answers `$SRV.PING|INFO|STATS`, `$SRV.<VERB>.<name>` and
 * `$SRV.<VERB>.<name>.<id>` (no queue group: every instance answers), and
 * whose `handle()` registers counted, described endpoints.
 *
 * @param endpoint The endpoint whose handlers the service is made of; closing it stops the service.
 * @param config `name` (letters, digits, `_`, `-`), `version` (semver), `description`, `metadata`.
 * @returns The service, once its discovery subscriptions have reached the server.
 * @throws {TypeError} A name, version or metadata the protocol forbids; not an endpoint.
 * @throws {RangeError} A name too long for the `$SRV` subjects.
 * @throws {ClosedError} The endpoint is closed.
 * @throws {DisconnectedError} The connection closed before the server had the subscriptions.
 *
 * @example Adding a service and reading its INFO
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, Endpoint, enumOf, memoryTransport } from "@seed/callbacks";
 * import { addService } from "@seed/callbacks/micro";
 *
 * const Approve = defineRequest({ subject: "orders.approve", request: v.object({ orderId: v.string() }), response: enumOf(["Approved", "Rejected"]) });
 * await using endpoint = new Endpoint(memoryTransport());
 * await using svc = await addService(endpoint, { name: "orders", version: "2.0.0" });
 * svc.handle(Approve, () => "Approved");
 * const [info] = svc.info().endpoints;
 * assert(info?.name === "orders-approve" && info.queue_group === "q");
 * assert(JSON.parse(info.metadata.response_schema!).enum.length === 2);
 * ```
 */
export async function addService(endpoint: Endpoint, config: ServiceConfig): Promise<Service> {
  const service = new Service(endpoint, config, { describe: describeContract });
  try {
    await service.ready;
  } catch (error) {
    await service.stop();
    throw error;
  }
  if (service.stopped) {
    throw new ClosedError(
      "addService: the endpoint was closed before the service was ready: add the service to an open endpoint",
    );
  }
  return service;
}

const DRAFT_07 = "http://json-schema.org/draft-07/schema#";

/**
 * A contract's `kind`, `request_schema` and `response_schema`, for its
 * endpoint's metadata. A schema that cannot be expressed in JSON Schema is
 * left out rather than published wrong.
 */
function describeContract(contract: Contract): Record<string, string> {
  const metadata: Record<string, string> = { kind: contract.response.kind };
  const request = jsonSchemaOf(contract.request);
  if (request !== undefined) metadata.request_schema = request;
  const response = responseSchemaOf(contract.response);
  if (response !== undefined) metadata.response_schema = response;
  return metadata;
}

function responseSchemaOf(response: ResponseKind): string | undefined {
  switch (response.kind) {
    case "int":
      return JSON.stringify({
        $schema: DRAFT_07,
        type: "integer",
        minimum: Number.MIN_SAFE_INTEGER,
        maximum: Number.MAX_SAFE_INTEGER,
      });
    case "enum":
      return JSON.stringify({ $schema: DRAFT_07, enum: response.values });
    case "object":
      return jsonSchemaOf(response.schema);
  }
}

/**
 * The JSON Schema (draft-07) of what a schema accepts, JSON-encoded: valibot
 * schemas through valibot's converter, other Standard Schemas through their
 * own `~standard.jsonSchema` when they have one; `undefined` when it cannot
 * be converted (a transform, a date, a custom check, …).
 */
function jsonSchemaOf(schema: Schema): string | undefined {
  try {
    const standard = schema["~standard"] as Schema["~standard"] & {
      jsonSchema?: { input?: (options: { target: string }) => unknown };
    };
    const converted = standard.vendor === "valibot"
      ? toJsonSchema(schema as unknown as Parameters<typeof toJsonSchema>[0], {
        typeMode: "input",
        errorMode: "throw",
      })
      : standard.jsonSchema?.input?.({ target: "draft-07" });
    return converted === undefined ? undefined : JSON.stringify(converted);
  } catch {
    return undefined;
  }
}
