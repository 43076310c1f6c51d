// Drives Debian's Chromium in the browser test, pinned here (not in deno.json).
export * from "npm:playwright-core@1.65.1";
