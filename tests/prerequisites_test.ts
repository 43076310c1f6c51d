import { assertEquals, assertMatch } from "@std/assert";
import { installLine, missing, natsServerBin } from "./prerequisites.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("prerequisites - nats-server is found on PATH, else where Debian puts it, else named by NATS_SERVER_BIN", () => {
  const debian = natsServerBin(env({ PATH: "/nonexistent" }));
  // This machine has it (the test command installed it): in /usr/sbin, off a user's PATH.
  assertMatch(debian ?? "", /\/nats-server$/);
  assertEquals(natsServerBin(env({ NATS_SERVER_BIN: "/opt/nats" })), "/opt/nats");
  assertEquals(natsServerBin(env({ NATS_SERVER_BIN: "", PATH: "" })), debian);
});

Deno.test("prerequisites - a setting that names no file is reported as the setting, not as a package", () => {
  assertEquals(missing(env({ NATS_SERVER_BIN: "/nope", CHROMIUM_BIN: "/nope2" })), {
    packages: [],
    settings: ["NATS_SERVER_BIN=/nope is not a file", "CHROMIUM_BIN=/nope2 is not a file"],
  });
  assertEquals(missing(env({ PATH: "/nonexistent" })).settings, []);
});

Deno.test("prerequisites - a user who is not root is told the one line to run, apt-get update included", () => {
  assertEquals(
    installLine(["nats-server", "chromium"]),
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends nats-server chromium",
  );
});
