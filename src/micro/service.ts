/**
 * A NATS micro service made of an endpoint's handlers: it answers the
 * `$SRV.PING|INFO|STATS` discovery requests and counts what its handlers
 * serve.
 *
 * @module
 */

import { assertContract, type Contract } from "../contract.ts";
import type { Endpoint } from "../endpoint.ts";
import { ClosedError } from "../errors.ts";
import { type EndpointInternals, internalsOf, type ServeObserver } from "../internals.ts";
import { type HandleOptions, queueOf, type Registration } from "../options.ts";
import type { Handler } from "../responder.ts";
import type { TransportMessage, TransportSubscription } from "../transport.ts";
import { encodeText, errorHeaders, errorText } from "../wire.ts";
import { EndpointCounter } from "./endpoint_counter.ts";
import {
  checkMetadata,
  checkName,
  checkVersion,
  controlSubjects,
  type EndpointInfo,
  endpointName,
  instanceId,
  MAX_SERVICE_NAME,
  type ServiceInfo,
  type ServicePing,
  type ServiceStats,
  type Verb,
  VERBS,
} from "./protocol.ts";

/** What {@linkcode addService} takes. */
export interface ServiceConfig {
  /** The service's name, shared by all its instances: letters, digits, `_` and `-`. */
  name: string;
  /** Its version, a semantic version such as `1.2.0`. */
  version: string;
  /** What it does, for people running `nats micro info`. */
  description?: string;
  /** Facts about it for tooling (string values), e.g. `{ team: "stock" }`. */
  metadata?: Readonly<Record<string, string>>;
}

/** Options of {@linkcode Service.handle}. */
export interface ServiceHandleOptions extends HandleOptions {
  /** The endpoint's name in the service; by default made from the contract's subject (`stock.check` → `stock-check`). */
  name?: string;
  /** Facts about the endpoint for tooling; `kind`, `request_schema` and `response_schema` are the service's own. */
  metadata?: Readonly<Record<string, string>>;
}

/** Describes a contract for `$SRV.INFO`: its kind and JSON Schemas. */
export type ContractDescriber = (contract: Contract) => Record<string, string>;

interface ServiceEndpoint {
  readonly info: EndpointInfo;
  readonly counter: EndpointCounter;
  readonly registration: Registration;
}

/**
 * A NATS micro service instance over an endpoint, made by
 * {@linkcode addService}. Its handlers are the endpoint's handlers; discovery
 * tools find it by name and id, and read each endpoint's contract from its
 * metadata.
 *
 * @example A service with one endpoint
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, Endpoint, int, memoryTransport } from "@seed/callbacks";
 * import { addService } from "@seed/callbacks/micro";
 *
 * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
 * await using endpoint = new Endpoint(memoryTransport());
 * await using svc = await addService(endpoint, { name: "inventory", version: "1.2.0" });
 * svc.handle(CheckStock, ({ sku }) => sku === "A-1" ? 5 : 0);
 * assert(await endpoint.request(CheckStock, { sku: "A-1" }) === 5);
 * assert(svc.stats().endpoints[0]?.num_requests === 1);
 * ```
 */
export class Service implements AsyncDisposable {
  /** This instance's id: 22 letters and digits, unique per instance. */
  readonly id: string = instanceId();
  /** The service's name. */
  readonly name: string;
  /** The service's version. */
  readonly version: string;
  /** The service's description; `""` when none was given. */
  readonly description: string;
  /** The service's metadata. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly #endpoint: Endpoint;
  readonly #internals: EndpointInternals;
  readonly #describe: ContractDescriber;
  readonly #endpoints = new Map<string, ServiceEndpoint>();
  #started = new Date().toISOString();
  #stopped = false;
  readonly #discovery: Registration;

  /**
   * Use {@linkcode addService}: it checks the configuration and resolves once
   * the service can be discovered.
   *
   * @param endpoint The endpoint whose handlers the service is made of.
   * @param config The service's name, version, description and metadata.
   * @param options `describe` describes a contract for `$SRV.INFO`.
   */
  constructor(endpoint: Endpoint, config: ServiceConfig, options: { describe: ContractDescriber }) {
    const internals = this.#internals = internalsOf(endpoint, "addService");
    this.#endpoint = endpoint;
    if (typeof config !== "object" || config === null) {
      throw new TypeError(
        'addService needs { name, version }, e.g. { name: "inventory", version: "1.0.0" }',
      );
    }
    this.name = checkName(config.name, "addService: name");
    if (this.name.length > MAX_SERVICE_NAME) {
      throw new RangeError(
        `addService: the name is ${this.name.length} characters; it goes into the $SRV ` +
          `subjects, which tools must be able to send requests to, so it may be at most ` +
          `${MAX_SERVICE_NAME}: use a shorter name`,
      );
    }
    this.version = checkVersion(config.version);
    if (config.description !== undefined && typeof config.description !== "string") {
      throw new TypeError("addService: description must be a string");
    }
    this.description = config.description ?? "";
    this.metadata = checkMetadata(config.metadata, "addService: metadata");
    this.#describe = options.describe;
    if (endpoint.closed) {
      throw new ClosedError(
        "addService: the endpoint is closed: add the service to an open endpoint",
      );
    }
    const { transport } = internals;
    const subscriptions: TransportSubscription[] = [];
    // The nine subscriptions fail together (permissions): one report says it.
    let reported = false;
    const onError = (error: Error) => {
      if (!reported) internals.report(`$SRV.*.${this.name}`, error);
      reported = true;
    };
    try {
      for (const verb of VERBS) {
        for (const subject of controlSubjects(verb, this)) {
          subscriptions.push(
            transport.subscribe(subject, (message) => this.#discover(verb, message), { onError }),
          );
        }
      }
    } catch (error) {
      for (const subscription of subscriptions) subscription.unsubscribe();
      throw error;
    }
    this.#discovery = internals.register(
      () => {
        this.#stopped = true;
        for (const subscription of subscriptions) subscription.unsubscribe();
        for (const { registration } of [...this.#endpoints.values()]) registration.stop();
      },
      Promise.all(subscriptions.map((subscription) => subscription.ready)).then(() => {}),
    );
  }

  /** Resolves once every discovery subscription has reached the server. */
  get ready(): Promise<void> {
    return this.#discovery.ready;
  }

  /** Whether the service was stopped (by `stop()`, or by closing its endpoint). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Answers a contract's requests as one of the service's endpoints: the
   * endpoint's `handle()`, counted in `$SRV.STATS` and described in
   * `$SRV.INFO` (name, subject, queue group, and the contract's kind and JSON
   * Schemas in its metadata).
   *
   * @param contract The contract to answer.
   * @param handler Returns the reply (or a promise of it).
   * @param options `name` (default: from the subject), `queue` (default `"q"`), `metadata`.
   * @returns A registration: `stop()` unsubscribes and removes the endpoint from discovery.
   * @throws {ClosedError} The service is stopped or its endpoint closed.
   * @throws {TypeError} A name or metadata the protocol forbids, a name the service already
   * has, or anything `Endpoint.handle()` refuses.
   *
   * @example Naming an endpoint
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, int, memoryTransport } from "@seed/callbacks";
   * import { addService } from "@seed/callbacks/micro";
   *
   * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
   * await using endpoint = new Endpoint(memoryTransport());
   * await using svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
   * svc.handle(CheckStock, () => 3, { name: "check-stock", metadata: { owner: "stock" } });
   * assert(svc.info().endpoints[0]?.metadata.kind === "int");
   * ```
   */
  handle<C extends Contract>(
    contract: C,
    handler: NoInfer<Handler<C>>,
    options: ServiceHandleOptions = {},
  ): Registration {
    assertContract(contract, "handle");
    if (this.#stopped) {
      throw new ClosedError(
        `handle(${contract.subject}): the ${this.name} service is stopped: add a new service`,
      );
    }
    const { subject } = contract;
    const name = options.name === undefined
      ? endpointName(subject)
      : checkName(options.name, `handle(${subject}): name`);
    if (this.#endpoints.has(name)) {
      throw new TypeError(
        `handle(${subject}): the ${this.name} service already has an endpoint named ${name}: ` +
          `give this one another name ({ name })`,
      );
    }
    const own = checkMetadata(options.metadata, `handle(${subject}): metadata`);
    const described = this.#describe(contract);
    for (const key of Object.keys(described)) {
      if (key in own) {
        throw new TypeError(
          `handle(${subject}): metadata key ${key} is the service's own (it describes the contract): use another key`,
        );
      }
    }
    const queue = queueOf(subject, options);
    const counter = new EndpointCounter({ name, subject, queue_group: queue ?? "" });
    const observe: ServeObserver = (milliseconds, headers) => counter.record(milliseconds, headers);
    const inner = this.#endpoint.handle(contract, handler, {
      queue: queue ?? false,
      observe,
    } as HandleOptions);
    const registration = this.#internals.register(() => {
      this.#endpoints.delete(name);
      inner.stop();
    }, inner.ready);
    this.#endpoints.set(name, {
      info: {
        name,
        subject,
        queue_group: queue ?? "",
        metadata: Object.freeze({ ...own, ...described }),
      },
      counter,
      registration,
    });
    return registration;
  }

  /**
   * The `$SRV.PING` answer.
   *
   * @returns This instance's identity.
   *
   * @example Reading the id
   * ```ts
   * import { assert } from "@std/assert";
   * import { Endpoint, memoryTransport } from "@seed/callbacks";
   * import { addService } from "@seed/callbacks/micro";
   * await using endpoint = new Endpoint(memoryTransport());
   * await using svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
   * assert(svc.ping().id === svc.id);
   * ```
   */
  ping(): ServicePing {
    return { ...this.#identity(), type: "io.nats.micro.v1.ping_response" };
  }

  /**
   * The `$SRV.INFO` answer.
   *
   * @returns The service and its endpoints, each with its contract in its metadata.
   *
   * @example Reading an endpoint's request schema
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, int, memoryTransport } from "@seed/callbacks";
   * import { addService } from "@seed/callbacks/micro";
   * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
   * await using endpoint = new Endpoint(memoryTransport());
   * await using svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
   * svc.handle(CheckStock, () => 3);
   * const schema = JSON.parse(svc.info().endpoints[0]!.metadata.request_schema!);
   * assert(schema.properties.sku.type === "string");
   * ```
   */
  info(): ServiceInfo {
    return {
      ...this.#identity(),
      type: "io.nats.micro.v1.info_response",
      description: this.description,
      endpoints: [...this.#endpoints.values()].map(({ info }) => info),
    };
  }

  /**
   * The `$SRV.STATS` answer: per endpoint, requests served, error replies,
   * the last error as `code:description`, and processing times in
   * nanoseconds.
   *
   * @returns A snapshot of the counters.
   *
   * @example Counting an error reply
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, int, memoryTransport, ReplyError } from "@seed/callbacks";
   * import { addService } from "@seed/callbacks/micro";
   * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
   * await using endpoint = new Endpoint(memoryTransport());
   * await using svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
   * svc.handle(CheckStock, () => { throw new ReplyError(409, "out of stock"); });
   * await endpoint.request(CheckStock, { sku: "A-1" }).catch(() => {});
   * assert(svc.stats().endpoints[0]?.last_error === "409:out of stock");
   * ```
   */
  stats(): ServiceStats {
    return {
      ...this.#identity(),
      type: "io.nats.micro.v1.stats_response",
      started: this.#started,
      endpoints: [...this.#endpoints.values()].map(({ counter }) => counter.stats()),
    };
  }

  /**
   * Zeroes every endpoint's counters; `started` becomes now.
   *
   * @example Starting the count again
   * ```ts
   * import { assert } from "@std/assert";
   * import { Endpoint, memoryTransport } from "@seed/callbacks";
   * import { addService } from "@seed/callbacks/micro";
   * await using endpoint = new Endpoint(memoryTransport());
   * await using svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
   * svc.reset();
   * assert(svc.stats().endpoints.length === 0);
   * ```
   */
  reset(): void {
    for (const { counter } of this.#endpoints.values()) counter.reset();
    this.#started = new Date().toISOString();
  }

  /**
   * Stops the service: its handlers (running ones' `ctx.signal` aborts) and
   * its discovery subscriptions. The endpoint stays open. Idempotent.
   *
   * @returns A promise that resolves once the server has removed the
   * subscriptions, so no discovery request made afterwards finds the service.
   *
   * @example Stopping
   * ```ts
   * import { assert } from "@std/assert";
   * import { Endpoint, memoryTransport } from "@seed/callbacks";
   * import { addService } from "@seed/callbacks/micro";
   * await using endpoint = new Endpoint(memoryTransport());
   * const svc = await addService(endpoint, { name: "inventory", version: "1.0.0" });
   * await svc.stop();
   * assert(svc.stopped && !endpoint.closed);
   * ```
   */
  async stop(): Promise<void> {
    this.#discovery.stop();
    const { transport } = this.#internals;
    // While the connection is down the server has dropped its subscriptions already, and the
    // client does not send unsubscribed ones again: nothing to wait for.
    if (!transport.flush || transport.connected === false) return;
    let unwatch: (() => void) | undefined;
    try {
      await Promise.race([
        transport.flush(),
        new Promise<void>((resolve) => {
          unwatch = transport.watch?.((status) => status !== "reconnect" && resolve());
        }),
      ]);
    } catch {
      // Closed: the subscriptions are gone with the connection.
    } finally {
      unwatch?.();
    }
  }

  /** Stops the service, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #identity(): Omit<ServicePing, "type"> {
    return { name: this.name, id: this.id, version: this.version, metadata: this.metadata };
  }

  /** Answers a discovery request; nothing here throws into the transport. */
  #discover(verb: Verb, message: TransportMessage): void {
    let reply = "";
    try {
      reply = message.reply;
      if (reply === "") return;
      const document = verb === "PING" ? this.ping() : verb === "INFO" ? this.info() : this.stats();
      this.#internals.transport.publish(reply, encodeText(JSON.stringify(document)));
    } catch (error) {
      this.#internals.report(`$SRV.${verb}`, error);
      try {
        this.#internals.transport.publish(reply, new Uint8Array(), {
          headers: errorHeaders(500, `the ${verb} answer could not be sent: ${errorText(error)}`),
        });
      } catch {
        // The connection is gone: the asker times out.
      }
    }
  }
}
