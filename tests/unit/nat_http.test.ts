// The UPnP gateway's HTTP client: responses by Content-Length, chunked and
// read-to-end; garbage refused; and requests go straight to the router even
// when HTTP_PROXY names a proxy (which fetch() would use).

import assert from "node:assert/strict";
import {
  httpExchange,
  parseHttpResponse,
} from "../../src/nat/http_exchange.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("http response: Content-Length, chunked, to the end, capped", () => {
  assert.deepEqual(
    parseHttpResponse(
      bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, extra"),
      100,
    ),
    { status: 200, body: "hello" },
  );
  assert.deepEqual(
    parseHttpResponse(
      bytes(
        "HTTP/1.1 500 Internal\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n<s:E\r\n3;x=1\r\nnv>\r\n0\r\n\r\n",
      ),
      100,
    ),
    { status: 500, body: "<s:Env>" },
  );
  assert.deepEqual(
    parseHttpResponse(
      bytes("HTTP/1.0 200 OK\r\nServer: x\r\n\r\n<root/>"),
      100,
    ),
    { status: 200, body: "<root/>" },
  );
  assert.equal(
    parseHttpResponse(bytes("HTTP/1.1 200 OK\r\n\r\n0123456789"), 4).body,
    "0123",
  );
  // A truncated chunked body keeps what came.
  assert.equal(
    parseHttpResponse(
      bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\nabc"),
      100,
    ).body,
    "abc",
  );
  assert.throws(() => parseHttpResponse(bytes(""), 100), /empty answer/);
  assert.throws(
    () => parseHttpResponse(bytes("SSH-2.0-OpenSSH\r\n\r\n"), 100),
    /not an HTTP status line/,
  );
  assert.throws(
    () => parseHttpResponse(bytes("HTTP/1.1 200 OK\r\nX: y"), 100),
    /no complete header/,
  );
});

Deno.test("http exchange: goes to the router directly, whatever HTTP_PROXY says", async () => {
  const seen: string[] = [];
  const router = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      seen.push(
        `${req.method} ${new URL(req.url).pathname} ${await req.text()}`,
      );
      return new Response("<root>direct</root>");
    },
  );
  const proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("proxied"),
  );
  const before = Deno.env.get("HTTP_PROXY");
  Deno.env.set("HTTP_PROXY", `http://127.0.0.1:${proxy.addr.port}`);
  try {
    const url = new URL(`http://127.0.0.1:${router.addr.port}/ctl/IPConn`);
    const reply = await httpExchange(url, {
      method: "POST",
      headers: { SOAPAction: '"urn:x#GetExternalIPAddress"' },
      body: "<s:Envelope/>",
    }, { signal: AbortSignal.timeout(5000), maxBodyBytes: 1024 });
    assert.deepEqual(reply, { status: 200, body: "<root>direct</root>" });
    assert.deepEqual(seen, ["POST /ctl/IPConn <s:Envelope/>"]);
    // (fetch would have asked the proxy: the reason this client exists)
    assert.equal(await (await fetch(url)).text(), "proxied");
  } finally {
    if (before === undefined) Deno.env.delete("HTTP_PROXY");
    else Deno.env.set("HTTP_PROXY", before);
    await router.shutdown();
    await proxy.shutdown();
  }
});
