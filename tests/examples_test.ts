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
