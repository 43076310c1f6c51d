import * as v from "valibot";
import { assertEquals, assertRejects, assertStrictEquals } from "@std/assert";
import { defineRequest, DisconnectedError, Endpoint, int, natsTransport } from "../mod.ts";
import { connectWs } from "./helpers/connect.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});

const USERS = `
authorization {
  users = [
    { user: "svc", password: "svc-pw" }
    {
      user: "web", password: "web-pw",
      permissions: {
        publish: { allow: ["stock.>"] }
        subscribe: { allow: ["_INBOX_web.>"] }
      }
    }
  ]
}
`;

Deno.test("security - a user who may not subscribe to _INBOX.> gets an error naming inboxPrefix; with it, it works", async () => {
  await using server = await startNatsServer({ config: USERS });
  const svc = await connectWs(server, { user: "svc", pass: "svc-pw" });
  const web = await connectWs(server, { user: "web", pass: "web-pw" });
  try {
    await using responder = new Endpoint(natsTransport(svc));
    responder.handle(CheckStock, () => 4);
    await svc.flush();

    await using plain = new Endpoint(natsTransport(web), { timeout: 10_000 });
    await assertRejects(
      () => plain.request(CheckStock, { sku: "x" }),
      DisconnectedError,
      "set the endpoint's inboxPrefix option",
    );
    assertStrictEquals(plain.pending, 0);

    await using scoped = new Endpoint(natsTransport(web), { inboxPrefix: "_INBOX_web" });
    assertEquals(await scoped.request(CheckStock, { sku: "x" }), 4);
  } finally {
    await web.close();
    await svc.close();
  }
});

Deno.test("security - user/password and token auth work through natsTransport", async () => {
  for (
    const [config, options] of [
      [`authorization { user: "u", password: "p" }`, { user: "u", pass: "p" }],
      [`authorization { token: "s3cr3t" }`, { token: "s3cr3t" }],
    ] as const
  ) {
    await using server = await startNatsServer({ config });
    const nc = await connectWs(server, options);
    try {
      await using endpoint = new Endpoint(natsTransport(nc));
      endpoint.handle(CheckStock, ({ sku }) => sku.length);
      await nc.flush();
      assertEquals(await endpoint.request(CheckStock, { sku: "abc" }), 3);
    } finally {
      await nc.close();
    }
    await assertRejects(() => connectWs(server, { user: "u", pass: "wrong", token: "wrong" }));
  }
});
