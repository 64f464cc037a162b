// The BEP 5 routing table: K = 8 buckets, splitting only the bucket holding our own id,
// good/questionable/bad nodes, replacement of bad nodes, refresh of stale buckets.

import assert from "node:assert/strict";
import type { NodeContact } from "../../src/dht/contacts.ts";
import {
  type NodeId,
  randomIdAtPrefix,
  sharedPrefixBits,
} from "../../src/dht/node_id.ts";
import { GOOD_FOR_MS, K, RoutingTable } from "../../src/dht/routing_table.ts";

const OWN = new Uint8Array(20) as NodeId; // all zero: prefix depth = leading zero bits

function clock() {
  const state = { now: 1_000_000 };
  return { state, now: () => state.now };
}

let nextPort = 10_000;
/** A contact sharing exactly `bits` leading bits with OWN. */
function contactAt(bits: number): NodeContact {
  return {
    id: randomIdAtPrefix(OWN, bits),
    host: "127.0.0.1",
    port: nextPort++,
  };
}

Deno.test("the bucket holding our id splits; a far bucket full of good nodes drops newcomers", () => {
  const { now } = clock();
  const table = new RoutingTable(OWN, now);
  // 8 far nodes (first bit differs) fill the only bucket
  for (let i = 0; i < K; i++) {
    assert.equal(table.replied(contactAt(0)).kind, "added");
  }
  assert.equal(table.bucketCount, 1);
  // a near node makes the bucket (which holds our id) split in two
  assert.equal(table.replied(contactAt(5)).kind, "added");
  assert.equal(table.bucketCount, 2);
  assert.equal(table.size, K + 1);
  // the far bucket no longer holds our id: full of good nodes, it drops the ninth
  assert.equal(table.replied(contactAt(0)).kind, "dropped");
  assert.equal(table.size, K + 1);
  // near nodes keep splitting the last bucket down to their depth
  for (let i = 0; i < K; i++) table.replied(contactAt(20));
  assert.ok(table.bucketCount >= 6, `${table.bucketCount} buckets`);
  // a node refreshes rather than duplicating; our own id is never added
  const known = table.nodes()[0];
  assert.equal(table.replied(known).kind, "refreshed");
  assert.equal(table.replied({ ...known, id: OWN }).kind, "dropped");
  // closest() is sorted by XOR distance to the target
  const closest = table.closest(OWN, K);
  for (let i = 1; i < closest.length; i++) {
    assert.ok(
      sharedPrefixBits(closest[i - 1].id, OWN) >=
        sharedPrefixBits(closest[i].id, OWN),
    );
  }
});

Deno.test("nodes turn questionable after 15 min; a full bucket asks for a ping, and a bad node gives way", () => {
  const { state, now } = clock();
  const table = new RoutingTable(OWN, now);
  table.replied(contactAt(3)); // keeps the far bucket from being the last one
  const far = Array.from({ length: K }, () => contactAt(0));
  for (const c of far) table.replied(c);
  assert.equal(table.bucketCount, 2);
  assert.equal(table.goodCount(), K + 1);

  state.now += GOOD_FOR_MS;
  const oldest = table.find(far[0].id)!;
  assert.equal(table.state(oldest), "questionable");
  // a node that replied once and queries us within 15 min is good again
  table.queried(far[1]);
  assert.equal(table.state(table.find(far[1].id)!), "good");

  const newcomer = contactAt(0);
  const result = table.replied(newcomer);
  assert.equal(result.kind, "ping");
  assert.ok(result.kind === "ping" && result.node.port === far[0].port);
  assert.equal(table.find(newcomer.id), undefined, "kept as a replacement");

  table.failed(far[0]);
  assert.equal(table.state(table.find(far[0].id)!), "questionable");
  table.failed(far[0]); // two failures in a row: bad, replaced
  assert.equal(table.find(far[0].id), undefined);
  assert.ok(table.find(newcomer.id));
  assert.equal(table.size, K + 1);
});

Deno.test("a bad node with no replacement waiting is replaced by the next node that replies", () => {
  const { now } = clock();
  const table = new RoutingTable(OWN, now);
  table.replied(contactAt(3));
  const far = Array.from({ length: K }, () => contactAt(0));
  for (const c of far) table.replied(c);
  table.failed(far[2]);
  table.failed(far[2]);
  assert.ok(table.hasRoomFor(contactAt(0).id));
  assert.ok(!table.closest(OWN, 100).some((n) => n.port === far[2].port));
  const newcomer = contactAt(0);
  assert.equal(table.replied(newcomer).kind, "added");
  assert.equal(table.find(far[2].id), undefined);
  assert.ok(!table.hasRoomFor(contactAt(0).id));
});

Deno.test("buckets untouched for 15 min are refreshed with a random id in their range", () => {
  const { state, now } = clock();
  const table = new RoutingTable(OWN, now);
  table.replied(contactAt(0));
  for (let i = 0; i < K; i++) table.replied(contactAt(4));
  const buckets = table.bucketCount;
  assert.deepEqual(table.refreshTargets(), []);
  state.now += GOOD_FOR_MS;
  const targets = table.refreshTargets();
  assert.equal(targets.length, buckets);
  targets.slice(0, -1).forEach((target, depth) =>
    assert.equal(sharedPrefixBits(target, OWN), depth)
  );
  assert.ok(sharedPrefixBits(targets.at(-1)!, OWN) >= buckets - 1);
  assert.deepEqual(table.refreshTargets(), [], "once a period");
});

Deno.test("an id answering from another address does not move its entry", () => {
  const { now } = clock();
  const table = new RoutingTable(OWN, now);
  const node = contactAt(1);
  table.replied(node);
  assert.equal(table.replied({ ...node, port: node.port + 1 }).kind, "dropped");
  assert.equal(table.find(node.id)!.port, node.port);
});

/** A contact at `bits` shared bits, at a given host. */
function contactOn(host: string, bits: number): NodeContact {
  return { ...contactAt(bits), host };
}

Deno.test("refreshTargets(max) marks only the buckets it returns; the rest come up next round", () => {
  const { state, now } = clock();
  const table = new RoutingTable(OWN, now);
  for (let i = 0; i < K; i++) table.replied(contactAt(0));
  for (let depth = 1; depth <= 6; depth++) {
    for (let i = 0; i < K; i++) table.replied(contactAt(depth));
  }
  const buckets = table.bucketCount;
  assert.ok(buckets >= 7, `${buckets} buckets`);
  state.now += GOOD_FOR_MS;
  const seen = new Set<number>();
  let rounds = 0;
  for (;;) {
    const targets = table.refreshTargets(3);
    if (targets.length === 0) break;
    assert.ok(targets.length <= 3);
    for (const t of targets) {
      seen.add(Math.min(sharedPrefixBits(t, OWN), buckets - 1));
    }
    rounds++;
  }
  assert.equal(seen.size, buckets, "every stale bucket, the deep ones too");
  assert.equal(rounds, Math.ceil(buckets / 3));
});

Deno.test("one address per bucket (replacements included), but any number on loopback", () => {
  const { state, now } = clock();
  const table = new RoutingTable(OWN, now);
  for (let i = 0; i < K; i++) table.replied(contactAt(3)); // full: the next one splits
  assert.equal(table.replied(contactOn("203.0.113.7", 0)).kind, "added");
  const sameHost = contactOn("203.0.113.7", 0);
  assert.equal(table.replied(sameHost).kind, "dropped", "same IP, other port");
  assert.equal(table.find(sameHost.id), undefined);
  // another bucket may hold the same IP
  assert.equal(table.replied(contactOn("203.0.113.7", 1)).kind, "added");
  // loopback is exempt
  for (let i = 0; i < 3; i++) {
    assert.equal(table.replied(contactOn("127.0.0.1", 0)).kind, "added");
  }
  for (let i = 0; i < 4; i++) table.replied(contactOn(`198.51.100.${i}`, 0));
  // a full bucket of questionable nodes keeps a replacement; a second id from its IP is refused
  state.now += GOOD_FOR_MS;
  assert.equal(table.replied(contactOn("192.0.2.1", 0)).kind, "ping");
  assert.equal(table.replied(contactOn("192.0.2.1", 0)).kind, "dropped");
});

Deno.test("queried() and failed() count only from the entry's own address", () => {
  const { state, now } = clock();
  const table = new RoutingTable(OWN, now);
  const node = contactOn("198.51.100.1", 2);
  table.replied(node);
  state.now += GOOD_FOR_MS;
  const entry = table.find(node.id)!;
  table.queried({ ...node, host: "198.51.100.2" }); // a forged query with its id
  assert.equal(table.state(entry), "questionable");
  table.queried({ ...node, port: node.port + 1 });
  assert.equal(table.state(entry), "questionable");
  table.queried(node);
  assert.equal(table.state(entry), "good");

  table.failed({ ...node, port: node.port + 1 });
  table.failed({ ...node, host: "198.51.100.3" });
  assert.equal(
    entry.failures,
    0,
    "a query to a made-up address is not its failure",
  );
  table.failed(node);
  assert.equal(entry.failures, 1);
});

Deno.test("a questionable node is handed out for one check at a time", () => {
  const { state, now } = clock();
  const table = new RoutingTable(OWN, now);
  table.replied(contactAt(3));
  for (let i = 0; i < K; i++) table.replied(contactAt(0));
  state.now += GOOD_FOR_MS;
  // everything is questionable now; a burst of replies to the full bucket
  const results = Array.from({ length: 20 }, () => table.replied(contactAt(0)));
  const pinged = results.flatMap((r) => r.kind === "ping" ? [r.node] : []);
  assert.equal(new Set(pinged).size, pinged.length, "no node checked twice");
  assert.equal(pinged.length, K, "each questionable node once");
  assert.equal(results.at(-1)!.kind, "replacement");
  // the oldest check ends (answered or not): that node may be checked again
  table.checkDone(pinged[0]);
  const next = table.replied(contactAt(0));
  assert.ok(next.kind === "ping" && next.node === pinged[0]);
});
