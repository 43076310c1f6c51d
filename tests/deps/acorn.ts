// The parser bench/weight.ts reads bundles with, pinned here (not in deno.json).
export * from "npm:acorn@8.19.0";
