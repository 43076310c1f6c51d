// The bundler the weight is measured with, pinned here (not in deno.json) so that the
// library's and the demo's imports never download it.
export * from "npm:esbuild@0.28.2";
