import assert from "node:assert/strict";
import { freePort, waitForTcp } from "../helpers/ports.ts";

Deno.test("freePort: the port can be bound on 127.0.0.1", () => {
  const port = freePort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  listener.close();
});

Deno.test("waitForTcp: resolves for a listener, throws for a closed port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept().then((conn) => conn.close());
  await waitForTcp((listener.addr as Deno.NetAddr).port, 2000);
  await accepted;
  listener.close();
  await assert.rejects(waitForTcp(freePort(), 200), /nothing accepted TCP/);
});
