import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { BLOCK_SIZE, PieceGeometry } from "../../src/pieces/geometry.ts";
import { ActivePiece, BlockState } from "../../src/pieces/active_piece.ts";
import {
  type BlockRequest,
  type PickerPeer,
  PiecePicker,
} from "../../src/pieces/picker.ts";
import { seededRandom } from "../helpers/seeded_random.ts";

function sha1(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(bytes).digest());
}

function payload(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A deterministic shuffle of 0..n-1. */
function shuffled(n: number, seed = 3): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  let x = seed;
  for (let i = n - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) >>> 0;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function bits(size: number, indices: number[]): Bitfield {
  const b = new Bitfield(size);
  for (const i of indices) b.set(i);
  return b;
}

// ---------------------------------------------------------------- Bitfield

Deno.test("Bitfield: wire layout, high bit first", () => {
  const b = new Bitfield(10);
  assert.equal(b.bytes.length, 2);
  b.set(0);
  b.set(7);
  b.set(9);
  assert.deepEqual([...b.bytes], [0b10000001, 0b01000000]);
  assert.equal(b.count, 3);
  assert.ok(b.has(0) && b.has(7) && b.has(9));
  assert.ok(!b.has(1) && !b.has(8));
  b.set(9); // idempotent
  assert.equal(b.count, 3);
  b.clear(0);
  b.clear(0);
  b.clear(1); // clearing an unset bit changes nothing
  assert.equal(b.count, 2);
  assert.deepEqual([...b.bytes], [0b00000001, 0b01000000]);
  assert.equal(b.complete, false);
});

Deno.test("Bitfield.fromWire: accepts right length, rejects wrong length and spare bits", () => {
  const f = Bitfield.fromWire(new Uint8Array([0xff, 0b11000000]), 10);
  assert.ok(f);
  assert.equal(f.count, 10);
  assert.equal(f.complete, true);
  const g = Bitfield.fromWire(new Uint8Array([0b10110000, 0b01000000]), 10);
  assert.ok(g);
  assert.equal(g.count, 4);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter((i) => g.has(i)), [
    0,
    2,
    3,
    9,
  ]);
  // Wrong length.
  assert.equal(Bitfield.fromWire(new Uint8Array(1), 10), null);
  assert.equal(Bitfield.fromWire(new Uint8Array(3), 10), null);
  assert.equal(Bitfield.fromWire(new Uint8Array(0), 1), null);
  // Every spare bit is checked.
  for (let bit = 0; bit < 6; bit++) {
    assert.equal(
      Bitfield.fromWire(new Uint8Array([0, 1 << bit]), 10),
      null,
      `spare bit ${bit}`,
    );
  }
  // No spare bits when the size is a multiple of 8.
  const h = Bitfield.fromWire(new Uint8Array([0xff, 0xff]), 16);
  assert.ok(h);
  assert.equal(h.count, 16);
  // Size 0.
  const z = Bitfield.fromWire(new Uint8Array(0), 0);
  assert.ok(z);
  assert.equal(z.count, 0);
});

Deno.test("Bitfield.fromWire copies the input", () => {
  const input = new Uint8Array([0xf0]);
  const f = Bitfield.fromWire(input, 4)!;
  input[0] = 0;
  assert.ok(f.has(0));
  assert.equal(f.count, 4);
});

Deno.test("Bitfield.full", () => {
  const f = Bitfield.full(11);
  assert.deepEqual([...f.bytes], [0xff, 0b11100000]);
  assert.equal(f.count, 11);
  assert.ok(f.complete);
  assert.ok(Bitfield.fromWire(f.bytes, 11), "full() keeps spare bits zero");
});

// ---------------------------------------------------------------- PieceGeometry

Deno.test("PieceGeometry: last piece and last block sizes", () => {
  // 40000-byte pieces: 16384 + 16384 + 7232; the last piece holds 20000.
  const g = new PieceGeometry(3, 40000, 100000);
  assert.equal(BLOCK_SIZE, 16384);
  assert.equal(g.blocksPerPiece, 3);
  assert.equal(g.lastPieceLength, 20000);
  assert.equal(g.pieceSize(0), 40000);
  assert.equal(g.pieceSize(2), 20000);
  assert.equal(g.blockCount(0), 3);
  assert.equal(g.blockCount(2), 2);
  assert.deepEqual([0, 1, 2].map((b) => g.blockSize(0, b)), [
    16384,
    16384,
    7232,
  ]);
  assert.deepEqual([0, 1].map((b) => g.blockSize(2, b)), [16384, 3616]);
  assert.equal(g.blockId(2, 1), 7);
  // Exact multiple: the last piece is full.
  const e = new PieceGeometry(4, 32768, 4 * 32768);
  assert.equal(e.lastPieceLength, 32768);
  assert.equal(e.blockCount(3), 2);
  assert.equal(e.blockSize(3, 1), 16384);
  // Pieces smaller than a block.
  const s = new PieceGeometry(3, 1000, 2500);
  assert.equal(s.blocksPerPiece, 1);
  assert.equal(s.lastPieceLength, 500);
  assert.equal(s.blockSize(0, 0), 1000);
  assert.equal(s.blockSize(2, 0), 500);
  assert.equal(s.blockId(2, 0), 2);
});

Deno.test("PieceGeometry.blockAt: valid triples and every kind of invalid one", () => {
  const g = new PieceGeometry(3, 40000, 100000);
  assert.equal(g.blockAt(0, 0, 16384), 0);
  assert.equal(g.blockAt(0, 16384, 16384), 1);
  assert.equal(g.blockAt(0, 32768, 7232), 2);
  assert.equal(g.blockAt(2, 16384, 3616), 1);
  assert.equal(g.blockAt(0, 100, 16384), -1, "misaligned begin");
  assert.equal(g.blockAt(0, 16383, 16384), -1, "misaligned begin");
  assert.equal(g.blockAt(0, 0, 16385), -1, "oversized");
  assert.equal(g.blockAt(0, 0, 32768), -1, "two blocks at once");
  assert.equal(g.blockAt(0, 0, 100), -1, "short");
  assert.equal(g.blockAt(0, 0, 0), -1, "empty");
  assert.equal(g.blockAt(0, 32768, 16384), -1, "last block is shorter");
  assert.equal(
    g.blockAt(2, 16384, 16384),
    -1,
    "past the end of the last piece",
  );
  assert.equal(
    g.blockAt(2, 32768, 3616),
    -1,
    "no third block in the last piece",
  );
  assert.equal(g.blockAt(0, 49152, 16384), -1, "past blocksPerPiece");
  assert.equal(g.blockAt(3, 0, 16384), -1, "piece out of range");
  assert.equal(g.blockAt(0xffffffff, 0, 16384), -1, "piece out of range");
  assert.equal(g.blockAt(0, 0xffffc000, 16384), -1, "huge begin");
});

// ---------------------------------------------------------------- ActivePiece

function receiveAll(
  piece: ActivePiece,
  data: Uint8Array,
  order: number[],
  sender = 1,
): void {
  for (const b of order) {
    const block = data.subarray(
      b * BLOCK_SIZE,
      Math.min((b + 1) * BLOCK_SIZE, data.length),
    );
    assert.equal(piece.receive(b, block, sender), true);
  }
}

Deno.test("ActivePiece: out-of-order blocks hash to the one-shot SHA-1", () => {
  const sizes = [
    40 * BLOCK_SIZE, // more than one hash batch
    3 * BLOCK_SIZE + 100, // short last block
    BLOCK_SIZE,
    1000, // a last piece shorter than one block
    1,
    33 * BLOCK_SIZE - 1,
  ];
  for (const size of sizes) {
    const data = payload(size, size);
    const blocks = Math.ceil(size / BLOCK_SIZE);
    for (
      const order of [
        shuffled(blocks, size),
        shuffled(blocks, size + 1),
        Array.from({ length: blocks }, (_, i) => blocks - 1 - i),
        Array.from({ length: blocks }, (_, i) => i),
      ]
    ) {
      const piece = new ActivePiece(4, size, new Uint8Array(size));
      assert.equal(piece.blockCount, blocks);
      receiveAll(piece, data, order);
      assert.ok(piece.complete);
      assert.deepEqual(piece.buffer, data);
      assert.equal(
        piece.verify(sha1(data)),
        true,
        `size ${size} order ${order}`,
      );
    }
  }
});

Deno.test("ActivePiece: a wrong block fails verify, reset lets it be fetched again", () => {
  const size = 2 * BLOCK_SIZE + 10;
  const data = payload(size);
  const piece = new ActivePiece(0, size, new Uint8Array(size));
  const bad = data.slice();
  bad[BLOCK_SIZE + 5] ^= 1;
  receiveAll(piece, bad, [2, 0, 1], 9);
  assert.deepEqual([...piece.senders], [9, 9, 9]);
  assert.equal(piece.verify(sha1(data)), false);
  piece.reset();
  assert.equal(piece.received, 0);
  assert.equal(piece.freeBlocks, 3);
  assert.equal(piece.complete, false);
  assert.deepEqual([...piece.states], [0, 0, 0]);
  assert.deepEqual([...piece.requesters], [0, 0, 0]);
  receiveAll(piece, data, [1, 2, 0], 4);
  assert.deepEqual([...piece.senders], [4, 4, 4]);
  assert.equal(piece.verify(sha1(data)), true);
});

Deno.test("ActivePiece: request, release and receive bookkeeping", () => {
  const piece = new ActivePiece(
    0,
    3 * BLOCK_SIZE,
    new Uint8Array(3 * BLOCK_SIZE),
  );
  assert.equal(piece.freeBlocks, 3);
  piece.markRequested(0);
  assert.equal(piece.states[0], BlockState.Requested);
  assert.equal(piece.freeBlocks, 2);
  piece.markRequested(0); // endgame: a second requester
  assert.equal(piece.requesters[0], 2);
  assert.equal(piece.freeBlocks, 2);
  piece.release(0);
  assert.equal(piece.states[0], BlockState.Requested, "one request still out");
  piece.release(0);
  assert.equal(piece.states[0], BlockState.Free);
  assert.equal(piece.freeBlocks, 3);
  piece.release(0); // an extra release is harmless
  assert.equal(piece.requesters[0], 0);
  assert.equal(piece.freeBlocks, 3);

  piece.markRequested(1);
  assert.equal(piece.receive(1, new Uint8Array(BLOCK_SIZE).fill(1), 5), true);
  assert.equal(piece.states[1], BlockState.Received);
  assert.equal(piece.freeBlocks, 2);
  assert.equal(piece.senders[1], 5);
  assert.equal(
    piece.receive(1, new Uint8Array(BLOCK_SIZE).fill(2), 6),
    false,
    "duplicate",
  );
  assert.equal(piece.senders[1], 5);
  assert.equal(piece.buffer[BLOCK_SIZE], 1, "a duplicate does not overwrite");
  piece.release(1); // the loser's request goes away: still received
  assert.equal(piece.states[1], BlockState.Received);
  assert.equal(piece.freeBlocks, 2);

  // An unrequested block that arrives is counted too.
  assert.equal(piece.receive(2, new Uint8Array(BLOCK_SIZE), 7), true);
  assert.equal(piece.freeBlocks, 1);
  assert.equal(piece.received, 2);
  assert.equal(piece.complete, false);
  assert.deepEqual([...piece.senders], [-1, 5, 7]);
});

// ---------------------------------------------------------------- PiecePicker

/** A picker peer whose bitfield stays reachable for availability updates. */
function peer(has: Bitfield): PickerPeer & { has: Bitfield } {
  return { has, outstanding: new Set() };
}

function pick(picker: PiecePicker, p: PickerPeer, max: number): BlockRequest[] {
  const out: BlockRequest[] = [];
  picker.pick(p, max, out);
  return out;
}

/** 8 pieces of 2 blocks; the last piece is 5000 bytes (one block). */
function smallTorrent(maxActive = 8, pieceCount = 8) {
  const pieceLength = 2 * BLOCK_SIZE;
  const total = (pieceCount - 1) * pieceLength + 5000;
  const geometry = new PieceGeometry(pieceCount, pieceLength, total);
  const have = new Bitfield(pieceCount);
  const picker = new PiecePicker(geometry, have, maxActive);
  return { geometry, have, picker, total, pieceLength, pieceCount };
}

function finish(
  picker: PiecePicker,
  index: number,
  data?: Uint8Array,
): { buffer: Uint8Array } {
  const piece = picker.active.get(index);
  assert.ok(piece, `piece ${index} is not active`);
  const body = data ?? payload(piece.size, index);
  for (let b = 0; b < piece.blockCount; b++) {
    piece.receive(b, body.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE), 1);
  }
  assert.ok(piece.verify(sha1(body)));
  picker.completed(piece);
  return piece;
}

Deno.test("PiecePicker: requests carry piece, begin, length and global id", () => {
  const { picker, pieceCount } = smallTorrent();
  const p = peer(bits(pieceCount, [7]));
  picker.addPeer(p.has);
  const out = pick(picker, p, 10);
  assert.deepEqual(out, [{ piece: 7, begin: 0, length: 5000, id: 14 }]);
  assert.deepEqual([...p.outstanding], [14]);

  const q = peer(bits(pieceCount, [2]));
  picker.addPeer(q.has);
  assert.deepEqual(pick(picker, q, 10), [
    { piece: 2, begin: 0, length: 16384, id: 4 },
    { piece: 2, begin: 16384, length: 16384, id: 5 },
  ]);
});

Deno.test("PiecePicker: only picks pieces the peer has, and never more than max", () => {
  const { picker, pieceCount } = smallTorrent();
  const p = peer(bits(pieceCount, [3, 5]));
  picker.addPeer(p.has);
  const first = pick(picker, p, 3);
  assert.equal(first.length, 3);
  const rest = pick(picker, p, 100);
  assert.equal(rest.length, 1);
  for (const r of [...first, ...rest]) {
    assert.ok(r.piece === 3 || r.piece === 5);
  }
  assert.deepEqual(pick(picker, p, 100), []);
  assert.deepEqual(pick(picker, peer(new Bitfield(pieceCount)), 100), []);
  assert.deepEqual(pick(picker, peer(bits(pieceCount, [0])), 0), []);
});

Deno.test("PiecePicker: does not pick pieces we already have", () => {
  const { picker, have, pieceCount } = smallTorrent();
  for (let i = 0; i < pieceCount; i++) if (i !== 4) have.set(i);
  const p = peer(Bitfield.full(pieceCount));
  picker.addPeer(p.has);
  const out = pick(picker, p, 100);
  assert.deepEqual(out.map((r) => r.piece), [4, 4]);
});

Deno.test("PiecePicker: rarest piece first", () => {
  const { picker, pieceCount } = smallTorrent();
  // Availability: every piece 3 except piece 6 (2) and piece 2 (4).
  for (let k = 0; k < 3; k++) {
    picker.addPeer(bits(pieceCount, [0, 1, 2, 3, 4, 5, 7]));
  }
  picker.addPeer(bits(pieceCount, [2, 6]));
  picker.addPeer(bits(pieceCount, [6]));
  assert.deepEqual([...picker.availability], [3, 3, 4, 3, 3, 3, 2, 3]);
  const p = peer(Bitfield.full(pieceCount));
  picker.addPeer(p.has);
  const out = pick(picker, p, 2);
  assert.deepEqual(out.map((r) => r.piece), [6, 6]);
  // Piece 2 (most common) comes last. (Fresh peers may also get endgame
  // duplicates of pieces already started; only first appearances count.)
  const order: number[] = [6];
  for (let i = 0; i < 7; i++) {
    const q = peer(Bitfield.full(pieceCount));
    for (const r of pick(picker, q, 2)) {
      if (!order.includes(r.piece)) order.push(r.piece);
    }
  }
  assert.equal(order.length, 8);
  assert.equal(order[order.length - 1], 2);
});

Deno.test("PiecePicker: availability follows peers and have messages", () => {
  const { picker, pieceCount } = smallTorrent();
  const a = bits(pieceCount, [0, 1]);
  picker.addPeer(a);
  picker.addPeer(bits(pieceCount, [1]));
  picker.peerHas(7);
  assert.deepEqual([...picker.availability], [1, 2, 0, 0, 0, 0, 0, 1]);
  picker.removePeer(a);
  assert.deepEqual([...picker.availability], [0, 1, 0, 0, 0, 0, 0, 1]);
  picker.removePeer(a); // piece 0 never goes below zero
  assert.deepEqual([...picker.availability], [0, 0, 0, 0, 0, 0, 0, 1]);
});

Deno.test("PiecePicker: random among equally rare pieces", () => {
  const draw = (random: () => number) => {
    const { geometry, have, pieceCount } = smallTorrent();
    const picker = new PiecePicker(geometry, have, 8, random);
    const p = peer(Bitfield.full(pieceCount));
    picker.addPeer(p.has);
    return pick(picker, p, 1)[0].piece;
  };
  // The random number is where the scan for the rarest starts.
  assert.equal(draw(() => 0), 0);
  assert.equal(draw(() => 0.5), 4);
  assert.equal(draw(() => 0.99), 7);
  // Seeded draws spread over the equally rare pieces.
  const random = seededRandom(11);
  const seen = new Set(Array.from({ length: 40 }, () => draw(random)));
  assert.ok(seen.size > 4, `only ever picked ${[...seen]}`);
});

Deno.test("PiecePicker: prefers pieces already in progress", () => {
  const { picker, pieceCount } = smallTorrent();
  // Without the one-block last piece, so every piece has two blocks.
  const a = peer(bits(pieceCount, [0, 1, 2, 3, 4, 5, 6]));
  const b = peer(bits(pieceCount, [0, 1, 2, 3, 4, 5, 6]));
  picker.addPeer(a.has);
  picker.addPeer(b.has);
  const [first] = pick(picker, a, 1);
  const [second] = pick(picker, b, 1);
  assert.equal(
    second.piece,
    first.piece,
    "b finishes a's piece before starting one",
  );
  assert.notEqual(second.id, first.id);
  assert.equal(picker.active.size, 1);
  // A peer without the in-progress piece starts another.
  const c = peer(bits(pieceCount, [(first.piece + 1) % pieceCount]));
  picker.addPeer(c.has);
  const fromC = pick(picker, c, 1);
  assert.equal(fromC[0].piece, (first.piece + 1) % pieceCount);
});

Deno.test("PiecePicker: never more than maxActivePieces in progress", () => {
  const { picker, pieceCount } = smallTorrent(3);
  const peers = [0, 1, 2, 3].map((k) =>
    peer(bits(pieceCount, [2 * k, 2 * k + 1]))
  );
  for (const p of peers) picker.addPeer(p.has);
  let total = 0;
  for (const p of peers) {
    total += pick(picker, p, 100).length;
    assert.ok(picker.active.size <= 3, `active ${picker.active.size}`);
  }
  assert.equal(picker.active.size, 3);
  assert.equal(total, 6); // three pieces of two blocks
  // A piece completes: room for one more.
  const done = [...picker.active.keys()][0];
  finish(picker, done);
  assert.equal(picker.active.size, 2);
  let more = 0;
  for (const p of peers) more += pick(picker, p, 100).length;
  assert.ok(more > 0);
  assert.equal(picker.active.size, 3);
});

Deno.test("PiecePicker: release() makes a block available again", () => {
  const { picker, pieceCount } = smallTorrent(1);
  const a = peer(bits(pieceCount, [0, 1, 2, 3, 4, 5, 6]));
  const b = peer(Bitfield.full(pieceCount));
  picker.addPeer(a.has);
  picker.addPeer(b.has);
  const got = pick(picker, a, 100);
  assert.equal(got.length, 2);
  assert.deepEqual(
    pick(picker, b, 100),
    [],
    "nothing free, max active reached, not endgame",
  );
  a.outstanding.delete(got[1].id);
  picker.release(got[1].id);
  assert.deepEqual(pick(picker, b, 100), [got[1]]);
  // Releasing a block of a piece that is not active is a no-op.
  picker.release(99);
});

Deno.test("PiecePicker: failed() resets the piece so its blocks are picked again", () => {
  const { picker, pieceCount } = smallTorrent(1);
  const a = peer(Bitfield.full(pieceCount));
  picker.addPeer(a.has);
  const got = pick(picker, a, 100);
  const piece = picker.active.get(got[0].piece)!;
  for (let b = 0; b < piece.blockCount; b++) {
    piece.receive(
      b,
      new Uint8Array(Math.min(BLOCK_SIZE, piece.size - b * BLOCK_SIZE)),
      1,
    );
  }
  assert.equal(piece.verify(new Uint8Array(20)), false);
  picker.failed(piece);
  assert.equal(picker.active.get(got[0].piece), piece);
  const again = pick(picker, peer(Bitfield.full(pieceCount)), 100);
  assert.deepEqual(again, got);
});

Deno.test("PiecePicker: endgame doubles up requests, at most 2 per block, not the same peer twice", () => {
  const { picker, pieceCount } = smallTorrent(8, 2); // 2 pieces: 2 blocks + 1 block
  const a = peer(Bitfield.full(pieceCount));
  const b = peer(Bitfield.full(pieceCount));
  const c = peer(Bitfield.full(pieceCount));
  for (const p of [a, b, c]) picker.addPeer(p.has);
  const fromA = pick(picker, a, 100);
  assert.equal(fromA.length, 3);
  assert.equal(picker.inEndgame, true);
  assert.deepEqual(
    pick(picker, a, 100),
    [],
    "a is never asked twice for a block",
  );
  const fromB = pick(picker, b, 100);
  assert.deepEqual(
    fromB.map((r) => r.id).sort(),
    fromA.map((r) => r.id).sort(),
    "b gets the same blocks",
  );
  assert.deepEqual(pick(picker, c, 100), [], "no third requester");
  // b's request for one block goes away: c may take it.
  const freed = fromB[0];
  b.outstanding.delete(freed.id);
  picker.release(freed.id);
  assert.deepEqual(pick(picker, c, 100), [freed]);
  // a peer that lacks the pieces gets nothing in endgame.
  const d = peer(new Bitfield(pieceCount));
  assert.deepEqual(pick(picker, d, 100), []);
});

Deno.test("PiecePicker: not in endgame while pieces are unstarted or blocks free", () => {
  const { picker, pieceCount } = smallTorrent(8, 3);
  const a = peer(bits(pieceCount, [0]));
  const b = peer(Bitfield.full(pieceCount));
  picker.addPeer(a.has);
  picker.addPeer(b.has);
  assert.equal(pick(picker, a, 2).length, 2);
  assert.equal(picker.inEndgame, false, "two pieces not started");
  assert.equal(pick(picker, b, 1).length, 1);
  assert.equal(picker.inEndgame, false, "a piece not started or a block free");
  // b takes the 2 free blocks left, then doubles up a's 2 blocks of piece 0.
  const rest = pick(picker, b, 100);
  assert.equal(picker.inEndgame, true);
  assert.equal(rest.length, 4);
  assert.deepEqual(rest.slice(2).map((r) => r.id), [0, 1]);
});

Deno.test("PiecePicker: completed() sets have, frees the piece and pools its buffer", () => {
  const { picker, have, pieceCount, pieceLength } = smallTorrent(1);
  const a = peer(Bitfield.full(pieceCount));
  picker.addPeer(a.has);
  const [r] = pick(picker, a, 100);
  const piece = finish(picker, r.piece);
  assert.ok(have.has(r.piece));
  assert.equal(have.count, 1);
  assert.equal(picker.active.has(r.piece), false);
  const [next] = pick(picker, a, 100);
  assert.notEqual(next.piece, r.piece);
  const nextPiece = picker.active.get(next.piece)!;
  assert.equal(nextPiece.buffer.buffer, piece.buffer.buffer, "buffer reused");
  assert.equal(nextPiece.buffer.length, picker.geometry.pieceSize(next.piece));
  assert.equal(nextPiece.buffer.buffer.byteLength, pieceLength);
});

Deno.test("PiecePicker: a short last piece's pooled buffer is full size when reused", () => {
  const { picker, have, pieceCount, pieceLength } = smallTorrent(1);
  const last = pieceCount - 1;
  const only = peer(bits(pieceCount, [last]));
  picker.addPeer(only.has);
  const got = pick(picker, only, 100);
  assert.deepEqual(got.map((r) => r.length), [5000]);
  const lastPiece = picker.active.get(last)!;
  assert.equal(lastPiece.buffer.length, 5000);
  finish(picker, last);
  assert.ok(have.has(last));
  // The next piece gets the pooled buffer, and it holds a whole piece.
  const all = peer(Bitfield.full(pieceCount));
  picker.addPeer(all.has);
  const next = pick(picker, all, 100);
  assert.equal(next.length, 2);
  const nextPiece = picker.active.get(next[0].piece)!;
  assert.equal(
    nextPiece.buffer.buffer,
    lastPiece.buffer.buffer,
    "buffer reused",
  );
  assert.equal(nextPiece.buffer.length, pieceLength);
  const data = payload(pieceLength, 99);
  finish(picker, next[0].piece, data);
});

Deno.test("PiecePicker: interesting()", () => {
  const { picker, have, pieceCount } = smallTorrent();
  assert.equal(picker.interesting(new Bitfield(pieceCount)), false);
  assert.equal(picker.interesting(bits(pieceCount, [3])), true);
  have.set(3);
  assert.equal(picker.interesting(bits(pieceCount, [3])), false);
  assert.equal(picker.interesting(Bitfield.full(pieceCount)), true);
  for (let i = 0; i < pieceCount; i++) have.set(i);
  assert.equal(picker.interesting(Bitfield.full(pieceCount)), false);
});
