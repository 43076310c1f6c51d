// A standard JSON Schema validator (draft-07), for checking the schemas services publish;
// pinned here, not in deno.json.
// deno-lint-ignore no-import-prefix
import AjvModule from "npm:ajv@8.20.0";

/** Ajv's class (the npm package is CommonJS: its class is the module's `default`). */
export const Ajv: typeof AjvModule.default =
  (AjvModule as unknown as { default: typeof AjvModule.default }).default ?? AjvModule;
