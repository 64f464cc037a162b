// Choker, bandwidth caps, rate meter, rating, smart ban, the peer report and
// the swarm's address book, on injected clocks and seeded randomness.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ActivePiece } from "../../src/pieces/active_piece.ts";
import { BLOCK_SIZE } from "../../src/pieces/geometry.ts";
import { SmartBan } from "../../src/pieces/smart_ban.ts";
import { Bandwidth } from "../../src/swarm/bandwidth.ts";
import {
  Choker,
  type ChokerPeer,
  IDLE_SLOT_MS,
  OPTIMISTIC_TICKS,
  RECHOKE_TICKS,
} from "../../src/swarm/choker.ts";
import { seededRandom } from "../helpers/seeded_random.ts";
import {
  formatPeerReport,
  peerReportRows,
} from "../../src/swarm/peer_report.ts";
import { RateMeter } from "../../src/swarm/rate_meter.ts";
import { newRating, score } from "../../src/swarm/rating.ts";
import { type PeerRecord, Swarm } from "../../src/swarm/swarm.ts";

class FakePeer implements ChokerPeer {
  amChoking = true;
  snubbed = false;
  slotUsedAt = 0;
  uploadsQueued = 0;
  /** The clock the choker is given; unchoking uses the slot "now". */
  now = 0;
  constructor(
    public name: string,
    public peerInterested: boolean,
    public rate = 0,
    public uploadRate = 0,
  ) {}
  setChoking(choking: boolean): void {
    if (!choking && this.amChoking) this.slotUsedAt = this.now;
    this.amChoking = choking;
  }
}

const unchoked = (peers: FakePeer[]) =>
  peers.filter((p) => !p.amChoking).map((p) => p.name).sort();

Deno.test("choker: leeching, the fastest uploaders to us get the regular slots", () => {
  const peers = [
    new FakePeer("slow", true, 10),
    new FakePeer("fast", true, 1000),
    new FakePeer("mid", true, 500),
    new FakePeer("idle", false, 5000),
  ];
  const choker = new Choker<FakePeer>(3);
  choker.rechoke(peers, false, 0);
  // 3 slots: 2 regular (fastest interested) + 1 optimistic, not yet assigned.
  assert.deepEqual(unchoked(peers), ["fast", "mid"]);
  choker.rotateOptimistic(peers);
  assert.deepEqual(unchoked(peers), ["fast", "mid", "slow"]);
});

Deno.test("choker: each tick reclaims idle slots, every 10th is a round, every 30th a new optimistic unchoke drawn at random", () => {
  const peers = ["a", "b", "c", "d"].map((n, i) => new FakePeer(n, true, i));
  // Each keeps asking, so no slot is idle.
  for (const p of peers) p.uploadsQueued = 1;
  const draws: number[] = [];
  const random = seededRandom(3);
  const choker = new Choker<FakePeer>(2, () => {
    draws.push(random());
    return draws.at(-1)!;
  });
  for (let t = 1; t < RECHOKE_TICKS; t++) choker.tick(peers, false, t * 1000);
  assert.deepEqual(unchoked(peers), [], "no round yet");
  choker.tick(peers, false, RECHOKE_TICKS * 1000);
  // 2 slots: the fastest (d) gets the regular one; the optimistic is not drawn yet.
  assert.deepEqual(unchoked(peers), ["d"]);
  for (let t = RECHOKE_TICKS + 1; t <= OPTIMISTIC_TICKS; t++) {
    choker.tick(peers, false, t * 1000);
  }
  assert.equal(draws.length, 1);
  // The draw picks among the three choked peers, in their order.
  const drawn = ["a", "b", "c"][Math.floor(draws[0] * 3)];
  assert.deepEqual(unchoked(peers), [drawn, "d"].sort());
});

Deno.test("choker: seeding ranks by upload rate; anti-snub only while leeching", () => {
  const a = new FakePeer("a", true, 0, 100);
  const b = new FakePeer("b", true, 0, 900);
  const c = new FakePeer("c", true, 0, 50);
  const choker = new Choker<FakePeer>(2);
  choker.rechoke([a, b, c], true, 0);
  assert.deepEqual(unchoked([a, b, c]), ["b"]);
  const snubber = new FakePeer("snubber", true, 9999);
  snubber.snubbed = true;
  const honest = new FakePeer("honest", true, 1);
  choker.rechoke([snubber, honest], false, 0);
  assert.deepEqual(unchoked([snubber, honest]), ["honest"]);
});

Deno.test("choker: a newly interested peer is unchoked at once while a slot is free", () => {
  const peers = [
    new FakePeer("a", true),
    new FakePeer("b", true),
    new FakePeer("c", true),
  ];
  const choker = new Choker<FakePeer>(2);
  choker.interested(peers[0], peers);
  choker.interested(peers[1], peers);
  choker.interested(peers[2], peers);
  assert.deepEqual(unchoked(peers), ["a", "b"]);
  choker.removed(peers[0], peers.slice(1));
  peers[0].amChoking = true;
  assert.deepEqual(unchoked(peers), ["b", "c"]);
});

Deno.test("choker: an unchoked peer that asks for nothing for 20 s gives its slot to a waiting one", () => {
  const hog = new FakePeer("hog", true);
  const busy = new FakePeer("busy", true);
  const waiter = new FakePeer("waiter", true);
  const peers = [hog, busy, waiter];
  const choker = new Choker<FakePeer>(2);
  choker.interested(hog, peers);
  choker.interested(busy, peers);
  choker.interested(waiter, peers);
  assert.deepEqual(unchoked(peers), ["busy", "hog"]);
  // busy keeps asking (one request queued); hog never does.
  busy.uploadsQueued = 1;
  choker.reclaimIdle(peers, IDLE_SLOT_MS - 1);
  assert.deepEqual(unchoked(peers), ["busy", "hog"], "not idle long enough");
  const later = IDLE_SLOT_MS;
  for (const p of peers) p.now = later;
  choker.reclaimIdle(peers, later);
  assert.deepEqual(unchoked(peers), ["busy", "waiter"]);
  // The new holder has a fresh 20 s; the hog may come back when a slot is free.
  choker.reclaimIdle(peers, later + IDLE_SLOT_MS - 1);
  assert.deepEqual(unchoked(peers), ["busy", "waiter"]);
  // busy leaves: its slot goes to the hog, the one interested peer waiting.
  choker.removed(busy, [hog, waiter]);
  assert.deepEqual(unchoked([hog, waiter]), ["hog", "waiter"]);
});

Deno.test("choker: an idle peer keeps its slot while nobody waits, and ranks last in a round", () => {
  const hog = new FakePeer("hog", true, 0, 5000);
  const other = new FakePeer("other", true, 0, 10);
  const choker = new Choker<FakePeer>(2);
  choker.interested(hog, [hog]);
  choker.reclaimIdle([hog], 10 * IDLE_SLOT_MS);
  assert.deepEqual(unchoked([hog]), ["hog"], "nobody is waiting");
  // Seeding, a round ranks by upload rate, but an idle slot holder goes last.
  choker.rechoke([hog, other], true, 10 * IDLE_SLOT_MS);
  assert.deepEqual(unchoked([hog, other]), ["other"]);
  // A peer with requests queued is not idle, however long ago it asked.
  const queued = new FakePeer("queued", true);
  const waiting = new FakePeer("waiting", true);
  choker.interested(queued, [queued]);
  queued.uploadsQueued = 3;
  choker.reclaimIdle([queued, waiting], 10 * IDLE_SLOT_MS);
  assert.deepEqual(unchoked([queued, waiting]), ["queued"]);
});

Deno.test("bandwidth: unlimited allows everything; a cap makes the caller wait until the bucket refills", () => {
  const free = new Bandwidth(0);
  free.charge(1e12);
  assert.ok(free.allows(1e9));
  assert.equal(free.waitMs(1e9), 0);
  const clock = { now: 0 };
  const MIB = 1024 * 1024;
  const capped = new Bandwidth(MIB, () => clock.now);
  // The bucket holds a fifth of a second: a burst beyond it is paid for by waiting.
  assert.ok(capped.allows(MIB / 5));
  capped.charge(MIB); // a second's worth spent at once
  assert.equal(capped.allows(16384), false);
  // Owed: 0.8 s of the cap, plus a block's worth.
  assert.equal(
    capped.waitMs(16384),
    Math.ceil(((0.8 * MIB + 16384) / MIB) * 1000),
  );
  clock.now = 800;
  assert.equal(capped.allows(16384), false);
  clock.now = 816;
  assert.ok(capped.allows(16384));
  assert.equal(capped.waitMs(16384), 0);
  // Refilling stops at the capacity, however long the pause.
  clock.now = 60_000;
  capped.charge(MIB / 5);
  assert.equal(capped.allows(1), false);
});

Deno.test("rating: speed raises a score, failures and violations sink it, a ban ends it", () => {
  const fast = { ...newRating(), peakRate: 10 * 1024 * 1024 };
  const slow = { ...newRating(), peakRate: 16 * 1024 };
  assert.ok(score(fast) > score(slow));
  assert.ok(score({ ...fast, failedPieces: 1 }) < score(fast) - 40);
  assert.ok(score({ ...slow, violations: 1 }) < 0);
  assert.equal(score({ ...fast, banned: true }), -Infinity);
});

function filledPiece(
  index: number,
  data: Uint8Array,
  senderOf: (block: number) => number,
): ActivePiece {
  const piece = new ActivePiece(
    index,
    data.length,
    new Uint8Array(data.length),
  );
  for (let b = 0; b < piece.blockCount; b++) {
    piece.receive(
      b,
      data.subarray(b * BLOCK_SIZE, (b + 1) * BLOCK_SIZE),
      senderOf(b),
    );
  }
  return piece;
}

Deno.test("smart ban: only the peer whose blocks differ from the verified data is blamed", () => {
  const good = crypto.getRandomValues(new Uint8Array(4 * BLOCK_SIZE));
  const bad = good.slice();
  bad[2 * BLOCK_SIZE + 5] ^= 0xff; // block 2 corrupted by peer 7
  const ban = new SmartBan();
  // First attempt: honest peer 1 sent blocks 0, 1, 3; peer 7 sent block 2.
  const failed = filledPiece(4, bad, (b) => b === 2 ? 7 : 1);
  const expected = createHash("sha1").update(good).digest();
  assert.equal(failed.verify(expected), false);
  ban.pieceFailed(failed);
  // Second attempt, all from honest peer 2: it passes.
  const passed = filledPiece(4, good, () => 2);
  assert.ok(passed.verify(expected));
  assert.deepEqual([...ban.culprits(passed)], [7]);
  // The evidence is used once.
  assert.deepEqual([...ban.culprits(passed)], []);
});

Deno.test("peer report: JSON and CSV rows for connected peers, best first", () => {
  const record = (
    key: string,
    client: string,
    downloaded: number,
    banned = false,
  ): PeerRecord => ({
    host: "127.0.0.1",
    port: 1,
    key,
    source: "test",
    connected: false,
    connecting: false,
    rating: { ...newRating(), downloaded, peakRate: downloaded, banned },
    client,
    nextDialAt: 0,
    excluded: banned,
  });
  const rows = peerReportRows([
    record("127.0.0.1:1", "libtorrent (Rasterbar) 2.0.8", 5_000_000),
    record("127.0.0.1:2", "unknown (x,y)", 10, true),
    record("127.0.0.1:3", "", 0), // never connected: not reported
  ]);
  assert.deepEqual(rows.map((r) => r.address), ["127.0.0.1:1", "127.0.0.1:2"]);
  assert.equal(rows[1].banned, true);
  const csv = formatPeerReport(rows, "csv").trim().split("\n");
  assert.equal(
    csv[0],
    "address,client,downloaded,uploaded,rate,rttMs,failedPieces,violations,score,banned",
  );
  assert.ok(csv[2].startsWith('127.0.0.1:2,"unknown (x,y)",10,'));
  assert.deepEqual(JSON.parse(formatPeerReport(rows, "json")), rows);
});

Deno.test("swarm: dials the best-rated addresses first, never banned or backed-off ones", () => {
  const dialled: string[] = [];
  const swarm = new Swarm({
    maxPeers: 10,
    maxHalfOpen: 2,
    reconnectBaseMs: 60_000,
    dial: (p) => {
      dialled.push(p.key);
      return new Promise(() => {}); // attempts stay open: only the order matters
    },
  });
  swarm.add(
    [1, 2, 3, 4, 5].map((port) => ({ host: "127.0.0.1", port })),
    "test",
  );
  swarm.peers.get("127.0.0.1:2")!.rating.peakRate = 4 * 1024 * 1024;
  swarm.peers.get("127.0.0.1:3")!.rating.peakRate = 64 * 1024;
  swarm.ban(swarm.peers.get("127.0.0.1:4")!);
  swarm.peers.get("127.0.0.1:5")!.nextDialAt = performance.now() + 60_000;
  swarm.dialSome(performance.now());
  assert.deepEqual(dialled, ["127.0.0.1:2", "127.0.0.1:3"]);
});

Deno.test("swarm: a full address list forgets addresses that never answered, never working ones", () => {
  const swarm = new Swarm({
    maxPeers: 10,
    maxHalfOpen: 0,
    reconnectBaseMs: 1000,
    dial: () => Promise.resolve(),
  });
  const many = Array.from({ length: 2000 }, (_, i) => ({
    host: `10.0.${i >> 8}.${i & 255}`,
    port: 6881,
  }));
  assert.equal(swarm.add(many, "pex"), 2000);
  // Full: nothing new fits while every known address may still work.
  assert.equal(swarm.add([{ host: "192.0.2.1", port: 1 }], "dht"), 0);
  const [first, second] = swarm.peers.values();
  swarm.dialFailed(first, 0);
  second.rating.downloaded = 1;
  second.rating.failures = 3;
  assert.equal(swarm.add([{ host: "192.0.2.1", port: 1 }], "dht"), 1);
  assert.ok(!swarm.peers.has(first.key), "the dead address was forgotten");
  assert.ok(swarm.peers.has(second.key), "an address that gave data stays");
  assert.equal(swarm.add([{ host: "192.0.2.2", port: 1 }], "dht"), 0);
});

Deno.test("swarm: a peer of another torrent is never dialled again, even when named again", () => {
  const dialled: string[] = [];
  const swarm = new Swarm({
    maxPeers: 10,
    maxHalfOpen: 5,
    reconnectBaseMs: 15_000,
    dial: (p) => {
      dialled.push(p.key);
      return Promise.resolve();
    },
  });
  swarm.add([{ host: "127.0.0.1", port: 1 }], "tracker");
  swarm.dialSome(0);
  const record = swarm.peers.get("127.0.0.1:1")!;
  swarm.servesOtherTorrent(record);
  swarm.dialFailed(record, 0);
  record.connecting = false;
  swarm.dialSome(3_600_000);
  swarm.peers.delete(record.key);
  assert.equal(swarm.add([{ host: "127.0.0.1", port: 1 }], "pex"), 0);
  swarm.dialSome(3_600_000);
  assert.deepEqual(dialled, ["127.0.0.1:1"]);
});

Deno.test("swarm: a connection ended by our own failure costs the peer nothing", () => {
  const swarm = new Swarm({
    maxPeers: 10,
    maxHalfOpen: 5,
    reconnectBaseMs: 15_000,
    dial: () => Promise.resolve(),
  });
  const ours = swarm.connectedTo("127.0.0.1", 1, "tracker");
  const theirs = swarm.connectedTo("127.0.0.1", 2, "tracker");
  const quiet = swarm.connectedTo("127.0.0.1", 3, "tracker");
  swarm.disconnected(ours, 0, "internal", null);
  swarm.disconnected(theirs, 0, "violation", null);
  swarm.disconnected(quiet, 0, "ended", null);
  assert.deepEqual(ours.rating, newRating());
  assert.equal(ours.nextDialAt, 15_000);
  assert.equal(theirs.rating.violations, 1);
  assert.equal(quiet.rating.failures, 1);
  assert.ok(score(ours.rating) > score(quiet.rating));
  assert.ok(swarm.hasRoom);
});

Deno.test("swarm: a closed connection's figures join its address's rating, whatever ended it", () => {
  const swarm = new Swarm({
    maxPeers: 10,
    maxHalfOpen: 5,
    reconnectBaseMs: 15_000,
    dial: () => Promise.resolve(),
  });
  const figures = (downloaded: number, peakRate: number, rttMs: number) => ({
    downloaded,
    uploaded: 10,
    peakRate,
    rttMs,
    snubs: 1,
  });
  const record = swarm.connectedTo("127.0.0.1", 1, "tracker");
  swarm.disconnected(record, 0, "ended", figures(0, 0, 0));
  assert.equal(record.rating.failures, 1, "no payload: a failure");
  swarm.connectedTo("127.0.0.1", 1, "tracker");
  swarm.disconnected(record, 0, "ended", figures(500, 2000, 40));
  swarm.connectedTo("127.0.0.1", 1, "tracker");
  swarm.disconnected(record, 0, "internal", figures(100, 1000, 80));
  assert.deepEqual(record.rating, {
    ...newRating(),
    downloaded: 600,
    uploaded: 30,
    peakRate: 2000,
    rttMs: 60,
    snubs: 3,
    failures: 0,
  });
  assert.ok(swarm.hasRoom);
});

Deno.test("rate meter: each sample moves the figure 40% of the way to the tick's rate", () => {
  const meter = new RateMeter();
  meter.sample(1000, 1);
  assert.equal(meter.rate, 400);
  meter.sample(3000, 2); // 1000 B/s over this tick
  assert.equal(meter.rate, 400 * 0.6 + 1000 * 0.4);
  meter.sample(3000, 1);
  assert.equal(meter.rate, (400 * 0.6 + 1000 * 0.4) * 0.6);
});
