// The ban rules: smart ban's outcome, the sole sender of two failed pieces,
// the lone sender of a wrong info dictionary, and the violations that keep
// an address out.

import assert from "node:assert/strict";
import { ActivePiece } from "../../src/pieces/active_piece.ts";
import {
  BanRules,
  dictionaryFailed,
  excludedForViolations,
  MAX_SOLE_FAILURES,
  MAX_VIOLATIONS,
} from "../../src/pieces/ban_rules.ts";
import { BLOCK_SIZE } from "../../src/pieces/geometry.ts";
import { Swarm } from "../../src/swarm/swarm.ts";

const GOOD = new Uint8Array(3 * BLOCK_SIZE).map((_, i) => i * 7);

/** Piece 5 filled from `data`, block b sent by connection senderOf(b). */
function received(data: Uint8Array, senderOf: (b: number) => number) {
  const piece = new ActivePiece(5, data.length, new Uint8Array(data.length));
  for (let b = 0; b < piece.blockCount; b++) {
    piece.receive(
      b,
      data.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE),
      senderOf(b),
    );
  }
  return piece;
}

function corrupted(block: number): Uint8Array {
  const bad = GOOD.slice();
  bad[block * BLOCK_SIZE + 1] ^= 0xff;
  return bad;
}

/** Failed pieces charged per connection, as the torrent's ratings keep them. */
function ledger() {
  const failed = new Map<number, number>();
  const charge = (num: number) => {
    failed.set(num, (failed.get(num) ?? 0) + 1);
    return failed.get(num)!;
  };
  return { failed, charge };
}

Deno.test("ban rules: a failed piece charges each sender once; a lone sender is banned at its second", () => {
  const rules = new BanRules();
  const { failed, charge } = ledger();
  // Shared failure: both senders charged, nobody banned.
  assert.deepEqual(
    rules.pieceFailed(received(corrupted(0), (b) => b === 0 ? 1 : 2), charge),
    [],
  );
  assert.deepEqual(Object.fromEntries(failed), { 1: 1, 2: 1 });
  // Connection 1 alone: its second failed piece bans it.
  const bans = rules.pieceFailed(received(corrupted(1), () => 1), charge);
  assert.equal(failed.get(1), MAX_SOLE_FAILURES);
  assert.deepEqual(bans, [{
    num: 1,
    reason: "sent 2 pieces that failed their hash",
  }]);
  // Connection 2 alone, first time alone but its second failure too.
  assert.deepEqual(
    rules.pieceFailed(received(corrupted(2), () => 2), charge).map((b) =>
      b.num
    ),
    [2],
  );
  // A sender with no rating (charge gives 0) is never banned.
  assert.deepEqual(
    rules.pieceFailed(received(corrupted(0), () => 9), () => 0),
    [],
  );
});

Deno.test("ban rules: smart ban blames the sender whose block differs, once the piece passes with others' data", () => {
  const rules = new BanRules();
  const { charge } = ledger();
  // Connection 7 corrupted block 1; connection 3 sent the rest.
  rules.pieceFailed(received(corrupted(1), (b) => b === 1 ? 7 : 3), charge);
  const bans = rules.piecePassed(received(GOOD, () => 4));
  assert.deepEqual(bans.map((b) => b.num), [7]);
  assert.match(bans[0].reason, /piece 5 .*differ from the verified ones/);
  // The evidence is used once.
  assert.deepEqual(rules.piecePassed(received(GOOD, () => 4)), []);
});

Deno.test("ban rules: a lone peer that corrects its own data is not smart-banned", () => {
  const rules = new BanRules();
  const { charge } = ledger();
  rules.pieceFailed(received(corrupted(0), () => 7), charge);
  assert.deepEqual(rules.piecePassed(received(GOOD, () => 7)), []);
  // With another sender in the verified data, the same evidence bans it.
  rules.pieceFailed(received(corrupted(0), () => 7), charge);
  const mixed = received(GOOD, (b) => b === 0 ? 7 : 8);
  assert.deepEqual(rules.piecePassed(mixed).map((b) => b.num), [7]);
});

Deno.test("ban rules: a wrong info dictionary bans its lone sender, nobody among several", () => {
  assert.deepEqual(dictionaryFailed(new Set([4])), {
    num: 4,
    reason: "sent an info dictionary that does not match the info-hash",
  });
  assert.equal(dictionaryFailed(new Set([4, 5])), null);
  assert.equal(dictionaryFailed(new Set()), null);
});

Deno.test("ban rules: an address is dialled again after violations, until the third", () => {
  const dialled: string[] = [];
  const swarm = new Swarm({
    maxPeers: 10,
    maxHalfOpen: 5,
    reconnectBaseMs: 1000,
    dial: (p) => {
      dialled.push(p.key);
      return Promise.resolve();
    },
  });
  const record = swarm.connectedTo("127.0.0.1", 1, "tracker");
  for (let v = 1; v <= MAX_VIOLATIONS; v++) {
    swarm.disconnected(record, v * 3_600_000, "violation", null);
    assert.equal(excludedForViolations(v), v === MAX_VIOLATIONS);
    swarm.dialSome(v * 3_600_000 + 3_000_000);
    // The dial connects (as admission reports it).
    if (record.connecting) swarm.connectedTo("127.0.0.1", 1, "tracker");
  }
  assert.equal(dialled.length, MAX_VIOLATIONS - 1);
  assert.equal(record.excluded, true);
});
