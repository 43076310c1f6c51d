import { assertEquals, assertMatch } from "@std/assert";
import { launchChromium, openPage } from "./helpers/browser.ts";
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

/** Starts `deno task <name>` as a user would, and waits for the URL it prints. */
async function startTask(name: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", name],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", PORT: "0" },
  }).spawn();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stderr = new Response(child.stderr).text();
  let out = "";
  let url: string | undefined;
  while (url === undefined) {
    const { value, done } = await stdout.read();
    if (done) {
      throw new Error(`${name} ended before it printed a URL:\n${out}\n${await stderr}`);
    }
    out += value;
    url = out.match(/open (http:\/\/\S+)/)?.[1];
  }
  return {
    url,
    /** Ctrl-C: everything stops, and the task exits 0. */
    async stop(): Promise<string> {
      child.kill("SIGINT");
      for (;;) {
        const { value, done } = await stdout.read();
        if (done) break;
        out += value;
      }
      const status = await child.status;
      assertEquals(status.code, 0, `${out}\n${await stderr}`);
      await stderr;
      return out;
    },
  };
}

Deno.test("examples - deno task example:gateway starts NATS, the responders and the gateway; Ctrl-C stops them", async () => {
  const task = await startTask("example:gateway");
  try {
    const stock = await fetch(task.url);
    assertEquals([stock.status, await stock.json()], [200, { left: 5 }]);
    const base = new URL(task.url).origin;
    const order = await fetch(`${base}/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "A-1", qty: 2 }),
    });
    assertEquals([order.status, await order.json()], [201, { orderId: "A-1-2", eta: 2 }]);
  } finally {
    assertMatch(await task.stop(), /stopped/);
  }
});

Deno.test("examples - deno task example:browser bundles and serves the page, with responders for every button", async () => {
  const task = await startTask("example:browser");
  try {
    await using chromium = await launchChromium();
    await using page = await openPage(chromium.browser, task.url);
    const text = async (id: string) => {
      await page.page.waitForSelector(`#${id}[data-state="ok"]`, { timeout: 10_000 });
      return await page.page.textContent(`#${id}`);
    };
    assertEquals(await text("int"), "5");
    assertEquals(await text("enum"), '"Approved"');
    assertEquals(await text("object"), '{"orderId":"A-1-3","eta":2}');
    // The slow report has a responder too: it answers after a few seconds.
    await page.page.click("#slow-start");
    assertEquals(await text("slow"), "42");
    assertEquals(page.errors, []);
  } finally {
    assertMatch(await task.stop(), /stopped/);
  }
});

Deno.test("examples - deno task example:worker bundles the Worker and runs it in workerd against NATS", async () => {
  const task = await startTask("example:worker");
  try {
    const stock = await fetch(task.url);
    assertEquals([stock.status, await stock.json()], [200, { result: 5 }]);
  } finally {
    assertMatch(await task.stop(), /stopped/);
  }
});

Deno.test("examples - deno task example:two-process runs the README's responder and caller", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "example:two-process"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
  const out = new TextDecoder().decode(stdout);
  assertMatch(out, /responder ready on ws:\/\//);
  assertMatch(out, /left: 5, decision: "Approved", order: \{ orderId: "A-1-2", eta: 2 \}/);
});
