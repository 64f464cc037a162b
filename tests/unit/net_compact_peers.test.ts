import assert from "node:assert/strict";
import {
  parseCompactPeers4,
  parseCompactPeers6,
} from "../../src/net/compact_peers.ts";
import { formatIPv6, normaliseIp } from "../../src/net/ip.ts";

Deno.test("compact IPv4 peers: 6 bytes each, port big-endian, port 0 dropped", () => {
  const bytes = new Uint8Array([
    192,
    168,
    24,
    52,
    0x07,
    0xd1, // 192.168.24.52:2001
    10,
    0,
    0,
    1,
    0,
    0, // port 0: dropped
    127,
    0,
    0,
    1,
    0x1a,
    0xe1, // 127.0.0.1:6881
  ]);
  assert.deepEqual(parseCompactPeers4(bytes), [
    { host: "192.168.24.52", port: 2001 },
    { host: "127.0.0.1", port: 6881 },
  ]);
  assert.deepEqual(parseCompactPeers4(new Uint8Array(0)), []);
  assert.equal(parseCompactPeers4(new Uint8Array(7)), undefined);
});

Deno.test("compact IPv6 peers: 18 bytes each, v4-mapped given as IPv4", () => {
  const v6 = new Uint8Array(18);
  v6.set([0x20, 0x01, 0x0d, 0xb8], 0);
  v6[15] = 1;
  v6.set([0x1a, 0xe1], 16);
  const mapped = new Uint8Array(18);
  mapped.set([0xff, 0xff, 1, 2, 3, 4, 0x00, 0x50], 10);
  const bytes = new Uint8Array([...v6, ...mapped]);
  assert.deepEqual(parseCompactPeers6(bytes), [
    { host: "2001:db8::1", port: 6881 },
    { host: "1.2.3.4", port: 80 },
  ]);
  assert.equal(parseCompactPeers6(new Uint8Array(17)), undefined);
});

Deno.test("IPv6 text is RFC 5952: lowercase, longest zero run compressed", () => {
  const b = (groups: number[]) => {
    const out = new Uint8Array(16);
    groups.forEach((g, i) => [out[2 * i], out[2 * i + 1]] = [g >> 8, g & 0xff]);
    return out;
  };
  assert.equal(formatIPv6(b([0, 0, 0, 0, 0, 0, 0, 1])), "::1");
  assert.equal(formatIPv6(b([0, 0, 0, 0, 0, 0, 0, 0])), "::");
  assert.equal(
    formatIPv6(b([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1])),
    "2001:db8:0:1::1",
  );
  assert.equal(
    formatIPv6(b([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])),
    "2001:db8::1:0:0:1",
  );
  assert.equal(formatIPv6(b([0xfe80, 0, 0, 0, 0, 0, 0, 0])), "fe80::");
  assert.equal(
    formatIPv6(b([1, 2, 3, 4, 5, 6, 7, 0xabcd])),
    "1:2:3:4:5:6:7:abcd",
  );
});

Deno.test("normaliseIp gives one spelling per address and rejects names", () => {
  assert.equal(normaliseIp("10.1.2.3"), "10.1.2.3");
  assert.equal(normaliseIp("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(normaliseIp("::FFFF:0a01:0203"), "10.1.2.3");
  assert.equal(normaliseIp("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(normaliseIp("fe80::1%eth0"), "fe80::1");
  assert.equal(normaliseIp("::"), "::");
  assert.equal(normaliseIp("tracker.example"), undefined);
  assert.equal(normaliseIp("1.2.3"), undefined);
});
