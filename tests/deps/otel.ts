// The OpenTelemetry SDK a user would install, for the tracing tests; pinned here, not in
// deno.json. Its 2.x line accepts @opentelemetry/api below 1.10, the range otel.ts uses.
export {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "npm:@opentelemetry/sdk-trace-base@2.12.1";
export { W3CTraceContextPropagator } from "npm:@opentelemetry/core@2.12.1";
export { AsyncLocalStorageContextManager } from "npm:@opentelemetry/context-async-hooks@2.12.1";
