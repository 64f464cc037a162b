import assert from "node:assert/strict";
import { ipBytes, isDialableAddress } from "../../src/net/ip.ts";
import { peerLimit, PeerSample } from "../../src/tracker/peer_sample.ts";

Deno.test("peers kept of a reply: four times numwant, numwant at least BEP 3's default 50", () => {
  assert.equal(peerLimit(80), 320);
  assert.equal(peerLimit(50), 200);
  assert.equal(peerLimit(0), 200);
  assert.equal(peerLimit(1000), 4000);
});

Deno.test("the sample is Algorithm R: the n-th entry replaces slot floor(random * n) when it is below the limit", () => {
  const draws = [0.5, 0.9, 0.1];
  const sample = new PeerSample(2, () => draws.shift()!);
  for (const port of [1, 2, 3, 4, 5]) sample.addText("10.0.0.1", port);
  // 1 and 2 fill the sample; 3: floor(0.5 * 3) = 1 replaces 2; 4: floor(0.9 * 4) = 3 is
  // not kept; 5: floor(0.1 * 5) = 0 replaces 1.
  assert.deepEqual(sample.peers.map((p) => p.port), [5, 3]);
  assert.equal(sample.listed, 5);
  assert.deepEqual(draws, []);
});

Deno.test("undialable entries are counted as listed, never kept, and draw nothing", () => {
  const sample = new PeerSample(10, () => {
    throw new Error("no draw while below the limit");
  });
  const compact = new Uint8Array([
    ...[0, 0, 0, 0, 0, 80], // 0.0.0.0
    ...[224, 0, 0, 1, 0, 80], // multicast
    ...[255, 255, 255, 255, 0, 80], // broadcast
    ...[10, 0, 0, 1, 0, 0], // port 0
    ...[10, 0, 0, 2, 0, 80],
  ]);
  assert.equal(sample.addCompact(compact, 4), true);
  sample.addText("peer.example", 80);
  sample.addText("::", 80);
  sample.addText("::ffff:0.0.0.0", 80);
  sample.addText("fe80::1%eth0", 81);
  assert.deepEqual(sample.peers, [
    { host: "10.0.0.2", port: 80 },
    { host: "fe80::1", port: 81 },
  ]);
  assert.equal(sample.listed, 9);
  assert.equal(sample.addCompact(new Uint8Array(7), 4), false);
  assert.equal(sample.addCompact(new Uint8Array(17), 16), false);
});

Deno.test("dialable addresses: unicast yes; unspecified, multicast, reserved and broadcast no", () => {
  const cases: [string, boolean][] = [
    ["127.0.0.1", true],
    ["10.1.2.3", true],
    ["223.255.255.255", true],
    ["0.1.2.3", false],
    ["224.0.0.251", false],
    ["240.0.0.1", false],
    ["255.255.255.255", false],
    ["::1", true],
    ["2001:db8::1", true],
    ["::", false],
    ["ff02::fb", false],
    ["::ffff:10.0.0.1", true],
    ["::ffff:239.0.0.1", false],
  ];
  for (const [text, dialable] of cases) {
    assert.equal(isDialableAddress(ipBytes(text)!), dialable, text);
  }
});
