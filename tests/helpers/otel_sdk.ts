/**
 * The OpenTelemetry SDK a user would install, registered for a test file: an
 * in-memory exporter behind a simple span processor, the W3C propagator and
 * the async-hooks context manager, as the process-wide globals.
 */

import { context, propagation, trace } from "@opentelemetry/api";
import {
  AsyncLocalStorageContextManager,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  W3CTraceContextPropagator,
} from "../deps/otel.ts";

/** Registers the SDK once per test file (Deno runs each in its own isolate); returns its exporter. */
export function registerSdk(): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return exporter;
}

/** The in-memory exporter reports each export a macrotask later: lets those timers run. */
export function exported(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}
