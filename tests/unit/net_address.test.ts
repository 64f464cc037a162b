import assert from "node:assert/strict";
import {
  formatHostPort,
  parseHostPort,
  unmapIPv4,
} from "../../src/net/address.ts";

Deno.test("net/address: HOST:PORT both ways, IPv6 in brackets", () => {
  for (
    const [host, port, text] of [
      ["127.0.0.1", 6881, "127.0.0.1:6881"],
      ["::1", 51413, "[::1]:51413"],
      ["2001:db8::7", 1, "[2001:db8::7]:1"],
      ["router.example.org", 65535, "router.example.org:65535"],
    ] as const
  ) {
    assert.equal(formatHostPort(host, port), text);
    assert.deepEqual(parseHostPort(text), { host, port });
  }
});

Deno.test("net/address: what is not HOST:PORT", () => {
  for (
    const text of [
      "host",
      "::1:6881",
      "[::1]",
      "h:65536",
      "h:123456",
      "h:-1",
      ":6881",
      "a b:1",
      "[host]:1",
      "",
    ]
  ) {
    assert.equal(parseHostPort(text), null, text);
  }
  assert.deepEqual(parseHostPort("h:0"), { host: "h", port: 0 });
});

Deno.test("net/address: a v4-mapped IPv6 address is its IPv4 one", () => {
  assert.equal(unmapIPv4("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(unmapIPv4("::ffff:a00:1"), "::ffff:a00:1");
  assert.equal(unmapIPv4("2001:db8::1"), "2001:db8::1");
  assert.equal(unmapIPv4("10.0.0.1"), "10.0.0.1");
});
