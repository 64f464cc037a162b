// What the peer says it has: indices and bitfield sizes are checked against
// the piece count, a first bitfield (or BEP 6 have all / have none) is
// reported once as a whole, a later one (aria2's habit) as the haves it
// adds, and an allowed-fast index out of range is ignored (BEP 6).

import assert from "node:assert/strict";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { PeerViolation } from "../../src/peer/faults.ts";
import { PeerPieces } from "../../src/peer/peer_pieces.ts";

function pieces(count = 10) {
  const changes: number[] = [];
  const p = new PeerPieces(count, (index) => changes.push(index));
  return { p, changes };
}

Deno.test("peer pieces: a have is reported once; one out of range is a violation", () => {
  const { p, changes } = pieces();
  p.have(3);
  p.have(3);
  p.have(9);
  assert.deepEqual(changes, [3, 9]);
  assert.equal(p.has.count, 2);
  assert.throws(
    () => p.have(10),
    (e: unknown) =>
      e instanceof PeerViolation &&
      e.message === "have for piece 10 out of range",
  );
});

Deno.test("peer pieces: a first bitfield is reported as a whole (-1); a wrong size or a spare bit set is a violation", () => {
  const { p, changes } = pieces();
  const field = new Bitfield(10);
  field.set(0);
  field.set(9);
  p.bitfield(field.bytes, true);
  assert.deepEqual(changes, [-1]);
  assert.deepEqual([p.has.has(0), p.has.has(1), p.has.has(9)], [
    true,
    false,
    true,
  ]);
  assert.throws(
    () => pieces().p.bitfield(new Uint8Array(3), true),
    /bitfield of 3 bytes does not fit 10 pieces/,
  );
  // 10 pieces: the low 6 bits of the second byte are spare.
  assert.throws(
    () => pieces().p.bitfield(new Uint8Array([0, 1]), true),
    PeerViolation,
  );
});

Deno.test("peer pieces: a bitfield after other messages adds its pieces as haves", () => {
  const { p, changes } = pieces();
  p.have(1);
  const field = new Bitfield(10);
  field.set(1);
  field.set(4);
  p.bitfield(field.bytes, false);
  assert.deepEqual(changes, [1, 4]);
  // A later bitfield never takes pieces away.
  p.bitfield(new Bitfield(10).bytes, false);
  assert.equal(p.has.count, 2);
});

Deno.test("peer pieces: have all and have none (BEP 6) stand for a bitfield", () => {
  const all = pieces(5);
  all.p.haveAll(true);
  assert.equal(all.p.has.complete, true);
  assert.deepEqual(all.changes, [-1]);

  const none = pieces(5);
  none.p.haveNone(true);
  assert.equal(none.p.has.count, 0);
  assert.deepEqual(none.changes, [-1], "reported, so the owner knows");

  const late = pieces(3);
  late.p.have(0);
  late.p.haveAll(false);
  assert.deepEqual(late.changes, [0, 1, 2]);
});

Deno.test("peer pieces: allowed fast (BEP 6) out of range is ignored", () => {
  const { p, changes } = pieces(4);
  p.allowedFast(2);
  p.allowedFast(4);
  p.allowedFast(1_000_000);
  assert.deepEqual([...Array(4).keys()].filter((i) => p.fastPieces.has(i)), [
    2,
  ]);
  assert.deepEqual(changes, [], "the peer's own pieces are not touched");
});
