// The request pipeline over an injected clock: slow start until the first
// rate sample, then a depth of about pipelineSeconds of the peer's rate
// (4 at least, our limit and the peer's reqq at most), one request in 16
// timed for the round trip, and a peer that holds requests without
// delivering for snubSeconds is snubbed once, down to one probe, until its
// next block.

import assert from "node:assert/strict";
import { BLOCK_SIZE } from "../../src/pieces/geometry.ts";
import type { BlockRequest } from "../../src/pieces/picker.ts";
import {
  MIN_PIPELINE,
  RequestPipeline,
} from "../../src/peer/request_pipeline.ts";
import { OutBuffer } from "../../src/wire/messages.ts";
import { decodeMessages } from "../helpers/fake_conn.ts";

function pipeline(maxRequests = 250, pipelineSeconds = 2) {
  const clock = { ms: 5000 };
  const p = new RequestPipeline(
    { maxRequests, pipelineSeconds },
    () => clock.ms,
  );
  return { p, clock };
}

/** Blocks 0.. of piece `piece`, with ids piece * 1000 + block. */
function blocks(piece: number, count: number, from = 0): BlockRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    piece,
    begin: (from + i) * BLOCK_SIZE,
    length: BLOCK_SIZE,
    id: piece * 1000 + from + i,
  }));
}

/** Sends requests as the owner does: picked ids go into outstanding first. */
function sendAll(p: RequestPipeline, requests: BlockRequest[]): unknown[][] {
  for (const r of requests) p.outstanding.add(r.id);
  const out = new OutBuffer();
  p.send(requests, out);
  return decodeMessages(out.take());
}

Deno.test("request pipeline: slow start adds one request a taken block until the first rate sample", () => {
  const { p } = pipeline();
  assert.equal(p.target, MIN_PIPELINE);
  assert.equal(p.room, MIN_PIPELINE);
  const sent = sendAll(p, blocks(0, 4));
  assert.deepEqual(sent[0], ["request", 0, 0, BLOCK_SIZE]);
  assert.equal(p.room, 0);
  for (const id of [0, 1]) {
    p.outstanding.delete(id);
    p.blockTaken(BLOCK_SIZE);
  }
  assert.equal(p.target, 6);
  assert.equal(p.room, 4, "6 wanted, 2 still out");
  assert.equal(p.downloaded, 2 * BLOCK_SIZE);
});

Deno.test("request pipeline: after a tick the depth is pipelineSeconds of the rate, within 4 and the limits", () => {
  const { p } = pipeline(250, 2);
  // 40 blocks in a 1 s tick: 2 s of it is 80 requests.
  for (let i = 0; i < 40; i++) p.blockTaken(BLOCK_SIZE);
  p.measure(1);
  assert.equal(p.rate, 40 * BLOCK_SIZE);
  assert.equal(p.target, 80);
  // Measured: no more slow start.
  p.blockTaken(BLOCK_SIZE);
  assert.equal(p.target, 80);
  p.measure(1);
  assert.equal(p.target, MIN_PIPELINE, "one block a second: the floor");
  // A tick with nothing: the rate is 0, the peak stays.
  p.measure(1);
  assert.equal(p.rate, 0);
  assert.equal(p.target, MIN_PIPELINE);
  assert.equal(p.peakRate, 40 * BLOCK_SIZE);

  // Before any block a tick changes nothing: the slow start goes on.
  const fresh = pipeline().p;
  fresh.measure(1);
  fresh.blockTaken(BLOCK_SIZE);
  assert.equal(fresh.target, MIN_PIPELINE + 1);

  const capped = pipeline(50, 2).p;
  for (let i = 0; i < 1000; i++) capped.blockTaken(BLOCK_SIZE);
  assert.equal(capped.target, 50, "slow start stops at our limit");
  capped.measure(1);
  assert.equal(capped.target, 50);
});

Deno.test("request pipeline: the peer's reqq caps the room from the first request, and the measured depth", () => {
  const { p } = pipeline();
  p.peerQueueLimit = 2;
  assert.equal(p.maxRequests, 2);
  assert.equal(p.room, 2);
  p.outstanding.add(1);
  assert.equal(p.room, 1);
  for (let i = 0; i < 100; i++) p.blockTaken(BLOCK_SIZE);
  assert.equal(p.target, MIN_PIPELINE, "no slow start past the reqq");
  p.measure(1);
  assert.equal(p.target, 2, "the reqq wins over the floor");
  assert.equal(p.room, 1);
  p.peerQueueLimit = 500;
  assert.equal(p.maxRequests, 250, "ours when it is lower");
});

Deno.test("request pipeline: a top-up is wanted once an eighth of the depth is free", () => {
  const { p } = pipeline();
  for (let i = 0; i < 80; i++) p.blockTaken(BLOCK_SIZE);
  p.measure(2);
  assert.equal(p.target, 80);
  for (let id = 0; id < 71; id++) p.outstanding.add(id);
  assert.equal(p.wantsMore, false, "9 free of 80");
  p.outstanding.delete(0);
  assert.equal(p.wantsMore, true, "10 free of 80");
  const small = pipeline().p;
  for (let id = 0; id < 4; id++) small.outstanding.add(id);
  assert.equal(small.wantsMore, false);
  small.outstanding.delete(0);
  assert.equal(small.wantsMore, true, "at least one");
});

Deno.test("request pipeline: every 16th request is timed; the round trip is smoothed", () => {
  const { p, clock } = pipeline();
  const first = blocks(1, 32);
  sendAll(p, first);
  // Untimed answers leave it unmeasured.
  clock.ms += 100;
  p.blockArrived(1, 0);
  assert.equal(p.rttMs, 0);
  p.blockArrived(1, 15 * BLOCK_SIZE);
  assert.equal(p.rttMs, 100, "the 16th request: the first sample as is");
  clock.ms += 100;
  p.blockArrived(1, 15 * BLOCK_SIZE);
  assert.equal(p.rttMs, 100, "a probe counts once");
  p.blockArrived(1, 31 * BLOCK_SIZE);
  assert.equal(p.rttMs, 0.8 * 100 + 0.2 * 200);
});

Deno.test("request pipeline: holding requests without a block for snubSeconds is a snub, once, until the next block", () => {
  const { p, clock } = pipeline();
  assert.equal(p.detectSnub(10), false);
  clock.ms += 60_000;
  assert.equal(p.detectSnub(10), false, "nothing asked: no snub");
  sendAll(p, blocks(2, 4));
  p.blockTaken(BLOCK_SIZE);
  clock.ms += 10_000;
  assert.equal(p.detectSnub(10), false, "exactly snubSeconds is not more");
  clock.ms += 1;
  assert.equal(p.detectSnub(10), true);
  assert.equal(p.snubbed, true);
  assert.equal(p.snubCount, 1);
  assert.equal(p.target, 1, "one probe");
  assert.deepEqual(p.takeOutstanding().sort(), [2000, 2001, 2002, 2003]);
  assert.equal(p.outstanding.size, 0);
  p.outstanding.add(2000);
  clock.ms += 60_000;
  assert.equal(p.detectSnub(10), false, "already snubbed");
  p.blockTaken(BLOCK_SIZE);
  assert.equal(p.snubbed, false);
  assert.equal(p.target, MIN_PIPELINE);
  assert.equal(p.snubCount, 1);
});

Deno.test("request pipeline: a cancel is written only for a request still outstanding", () => {
  const { p } = pipeline();
  sendAll(p, blocks(3, 2));
  const out = new OutBuffer();
  assert.equal(p.cancel(3001, 3, BLOCK_SIZE, BLOCK_SIZE, out), true);
  assert.equal(p.cancel(3001, 3, BLOCK_SIZE, BLOCK_SIZE, out), false);
  assert.deepEqual(decodeMessages(out.take()), [[
    "cancel",
    3,
    BLOCK_SIZE,
    BLOCK_SIZE,
  ]]);
  assert.deepEqual([...p.outstanding], [3000]);
});
