// Cloudflare's Workers runtime for the Worker example's test, pinned here (not in deno.json):
// its package is large and has build scripts that a demo should never meet.
// deno-lint-ignore no-import-prefix
import * as workerdPackage from "npm:workerd@1.20261023.1";
export { workerdPackage };
