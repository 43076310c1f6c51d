/**
 * Responders of ours and NATS micro services on one subject share its
 * requests: both join the queue group "q" by default.
 */

import { Svcm } from "./deps/services.ts";
import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import { Endpoint, type NatsConnectionLike, natsTransport } from "../mod.ts";
import { connectCore } from "./helpers/connect.ts";
import { CheckStock } from "./helpers/contract_suite.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

Deno.test("micro interop - handle() and a micro service on one subject share requests, one reply each", async () => {
  await using server = await startNatsServer();
  const serviceNc = await connectCore(server);
  const ourNc = await connectCore(server);
  const callerNc = await connectCore(server);
  try {
    // The services package pins a prerelease of nats-core: its connection type differs by
    // version only; the connection is the same at run time.
    const svcm = new Svcm(serviceNc as unknown as ConstructorParameters<typeof Svcm>[0]);
    const service = await svcm.add({ name: "stock", version: "1.0.0" });
    service.addEndpoint("check", {
      subject: CheckStock.subject,
      handler: (_error, msg) => void msg.respond("7"),
    });
    await using ours = new Endpoint(natsTransport(ourNc as unknown as NatsConnectionLike));
    ours.handle(CheckStock, () => 5);
    await using caller = new Endpoint(natsTransport(callerNc as unknown as NatsConnectionLike));
    let late = 0;
    caller.addEventListener("late-reply", () => late++);
    await Promise.all([serviceNc.flush(), ourNc.flush(), callerNc.flush()]);
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => caller.request(CheckStock, { sku: `s${i}` })),
    );
    // A round trip after the last reply: a second answer to any of them would have arrived.
    await callerNc.flush();
    await caller.request(CheckStock, { sku: "last" });
    assertEquals(late, 0, "no request was answered twice");
    const from = new Set(answers);
    assert(from.has(5) && from.has(7), `both kinds answered: ${[...from]}`);
    assertStrictEquals(caller.pending, 0);
    await service.stop();
  } finally {
    await Promise.all([serviceNc.close(), ourNc.close(), callerNc.close()]);
  }
});
