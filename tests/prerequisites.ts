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
 * The nats-server binary: `NATS_SERVER_BIN` (as given, even if it is not
 * there, so that a wrong setting is reported), else `nats-server` on PATH,
 * else where Debian puts it; `undefined` when there is none.
 */
export function natsServerBin(
  env: (name: string) => string | undefined = envOf,
): string | undefined {
  const configured = env("NATS_SERVER_BIN");
  if (configured) return configured;
  for (const dir of (env("PATH") ?? "").split(":")) {
    if (dir && isFile(`${dir}/nats-server`)) return `${dir}/nats-server`;
  }
  return NATS_SERVER_PLACES.find(isFile);
}

/** The Chromium binary: `CHROMIUM_BIN`, else Debian's /usr/bin/chromium. */
export function chromiumBin(env: (name: string) => string | undefined = envOf): string {
  return env("CHROMIUM_BIN") || "/usr/bin/chromium";
}

/** What is missing: the Debian package, or the environment variable that names a binary not there. */
export function missing(
  env: (name: string) => string | undefined = envOf,
): { packages: string[]; settings: string[] } {
  const packages: string[] = [];
  const settings: string[] = [];
  const nats = natsServerBin(env);
  if (nats === undefined) packages.push("nats-server");
  else if (!isFile(nats)) settings.push(`NATS_SERVER_BIN=${nats} is not a file`);
  const chromium = chromiumBin(env);
  if (!isFile(chromium)) {
    if (env("CHROMIUM_BIN")) settings.push(`CHROMIUM_BIN=${chromium} is not a file`);
    else packages.push("chromium");
  }
  return { packages, settings };
}

/** The one line a user who is not root runs to install `packages`. */
export function installLine(packages: readonly string[]): string {
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${
    packages.join(" ")
  }`;
}

function envOf(name: string): string | undefined {
  return Deno.env.get(name);
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

async function run(args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(args[0]!, {
      args: args.slice(1),
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
    }).output();
    return success;
  } catch {
    return false; // no apt-get on this machine
  }
}

if (import.meta.main) {
  let { packages, settings } = missing();
  if (settings.length > 0) {
    console.error(`The tests cannot run: ${settings.join("; ")}. Fix it or unset it.`);
    Deno.exit(1);
  }
  if (packages.length > 0) {
    const needed = packages.join(" and ");
    if (Deno.uid?.() !== 0) {
      console.error(`The tests need ${needed}: run  ${installLine(packages)}  and run them again.`);
      Deno.exit(1);
    }
    console.error(`Installing ${needed} with apt-get …`);
    const ok = await run(["apt-get", "update", "-qq"]) &&
      await run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", ...packages]);
    ({ packages, settings } = missing());
    if (!ok || packages.length > 0) {
      console.error(
        `Could not install ${needed} with apt-get (on Debian or Ubuntu, as root): install ` +
          `${packages.join(" and ") || needed} yourself, or set NATS_SERVER_BIN / CHROMIUM_BIN.`,
      );
      Deno.exit(1);
    }
  }
  console.error(`nats-server: ${natsServerBin()}  chromium: ${chromiumBin()}`);
}
