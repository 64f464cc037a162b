// The download side over fake connections: interest, what a peer is asked
// for (only allowed-fast pieces while it chokes us), what an arriving block
// means (taken, wasted or a violation), endgame cancels, rejects and closes
// giving requests back, and a finished piece's hash deciding between
// storing it and fetching it again.

import { describeSwarmEvent } from "../../src/swarm/events.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Ban } from "../../src/pieces/ban_rules.ts";
import { BlockState } from "../../src/pieces/active_piece.ts";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { Download, type DownloadPeer } from "../../src/pieces/download.ts";
import { BLOCK_SIZE, PieceGeometry } from "../../src/pieces/geometry.ts";
import { type BlockRequest, PiecePicker } from "../../src/pieces/picker.ts";
import { seededRandom } from "../helpers/seeded_random.ts";

const PIECES = 4;
const PIECE_LENGTH = 2 * BLOCK_SIZE;
const DATA = new Uint8Array(PIECES * PIECE_LENGTH).map((_, i) => i * 31 + 7);
const HASHES = new Uint8Array(PIECES * 20);
for (let p = 0; p < PIECES; p++) {
  const piece = DATA.subarray(p * PIECE_LENGTH, (p + 1) * PIECE_LENGTH);
  HASHES.set(createHash("sha1").update(piece).digest(), p * 20);
}

let nextNum = 0;

class FakePeer implements DownloadPeer {
  readonly num = nextNum++;
  readonly has = new Bitfield(PIECES);
  readonly fastPieces = new Bitfield(PIECES);
  readonly outstanding = new Set<number>();
  peerChoking = false;
  amInterested = false;
  room = 8;
  requested: BlockRequest[] = [];
  cancelled: number[] = [];
  haves: number[] = [];
  taken = 0;
  closedWith: string | null = null;

  get pipelineRoom(): number {
    return this.amInterested
      ? Math.max(0, this.room - this.outstanding.size)
      : 0;
  }
  setInterested(interested: boolean): void {
    this.amInterested = interested;
  }
  sendRequests(requests: BlockRequest[]): void {
    this.requested.push(...requests);
  }
  sendCancel(blockId: number): void {
    if (this.outstanding.delete(blockId)) this.cancelled.push(blockId);
  }
  sendHave(index: number): void {
    this.haves.push(index);
  }
  blockTaken(length: number): void {
    this.taken += length;
  }
  close(reason: string): void {
    this.closedWith = reason;
  }
  /** Takes every request sent so far; the test answers them. */
  takeRequests(): BlockRequest[] {
    return this.requested.splice(0);
  }
}

function setup(have = new Bitfield(PIECES), storeFails = false) {
  const geometry = new PieceGeometry(PIECES, PIECE_LENGTH, DATA.length);
  const picker = new PiecePicker(geometry, have, 8, seededRandom(5));
  const peers = new Set<FakePeer>();
  const stored: number[] = [];
  const bans: Ban[] = [];
  const failures = new Map<number, number>();
  const log: string[] = [];
  let completed = 0;
  const download = new Download<FakePeer>({
    picker,
    pieceHashes: HASHES,
    peers,
    store: (piece) => {
      if (storeFails) return false;
      stored.push(piece.index);
      return true;
    },
    chargeFailure: (num) => {
      failures.set(num, (failures.get(num) ?? 0) + 1);
      return failures.get(num)!;
    },
    ban: (ban) => bans.push(ban),
    completed: () => completed++,
    onEvent: (event) => log.push(describeSwarmEvent(event)),
  });
  /** A connected peer with these pieces (a bitfield message). */
  const join = (pieces: number[] = [0, 1, 2, 3]) => {
    const peer = new FakePeer();
    for (const i of pieces) peer.has.set(i);
    peers.add(peer);
    download.peerHas(peer, -1);
    return peer;
  };
  return {
    download,
    picker,
    peers,
    stored,
    bans,
    log,
    join,
    completed: () => completed,
  };
}

/** The real bytes of a request, or `wrong` ones. */
function bytes(r: BlockRequest, wrong = false): Uint8Array {
  const at = r.piece * PIECE_LENGTH + r.begin;
  const real = DATA.slice(at, at + r.length);
  return wrong ? real.map((b) => b ^ 0xff) : real;
}

Deno.test("download: interest follows what a peer has that we lack; two seeds part", () => {
  const have = new Bitfield(PIECES);
  have.set(0);
  const t = setup(have);
  const owner0 = t.join([0]);
  assert.equal(owner0.amInterested, false);
  owner0.has.set(2);
  t.download.peerHas(owner0, 2);
  assert.equal(owner0.amInterested, true);
  // Nothing left to want from it once we have its pieces: interest ends at the tick.
  t.picker.have.set(2);
  t.download.tick(owner0);
  assert.equal(owner0.amInterested, false);
  const full = Bitfield.full(PIECES);
  const seeding = setup(full);
  const seed = seeding.join();
  assert.equal(seed.closedWith, "both sides are seeds");
});

Deno.test("download: a peer is asked for what fits its pipeline; while it chokes us, only allowed-fast pieces", () => {
  const t = setup();
  const peer = t.join();
  peer.room = 3;
  t.download.fill(peer);
  const asked = peer.takeRequests();
  assert.equal(asked.length, 3);
  assert.equal(peer.outstanding.size, 3);
  const choked = t.join();
  choked.peerChoking = true;
  t.download.fill(choked);
  assert.deepEqual(choked.takeRequests(), []);
  const untouched = [0, 1, 2, 3].find((p) =>
    !asked.some((r) => r.piece === p)
  )!;
  choked.fastPieces.set(untouched);
  t.download.fill(choked);
  const fast = choked.takeRequests();
  assert.deepEqual(fast.map((r) => r.piece), [untouched, untouched]);
});

Deno.test("download: only a block asked of the peer is taken; the rest is wasted or, for a piece nobody fetches, a violation", () => {
  const t = setup();
  const peer = t.join();
  peer.room = 1;
  t.download.fill(peer);
  const [r] = peer.takeRequests();
  const other = { ...r, begin: r.begin === 0 ? BLOCK_SIZE : 0 };
  // The piece's other block, never asked of this peer: wasted.
  assert.equal(
    t.download.blockArrived(peer, other.piece, other.begin, bytes(other)),
    null,
  );
  assert.equal(t.download.blockArrived(peer, r.piece, r.begin, bytes(r)), null);
  // Again: a duplicate, wasted.
  assert.equal(t.download.blockArrived(peer, r.piece, r.begin, bytes(r)), null);
  assert.equal(t.download.downloaded, BLOCK_SIZE);
  assert.equal(peer.taken, BLOCK_SIZE);
  assert.equal(t.download.wasted, 2 * BLOCK_SIZE);
  const stranger = [0, 1, 2, 3].find((p) => p !== r.piece)!;
  assert.match(
    t.download.blockArrived(peer, stranger, 0, new Uint8Array(BLOCK_SIZE)) ??
      "",
    /never requested/,
  );
  assert.match(
    t.download.blockArrived(peer, 0, 5, new Uint8Array(3)) ?? "",
    /does not exist/,
  );
});

Deno.test("download: in endgame the first copy of a block is taken and the other requester gets a cancel", () => {
  const t = setup();
  const a = t.join();
  const b = t.join();
  a.room = 8;
  t.download.fill(a);
  const asked = a.takeRequests();
  assert.equal(asked.length, 8, "every block asked of a");
  // Nothing free is left: b doubles up on a's requests.
  b.room = 8;
  t.download.fill(b);
  const doubled = b.takeRequests();
  assert.ok(doubled.length > 0);
  const r = doubled[0];
  assert.equal(t.download.blockArrived(b, r.piece, r.begin, bytes(r)), null);
  assert.deepEqual(a.cancelled, [r.id]);
  assert.ok(!a.outstanding.has(r.id));
  // a's answer crossed the cancel: wasted.
  assert.equal(t.download.blockArrived(a, r.piece, r.begin, bytes(r)), null);
  assert.equal(t.download.wasted, BLOCK_SIZE);
});

Deno.test("download: requests given back (reject, choke, close) are asked of another peer", () => {
  const t = setup();
  const a = t.join();
  a.room = 8;
  t.download.fill(a);
  const [first, second, ...rest] = a.takeRequests();
  t.download.blockRejected(a, first.piece, first.begin, first.length);
  assert.ok(!a.outstanding.has(first.id));
  // A reject for something never asked changes nothing.
  t.download.blockRejected(a, first.piece, first.begin, first.length);
  a.outstanding.delete(second.id);
  t.download.requestsLost([second.id]);
  const b = t.join();
  b.room = 2;
  t.download.fill(b);
  assert.deepEqual(
    b.takeRequests().map((r) => r.id).sort(),
    [first.id, second.id].sort(),
  );
  t.download.peerGone(a);
  t.peers.delete(a);
  assert.equal(a.outstanding.size, 0);
  assert.deepEqual([...t.picker.availability], [1, 1, 1, 1]);
  b.room = 10;
  t.download.fill(b);
  assert.deepEqual(
    b.takeRequests().map((r) => r.id).sort(),
    rest.map((r) => r.id).sort(),
  );
});

Deno.test("download: a verified piece is stored and announced; the last one completes the torrent", () => {
  const t = setup();
  const leecher = t.join([]);
  const seed = t.join();
  seed.room = 8;
  t.download.fill(seed);
  for (const r of seed.takeRequests()) {
    assert.equal(
      t.download.blockArrived(seed, r.piece, r.begin, bytes(r)),
      null,
    );
  }
  assert.deepEqual(t.stored.sort(), [0, 1, 2, 3]);
  assert.deepEqual(leecher.haves.sort(), [0, 1, 2, 3]);
  assert.deepEqual(seed.haves, [], "it has them all");
  assert.equal(t.download.bytesLeft, 0);
  assert.equal(t.completed(), 1);
  assert.equal(seed.closedWith, "both sides are seeds");
  assert.equal(leecher.closedWith, null);
  assert.equal(seed.amInterested, false);
});

Deno.test("download: a piece that fails its hash is fetched again; its lone sender is banned at the second", () => {
  const t = setup();
  const liar = t.join();
  liar.room = 2;
  const failOnce = () => {
    t.download.fill(liar);
    const asked = liar.takeRequests();
    assert.equal(new Set(asked.map((r) => r.piece)).size, 1);
    for (const r of asked) {
      t.download.blockArrived(liar, r.piece, r.begin, bytes(r, true));
    }
    return asked[0].piece;
  };
  const piece = failOnce();
  assert.deepEqual(t.log, [
    `piece ${piece} failed its hash check; fetching it again`,
  ]);
  assert.deepEqual(t.bans, []);
  assert.equal(failOnce(), piece, "the same piece is asked again");
  assert.deepEqual(t.bans, [{
    num: liar.num,
    reason: "sent 2 pieces that failed their hash",
  }]);
  assert.deepEqual(t.stored, []);
  assert.equal(t.download.bytesLeft, DATA.length);
});

Deno.test("download: a piece that cannot be stored is not counted as done", () => {
  const t = setup(undefined, true);
  const seed = t.join();
  seed.room = 2;
  t.download.fill(seed);
  for (const r of seed.takeRequests()) {
    t.download.blockArrived(seed, r.piece, r.begin, bytes(r));
  }
  assert.equal(t.picker.have.count, 0);
  assert.equal(t.download.bytesLeft, DATA.length);
  assert.equal(t.completed(), 0);
});

Deno.test("download: NOTES.md's invariants hold through seeded random requests, arrivals, rejects, chokes, closes and hash failures", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const random = seededRandom(seed);
    const below = (n: number) => Math.floor(random() * n);
    const t = setup();
    for (let i = 0; i < 3; i++) t.join().room = 1 + below(4);
    const check = (step: number) => {
      for (const piece of t.picker.active.values()) {
        for (let b = 0; b < piece.blockCount; b++) {
          const id = t.picker.geometry.blockId(piece.index, b);
          const holders = [...t.peers].filter((p) => p.outstanding.has(id))
            .length;
          const where = `seed ${seed} step ${step} block ${id}`;
          if (piece.states[b] === BlockState.Received) continue;
          assert.ok(piece.requesters[b] >= holders, `${where}: (1)`);
          if (piece.states[b] === BlockState.Requested) {
            assert.ok(piece.requesters[b] > 0, `${where}: (2) Requested`);
          } else assert.equal(holders, 0, `${where}: (2) Free`);
        }
      }
    };
    let step = 0;
    for (; step < 3000 && !t.download.complete; step++) {
      const peers = [...t.peers];
      const peer = peers[below(peers.length)];
      const held = [...peer.outstanding];
      const action = below(10);
      if (action < 3) t.download.fill(peer);
      else if (action < 7 && held.length > 0) {
        // An answer: mostly right, sometimes wrong (a hash failure later).
        const id = held[below(held.length)];
        const r = peer.requested.find((q) => q.id === id)!;
        t.download.blockArrived(
          peer,
          r.piece,
          r.begin,
          bytes(r, below(8) === 0),
        );
      } else if (action === 7 && peer.requested.length > 0) {
        // A reject of any request it was sent: held, or given back already.
        const r = peer.requested[below(peer.requested.length)];
        t.download.blockRejected(peer, r.piece, r.begin, r.length);
      } else if (action === 8) {
        // A choke (or a snub): the connection gives every request back.
        peer.outstanding.clear();
        t.download.requestsLost(held);
      } else if (action === 9 && below(4) === 0) {
        t.peers.delete(peer);
        t.download.peerGone(peer);
        t.join().room = 1 + below(4);
      }
      check(step);
    }
    assert.ok(t.download.complete, `seed ${seed}: done in ${step} steps`);
    assert.deepEqual(t.stored.sort(), [0, 1, 2, 3]);
  }
});
