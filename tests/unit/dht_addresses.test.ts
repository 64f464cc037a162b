// Which addresses the DHT takes from other nodes (usableAddress), and the BEP 42 external
// address vote: one vote per responding IP, none from private responders, no private winner.

import assert from "node:assert/strict";
import {
  isLoopbackHost,
  isPrivateHost,
  isUnusableHost,
  usableAddress,
} from "../../src/dht/contacts.ts";
import { ExternalIpVotes } from "../../src/dht/external_ip.ts";
import { decodeKrpc, MAX_VALUES_PER_REPLY } from "../../src/dht/krpc.ts";
import { encode } from "../../src/bencode/encode.ts";
import { randomNodeId } from "../../src/dht/node_id.ts";

Deno.test("addresses from replies: never 0/8, multicast, 240/4 or broadcast; loopback only where we live", () => {
  for (const host of ["0.0.0.0", "0.1.2.3", "224.0.0.1", "239.192.152.143"]) {
    assert.ok(isUnusableHost(host), host);
  }
  for (const host of ["240.0.0.1", "255.255.255.255", "::1", "example.org"]) {
    assert.ok(isUnusableHost(host), host);
  }
  for (const host of ["1.2.3.4", "10.0.0.1", "127.0.0.1", "223.255.255.255"]) {
    assert.ok(!isUnusableHost(host), host);
  }
  assert.ok(usableAddress("203.0.113.9", false));
  assert.ok(usableAddress("192.168.1.5", false), "a LAN DHT is fine");
  assert.ok(!usableAddress("127.0.0.1", false));
  assert.ok(!usableAddress("127.3.2.1", false));
  assert.ok(usableAddress("127.3.2.1", true));
  assert.ok(!usableAddress("224.0.0.1", true));
  assert.ok(isLoopbackHost("127.255.0.1") && isLoopbackHost("::1"));
  assert.ok(!isLoopbackHost("128.0.0.1"));
  for (
    const host of ["10.1.1.1", "172.16.0.1", "172.31.255.1", "192.168.0.1"]
      .concat(["169.254.3.4", "100.64.0.1", "127.0.0.1"])
  ) {
    assert.ok(isPrivateHost(host), host);
  }
  for (const host of ["172.32.0.1", "11.0.0.1", "100.128.0.1", "8.8.8.8"]) {
    assert.ok(!isPrivateHost(host), host);
  }
});

Deno.test("external address votes: one per responding IP, none from private responders, never a private winner", () => {
  const votes = new ExternalIpVotes();
  // one host answering from many ports is one vote
  for (let i = 0; i < 10; i++) votes.vote("198.51.100.1", "203.0.113.50");
  assert.equal(votes.winner(), undefined);
  // LAN and loopback responders do not vote
  votes.vote("192.168.1.1", "203.0.113.50");
  votes.vote("127.0.0.1", "203.0.113.50");
  assert.equal(votes.winner(), undefined);
  votes.vote("198.51.100.2", "203.0.113.50");
  assert.equal(votes.winner(), "203.0.113.50");
  // a loopback test: loopback everywhere, nothing voted
  const loopback = new ExternalIpVotes();
  for (let i = 1; i < 10; i++) loopback.vote(`198.51.100.${i}`, "127.0.0.1");
  for (let i = 1; i < 10; i++) loopback.vote(`198.51.100.${i}`, "10.0.0.7");
  assert.equal(loopback.winner(), undefined);
});

Deno.test("a reply's values are read up to 100", () => {
  const values = Array.from(
    { length: 300 },
    (_, i) => new Uint8Array([10, 0, i >> 8, i & 255, 0x1a, 0xe1]),
  );
  const message = decodeKrpc(
    encode({ t: "aa", y: "r", r: { id: randomNodeId(), values } }),
  );
  assert.ok(message.type === "response");
  assert.equal(message.reply.values!.length, MAX_VALUES_PER_REPLY);
  assert.equal(MAX_VALUES_PER_REPLY, 100);
});
