// The upload server over an injected clock: our choke state and what it
// does to queued requests (BEP 3 drop, BEP 6 reject), allowed-fast pieces
// while choked, refusals and the flood bound, cancel, and serving straight
// into the send buffer up to the watermark and within the upload cap.

import assert from "node:assert/strict";
import { BLOCK_SIZE } from "../../src/pieces/geometry.ts";
import { PeerViolation } from "../../src/peer/faults.ts";
import { MAX_QUEUED_REQUESTS } from "../../src/peer/upload_queue.ts";
import {
  type BlockSource,
  SEND_WATERMARK,
  type UploadBucket,
  UploadServer,
} from "../../src/peer/upload_server.ts";
import { OutBuffer } from "../../src/wire/messages.ts";
import { decodeMessages } from "../helpers/fake_conn.ts";

/** Serves every piece below `pieces`, each block filled with its piece index; `failing` pieces fail to read. */
class Source implements BlockSource {
  served: number[] = [];
  failing = new Set<number>();
  constructor(private pieces = 100) {}
  refuseRequest(index: number): string | null {
    return index < this.pieces ? null : `piece ${index} does not exist`;
  }
  readBlock(index: number, _begin: number, out: Uint8Array): boolean {
    if (this.failing.has(index)) return false;
    out.fill(index);
    return true;
  }
  blockServed(length: number): void {
    this.served.push(length);
  }
}

const UNLIMITED: UploadBucket = {
  allows: () => true,
  charge: () => {},
  waitMs: () => 0,
};

function server(
  { fast = true, bucket = UNLIMITED, source = new Source() } = {},
) {
  const clock = { ms: 1000 };
  const out = new OutBuffer();
  const s = new UploadServer(source, bucket, out, fast, () => clock.ms);
  const sent = () => decodeMessages(out.take());
  return { s, out, sent, clock, source };
}

Deno.test("upload server: choked, a request is rejected (BEP 6) or ignored (BEP 3), and not held against the peer", () => {
  const fast = server();
  assert.equal(fast.s.amChoking, true);
  fast.s.request(1, 0, BLOCK_SIZE, 0);
  assert.deepEqual(fast.sent(), [["reject", 1, 0, BLOCK_SIZE]]);
  assert.equal(fast.s.queued, 0);
  // Far more than the flood bound: a race with our choke is no violation.
  for (let i = 0; i < 200; i++) fast.s.request(1, 0, BLOCK_SIZE, 0);

  const plain = server({ fast: false });
  plain.s.request(1, 0, BLOCK_SIZE, 0);
  assert.deepEqual(plain.sent(), []);
});

Deno.test("upload server: unchoking is written once and marks the slot used; choking drops or rejects what is queued", () => {
  const { s, sent, clock } = server();
  assert.equal(s.slotUsedAt, 0);
  clock.ms = 2000;
  assert.equal(s.setChoking(false), true);
  assert.equal(s.setChoking(false), false, "no change, nothing written");
  assert.deepEqual(sent(), [["unchoke"]]);
  assert.equal(s.slotUsedAt, 2000);
  clock.ms = 2500;
  s.request(1, 0, BLOCK_SIZE, 0);
  s.request(2, BLOCK_SIZE, BLOCK_SIZE, 0);
  assert.equal(s.queued, 2);
  assert.equal(s.lastRequestAt, 2500);
  assert.equal(s.slotUsedAt, 2500);
  assert.equal(s.setChoking(true), true);
  assert.deepEqual(sent(), [
    ["choke"],
    ["reject", 1, 0, BLOCK_SIZE],
    ["reject", 2, BLOCK_SIZE, BLOCK_SIZE],
  ]);
  assert.equal(s.queued, 0);

  const plain = server({ fast: false });
  plain.s.setChoking(false);
  plain.s.request(1, 0, BLOCK_SIZE, 0);
  plain.s.setChoking(true);
  assert.deepEqual(plain.sent(), [["unchoke"], ["choke"]], "BEP 3: dropped");
  assert.equal(plain.s.queued, 0);
});

Deno.test("upload server: an allowed-fast piece is served while choked, to a peer with at most that many pieces (BEP 6)", () => {
  const { s, sent } = server();
  s.offerFast([3, 7]);
  assert.deepEqual(sent(), [["allowedFast", 3], ["allowedFast", 7]]);
  s.request(3, 0, BLOCK_SIZE, 2);
  assert.equal(s.queued, 1);
  s.request(4, 0, BLOCK_SIZE, 2);
  assert.deepEqual(sent(), [["reject", 4, 0, BLOCK_SIZE]], "not offered");
  s.request(7, 0, BLOCK_SIZE, 3);
  assert.deepEqual(sent(), [["reject", 7, 0, BLOCK_SIZE]], "the peer has 3");
  assert.equal(s.queued, 1);
});

Deno.test("upload server: requests that cannot be served are rejected and counted; past 50 the peer floods", () => {
  const { s, sent } = server();
  s.setChoking(false);
  sent();
  for (let i = 0; i < 50; i++) s.request(500, 0, BLOCK_SIZE, 0);
  assert.equal(sent().length, 50);
  assert.throws(
    () => s.request(500, 0, BLOCK_SIZE, 0),
    (e: unknown) =>
      e instanceof PeerViolation &&
      e.message === "sent 51 requests that could not be served",
  );

  // A full queue refuses the next request, and counts it.
  const full = server();
  full.s.setChoking(false);
  for (let i = 0; i < MAX_QUEUED_REQUESTS; i++) {
    full.s.request(1, 0, BLOCK_SIZE, 0);
  }
  full.sent();
  full.s.request(2, 0, BLOCK_SIZE, 0);
  assert.deepEqual(full.sent(), [["reject", 2, 0, BLOCK_SIZE]]);
  assert.equal(full.s.queued, MAX_QUEUED_REQUESTS);
  // Refusals counted elsewhere (BEP 9) share the bound.
  for (let i = 0; i < 49; i++) full.s.refused();
  assert.throws(() => full.s.refused(), PeerViolation);
});

Deno.test("upload server: a cancel of a queued request is answered with a reject (BEP 6), of anything else with nothing", () => {
  const { s, sent } = server();
  s.setChoking(false);
  s.request(1, 0, BLOCK_SIZE, 0);
  sent();
  s.cancel(1, 0, BLOCK_SIZE);
  s.cancel(1, 0, BLOCK_SIZE);
  s.cancel(9, 0, BLOCK_SIZE);
  assert.deepEqual(sent(), [["reject", 1, 0, BLOCK_SIZE]]);
  assert.equal(s.queued, 0);
});

Deno.test("upload server: blocks go into the send buffer up to the watermark; a failed read is rejected and skipped", () => {
  const { s, out, sent, clock, source } = server();
  s.setChoking(false);
  sent();
  source.failing.add(5);
  s.request(5, 0, BLOCK_SIZE, 0);
  for (let i = 0; i < 40; i++) s.request(i % 4, 0, BLOCK_SIZE, 0);
  clock.ms = 3000;
  assert.equal(s.serve(), 0);
  // The watermark is checked before each block: the last one crosses it.
  const perBlock = 13 + BLOCK_SIZE;
  const fitting = Math.ceil(SEND_WATERMARK / perBlock);
  assert.equal(out.length, 17 + fitting * perBlock);
  const messages = sent();
  assert.deepEqual(messages[0], ["reject", 5, 0, BLOCK_SIZE]);
  assert.equal(messages.length, 1 + fitting);
  const [name, index, begin, block] = messages[1] as [
    string,
    number,
    number,
    Uint8Array,
  ];
  assert.deepEqual([name, index, begin], ["piece", 0, 0]);
  assert.ok(block.length === BLOCK_SIZE && block.every((b) => b === 0));
  assert.equal(s.queued, 40 - fitting);
  assert.equal(s.uploaded, fitting * BLOCK_SIZE);
  assert.equal(source.served.length, fitting);
  assert.equal(s.lastServedAt, 3000);

  // The buffer went out: the rest follows.
  assert.equal(s.serve(), 0);
  assert.equal(s.queued, 0);
  s.measure(2);
  assert.equal(s.rate, (40 * BLOCK_SIZE) / 2);
  s.measure(2);
  assert.equal(s.rate, 0);
});

Deno.test("upload server: the upload cap holds blocks back and says how long", () => {
  let tokens = 2 * BLOCK_SIZE;
  const bucket: UploadBucket = {
    allows: (n) => tokens >= n,
    charge: (n) => tokens -= n,
    waitMs: () => 0.2,
  };
  const { s, sent } = server({ bucket });
  s.setChoking(false);
  sent();
  for (let i = 0; i < 3; i++) s.request(i, 0, BLOCK_SIZE, 0);
  assert.equal(s.serve(), 1, "at least 1 ms");
  assert.deepEqual(sent().map(([name, index]) => [name, index]), [
    ["piece", 0],
    ["piece", 1],
  ]);
  assert.equal(s.queued, 1);
  tokens = BLOCK_SIZE;
  assert.equal(s.serve(), 0);
  assert.equal(s.queued, 0);
});
