/**
 * What the tests need from the machine, found once, before any test runs:
 * `nats-server` and Chromium. The test command runs this first. Where one is
 * missing it installs it when run as root on Debian or Ubuntu (`apt-get`), and
 * otherwise stops with the one line to run.
 *
 * @module
 */

/** Where Debian and Ubuntu put nats-server: /usr/sbin, which is not on a normal user's PATH. */
const NATS_SERVER_PLACES = [
  "/usr/sbin/nats-server",
  "/usr/local/bin/nats-server",
  "/usr/bin/nats-server",
];

/**
 * The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on PATH, else
 * where Debian puts it; `undefined` when there is none.
 */
export function natsServerBin(): string | undefined {
  const configured = Deno.env.get("NATS_SERVER_BIN");
  if (configured) return configured;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && isFile(`${dir}/nats-server`)) return `${dir}/nats-server`;
  }
  return NATS_SERVER_PLACES.find(isFile);
}

/** The Chromium binary: `CHROMIUM_BIN`, else Debian's /usr/bin/chromium; `undefined` when absent. */
export function chromiumBin(): string | undefined {
  const bin = Deno.env.get("CHROMIUM_BIN") ?? "/usr/bin/chromium";
  return isFile(bin) ? bin : undefined;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const missing = [
    natsServerBin() ? undefined : "nats-server",
    chromiumBin() ? undefined : "chromium",
  ].filter((name) => name !== undefined);
  if (missing.length > 0) {
    const install = ["apt-get", "install", "-y", "--no-install-recommends", ...missing];
    if (Deno.uid?.() !== 0) {
      console.error(
        `The tests need ${missing.join(" and ")}: run  sudo ${
          install.join(" ")
        }  and run the tests again.`,
      );
      Deno.exit(1);
    }
    console.error(`Installing ${missing.join(" and ")} (${install.join(" ")}) …`);
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    for (const args of [["apt-get", "update", "-qq"], install]) {
      const { success } = await new Deno.Command(args[0]!, {
        args: args.slice(1),
        env,
        stdout: "null",
      }).output();
      if (!success) {
        console.error(`${args.join(" ")} failed: install ${missing.join(" and ")} yourself.`);
        Deno.exit(1);
      }
    }
  }
  console.error(`nats-server: ${natsServerBin()}  chromium: ${chromiumBin()}`);
}
