// BEP 5 tokens (secret rotated every 5 min, the previous one still accepted) and the
// bounded announce_peer store.

import assert from "node:assert/strict";
import { PeerStore } from "../../src/dht/peer_store.ts";
import { ROTATE_EVERY_MS, TokenSecrets } from "../../src/dht/tokens.ts";

function clock() {
  const state = { now: 5_000_000 };
  return { state, now: () => state.now };
}

Deno.test("a token is accepted from its IP for one more rotation, then refused", () => {
  const { state, now } = clock();
  const tokens = new TokenSecrets(now);
  const token = tokens.issue("10.0.0.1");
  assert.ok(tokens.accepts(token, "10.0.0.1"));
  assert.ok(!tokens.accepts(token, "10.0.0.2"), "bound to the IP");
  assert.ok(!tokens.accepts(token.subarray(1), "10.0.0.1"));

  state.now += ROTATE_EVERY_MS; // rotated once: previous secret still good
  assert.ok(tokens.accepts(token, "10.0.0.1"));
  const fresh = tokens.issue("10.0.0.1");
  assert.notDeepEqual(fresh, token);

  state.now += ROTATE_EVERY_MS; // rotated twice: gone
  assert.ok(!tokens.accepts(token, "10.0.0.1"));
  assert.ok(tokens.accepts(fresh, "10.0.0.1"));

  state.now += 10 * ROTATE_EVERY_MS; // a long idle spell forgets everything
  assert.ok(!tokens.accepts(fresh, "10.0.0.1"));
});

Deno.test("the peer store is bounded by info-hashes, peers per hash, age and reply size", () => {
  const { state, now } = clock();
  const store = new PeerStore(
    { maxInfoHashes: 3, maxPeersPerInfoHash: 60, maxPeers: 1000, ttlMs: 1000 },
    now,
  );
  for (let port = 1; port <= 70; port++) {
    store.announce("aa", { host: `10.0.1.${port}`, port });
  }
  const peers = store.peers("aa");
  assert.equal(peers.length, 50, "one reply holds at most 50");
  assert.ok(peers.every((p) => p.port > 10), "the 10 oldest were dropped");

  store.announce("bb", { host: "10.0.0.2", port: 1 });
  store.announce("cc", { host: "10.0.0.3", port: 1 });
  store.announce("aa", { host: "10.0.0.1", port: 99 }); // aa is now the most recent
  store.announce("dd", { host: "10.0.0.4", port: 1 }); // evicts bb, the least recent
  assert.equal(store.infoHashCount, 3);
  assert.deepEqual(store.peers("bb"), []);
  assert.equal(store.peers("cc").length, 1);

  state.now += 600;
  store.announce("cc", { host: "10.0.0.5", port: 2 });
  state.now += 600; // the first cc announce is 1200 ms old, the second 600
  assert.deepEqual(store.peers("cc"), [{ host: "10.0.0.5", port: 2 }]);
  // re-announcing moves a peer to the newest end instead of duplicating it
  store.announce("cc", { host: "10.0.0.5", port: 2 });
  assert.equal(store.peers("cc").length, 1);
});

Deno.test("the peer store keeps one port per IP (the latest), except on loopback", () => {
  const { now } = clock();
  const store = new PeerStore(
    { maxInfoHashes: 3, maxPeersPerInfoHash: 200, maxPeers: 1000, ttlMs: 1000 },
    now,
  );
  store.announce("aa", { host: "10.0.0.2", port: 7000 });
  for (let port = 1; port <= 200; port++) {
    store.announce("aa", { host: "10.0.0.1", port });
  }
  assert.deepEqual(
    store.peers("aa").sort((a, b) => a.host < b.host ? -1 : 1),
    [{ host: "10.0.0.1", port: 200 }, { host: "10.0.0.2", port: 7000 }],
    "one host cannot push the other out with 200 ports",
  );
  // a loopback test swarm runs every peer on 127.0.0.1
  store.announce("bb", { host: "127.0.0.1", port: 1 });
  store.announce("bb", { host: "127.0.0.1", port: 2 });
  assert.equal(store.peers("bb").length, 2);
});

Deno.test("the peer store is bounded in all: the least recently announced info-hash gives up its oldest peer", () => {
  const { state, now } = clock();
  const store = new PeerStore(
    { maxInfoHashes: 100, maxPeersPerInfoHash: 50, maxPeers: 120, ttlMs: 1000 },
    now,
  );
  // one token is good for any info-hash: a few hosts announce many hashes
  for (let hash = 0; hash < 100; hash++) {
    for (let host = 1; host <= 3; host++) {
      store.announce(`h${hash}`, { host: `10.0.0.${host}`, port: 6881 });
    }
  }
  assert.equal(store.peerCount, 120);
  assert.equal(store.infoHashCount, 40, "the 60 least recent are gone");
  assert.deepEqual(store.peers("h59"), []);
  assert.equal(store.peers("h60").length, 3);
  assert.equal(store.peers("h99").length, 3);

  store.announce("h60", { host: "10.0.0.9", port: 1 }); // h60 is now the most recent
  store.announce("h99", { host: "10.0.0.1", port: 2 }); // a re-announce adds nothing
  assert.equal(store.peerCount, 120);
  assert.deepEqual(
    store.peers("h61").map((p) => p.host).sort(),
    ["10.0.0.2", "10.0.0.3"],
    "h61, now the least recent, gave up its oldest peer",
  );

  // expired peers leave the count too
  state.now += 2000;
  for (let hash = 60; hash < 100; hash++) store.peers(`h${hash}`);
  assert.equal(store.peerCount, 0);
  assert.equal(store.infoHashCount, 0);
});
