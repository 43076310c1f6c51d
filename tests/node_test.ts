/**
 * The library on Node (README, "Node"): one self-contained bundle (mod.ts + nats.ws + valibot), and the library
 * alone with nats.ws and valibot imported from node_modules, each run by `node` against
 * nats-server with a responder and a caller endpoint.
 *
 * @module
 */

import { assert, assertEquals } from "@std/assert";
import { bundle, npmPackageDir } from "./helpers/bundle.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const NODE_TIMEOUT_MS = 30_000;

/** The Node script: contracts, a responder and a caller, one line of JSON results. */
function nodeScript(imports: string): string {
  return `${imports}

const servers = process.argv[2];
const CheckStock = defineRequest({
  subject: "node.stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});
const Approve = defineRequest({
  subject: "node.orders.approve",
  request: v.object({ orderId: v.string() }),
  response: enumOf(["Approved", "Rejected"]),
});
const PlaceOrder = defineRequest({
  subject: "node.orders.place",
  request: v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});
const Nobody = defineRequest({ subject: "node.nobody", request: v.null(), response: int() });

const responderNc = await connect({ servers });
const callerNc = await connect({ servers });
const responder = new Endpoint(natsTransport(responderNc));
const caller = new Endpoint(natsTransport(callerNc), { timeout: 5_000 });
const outcomes = [];
caller.addEventListener("settle", (event) => outcomes.push(event.outcome));
try {
  responder.handle(CheckStock, ({ sku }) => (sku === "A-1" ? 5 : 0));
  responder.handle(Approve, ({ orderId }) => (orderId.startsWith("o-") ? "Approved" : "Rejected"));
  responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: \`\${sku}-\${qty}-001\`, eta: 2 }));
  await responderNc.flush();

  const left = await caller.request(CheckStock, { sku: "A-1" });
  const decision = await caller.request(Approve, { orderId: "o-1" });
  const order = await caller.request(PlaceOrder, { sku: "A-1", qty: 2 }, {
    signal: AbortSignal.timeout(2_000),
  });
  let noResponders;
  try {
    await caller.request(Nobody, null);
  } catch (error) {
    noResponders = { name: error.name, instance: error instanceof NoRespondersError };
  }
  console.log(JSON.stringify({
    node: process.version,
    left,
    decision,
    order,
    noResponders,
    outcomes,
    pending: caller.pending,
  }));
} finally {
  await caller.close();
  await responder.close();
  await callerNc.close();
  await responderNc.close();
}
`;
}

const LIBRARY_NAMES =
  "defineRequest, Endpoint, enumOf, int, natsTransport, NoRespondersError, object";

Deno.test("node - the library runs on Node against nats-server", async () => {
  const nodeArgs = await nodeWebSocketArgs();
  const dir = await Deno.makeTempDir({ prefix: "callbacks-node-" });
  try {
    // 1. one self-contained bundle: the library, nats.ws and valibot
    await Deno.writeTextFile(
      `${dir}/all.ts`,
      `export * from ${JSON.stringify(`${ROOT}mod.ts`)};\n` +
        `export { connect } from "nats.ws";\nexport * as v from "valibot";\n`,
    );
    // 2. the library alone; nats.ws and valibot come from node_modules
    await Deno.writeTextFile(
      `${dir}/lib.ts`,
      `export * from ${JSON.stringify(`${ROOT}mod.ts`)};\n`,
    );
    const node = { platform: "node", target: "node20" } as const;
    const all = await bundle(`${dir}/all.ts`, node);
    assert(!/^\s*import\b.*\bfrom\s*["']/m.test(all), "all.mjs imports nothing");
    const lib = await bundle(`${dir}/lib.ts`, { ...node, external: ["nats.ws", "valibot"] });
    assert(/from\s*"nats\.ws"/.test(lib), "callbacks.mjs leaves nats.ws to node_modules");

    // Node resolves callbacks.mjs's imports of nats.ws and valibot through dir/node_modules
    await Deno.mkdir(`${dir}/node_modules`);
    for (const name of ["nats.ws", "valibot"]) {
      await Deno.symlink(await npmPackageDir(name), `${dir}/node_modules/${name}`);
    }
    await Deno.writeTextFile(`${dir}/all.mjs`, all);
    await Deno.writeTextFile(`${dir}/callbacks.mjs`, lib);
    await Deno.writeTextFile(
      `${dir}/bundled.mjs`,
      nodeScript(`import { connect, v, ${LIBRARY_NAMES} } from "./all.mjs";`),
    );
    await Deno.writeTextFile(
      `${dir}/external.mjs`,
      nodeScript(
        `import * as v from "valibot";\nimport { connect } from "nats.ws";\n` +
          `import { ${LIBRARY_NAMES} } from "./callbacks.mjs";`,
      ),
    );

    await using server = await startNatsServer();
    for (const script of ["bundled.mjs", "external.mjs"]) {
      const result = await runNode([...nodeArgs, `${dir}/${script}`, server.wsUrl], dir);
      assertEquals(result.code, 0, `${script}:\n${result.stdout}\n${result.stderr}`);
      const lines = result.stdout.trim().split("\n");
      const printed = JSON.parse(lines[lines.length - 1]!);
      assert(/^v\d+\./.test(printed.node), printed.node);
      delete printed.node;
      assertEquals(printed, {
        left: 5,
        decision: "Approved",
        order: { orderId: "A-1-2-001", eta: 2 },
        noResponders: { name: "NoRespondersError", instance: true },
        outcomes: ["reply", "reply", "reply", "no-responders"],
        pending: 0,
      }, script);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The node flags that give it a global WebSocket: none on Node 22+,
 * `--experimental-websocket` on Node 20.10+ (and 21).
 */
async function nodeWebSocketArgs(): Promise<string[]> {
  for (const args of [[], ["--experimental-websocket"]]) {
    const probe = await runNode([...args, "-p", "typeof WebSocket"], ROOT);
    if (probe.code === 0 && probe.stdout.trim() === "function") return args;
  }
  const version = await runNode(["--version"], ROOT);
  throw new Error(
    `node ${version.stdout.trim()} has no global WebSocket, even with --experimental-websocket: ` +
      "nats.ws needs Node 20.10 or later",
  );
}

async function runNode(
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const kill = new AbortController();
  const timer = setTimeout(() => kill.abort(), NODE_TIMEOUT_MS);
  try {
    const out = await new Deno.Command("node", {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: kill.signal,
    }).output();
    const dec = new TextDecoder();
    return {
      code: kill.signal.aborted ? -1 : out.code,
      stdout: dec.decode(out.stdout),
      stderr: (kill.signal.aborted ? `killed after ${NODE_TIMEOUT_MS} ms\n` : "") +
        dec.decode(out.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}
