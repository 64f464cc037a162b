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
  table.queried(far[1].id);
  assert.equal(table.state(table.find(far[1].id)!), "good");

  const newcomer = contactAt(0);
  const result = table.replied(newcomer);
  assert.equal(result.kind, "ping");
  assert.ok(result.kind === "ping" && result.node.port === far[0].port);
  assert.equal(table.find(newcomer.id), undefined, "kept as a replacement");

  table.failed(far[0].id);
  assert.equal(table.state(table.find(far[0].id)!), "questionable");
  table.failed(far[0].id); // two failures in a row: bad, replaced
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
  table.failed(far[2].id);
  table.failed(far[2].id);
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
