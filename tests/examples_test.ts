import { assertEquals, assertMatch } from "@std/assert";
import { startNatsServer } from "./helpers/nats_server.ts";

async function runQuickstart(args: string[], env: Record<string, string> = {}): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "examples/quickstart.ts", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
  }).output();
  const out = new TextDecoder().decode(stdout);
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  return out;
}

function assertQuickstart(out: string): void {
  for (
    const line of [
      /^int .*-> 5$/m,
      /^enum .*-> Approved$/m,
      /^object .*-> \{ orderId: "A-1-2-001", eta: 2 \}$/m,
      /^timeout +-> TimeoutError: /m,
      /^abort +-> Error: the user pressed cancel$/m,
      /^no responders +-> NoRespondersError: /m,
      /^invalid reply +-> InvalidReplyError: .*kind "object", the contract expects "int"/m,
      /^remote error +-> RemoteError: .*404 unknown sku Z-9$/m,
      /^invalid request +-> InvalidRequestError: /m,
      /^pending callbacks: 0$/m,
    ]
  ) assertMatch(out, line);
}

Deno.test("examples - quickstart runs in memory by default", async () => {
  const out = await runQuickstart([]);
  assertMatch(out, /transport: in memory/);
  assertQuickstart(out);
});

Deno.test("examples - quickstart runs against nats-server with --nats", async () => {
  await using server = await startNatsServer();
  const out = await runQuickstart(["--nats", server.wsUrl]);
  assertMatch(out, /transport: NATS at ws:\/\/127\.0\.0\.1:\d+/);
  assertQuickstart(out);
});

Deno.test("examples - quickstart takes the server from NATS_URL", async () => {
  await using server = await startNatsServer();
  const out = await runQuickstart([], { NATS_URL: server.wsUrl });
  assertMatch(out, /transport: NATS at ws:\/\/127\.0\.0\.1:\d+/);
  assertQuickstart(out);
});

Deno.test("examples - the README's two processes: a responder until Ctrl-C, a caller that prints and exits", async () => {
  await using server = await startNatsServer();
  const env = { NO_COLOR: "1", NATS_URL: server.wsUrl };
  const responder = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "examples/two_process/responder.ts"],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    env,
  }).spawn();
  const lines = responder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("responder ready")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the responder ended before it was ready: ${out}`);
      out += value;
    }
    const caller = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-env", "examples/two_process/caller.ts"],
      stdout: "piped",
      stderr: "piped",
      env,
    }).output();
    assertEquals(caller.code, 0, new TextDecoder().decode(caller.stderr));
    assertMatch(
      new TextDecoder().decode(caller.stdout),
      /left: 5,\s+decision: "Approved",\s+order: \{ orderId: "A-1-2", eta: 2 \}/,
    );
  } finally {
    responder.kill("SIGINT");
    while (!(await lines.read()).done) { /* drain */ }
  }
  assertEquals((await responder.status).code, 0, "Ctrl-C stops it cleanly");
});
