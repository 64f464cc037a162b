// Our greeting, and the hand-over of a magnet fetch's live connection to
// the torrent (src/peer/NOTES.md): what the peer told the fetch is replayed
// in a fixed order (its BEP 10 handshake, its pieces, its haves and
// allowed-fast pieces, then choke and interest), the bytes after the
// boundary where the fetch stopped parsing are the torrent's, and we say
// only what the fetch could not: our pieces (as haves after its have-none),
// a second extended handshake, no second DHT port.

import assert from "node:assert/strict";
import { MetadataPeer } from "../../src/metadata/metadata_peer.ts";
import { PeerConnection, type PeerOwner } from "../../src/peer/connection.ts";
import { writeGreeting } from "../../src/peer/greeting.ts";
import {
  type PriorPeerState,
  replayPrior,
  type ReplayTarget,
} from "../../src/peer/prior_state.ts";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { Bandwidth } from "../../src/swarm/bandwidth.ts";
import { MessageId, OutBuffer } from "../../src/wire/messages.ts";
import { decodeMessages, FakeConn, settle } from "../helpers/fake_conn.ts";

const text = (s: string) => new TextEncoder().encode(s);

function field(size: number, ...indices: number[]): Bitfield {
  const f = new Bitfield(size);
  for (const i of indices) f.set(i);
  return f;
}

function greeting(
  ours: Bitfield,
  fast: boolean,
  prior?: PriorPeerState,
  dhtPort = 0,
): unknown[][] {
  const out = new OutBuffer();
  writeGreeting(
    out,
    { ours, fast, extensionHandshake: text("d1:v1:xe"), dhtPort },
    prior,
  );
  // The extended handshake's payload is the caller's: its id is enough.
  return decodeMessages(out.take()).map((m) =>
    m[0] === "extended" ? m.slice(0, 2) : m
  );
}

function prior(over: Partial<PriorPeerState> = {}): PriorPeerState {
  return {
    bitfield: null,
    haveAll: false,
    haveNone: false,
    haves: [],
    allowedFast: [],
    unchoked: false,
    interested: false,
    extensions: null,
    sentHaveNone: false,
    sentDhtPort: false,
    ...over,
  };
}

Deno.test("greeting: have all / have none stand for the bitfield under BEP 6; then the extended handshake and the DHT port", () => {
  assert.deepEqual(greeting(field(3, 0, 1, 2), true, undefined, 6881), [
    ["haveAll"],
    ["extended", 0],
    ["dhtPort", 6881],
  ]);
  assert.deepEqual(greeting(field(3), true), [["haveNone"], ["extended", 0]]);
  assert.deepEqual(greeting(field(3, 1), true), [
    ["bitfield", new Uint8Array([0x40])],
    ["extended", 0],
  ]);
  assert.deepEqual(greeting(field(3, 0, 1, 2), false), [
    ["bitfield", new Uint8Array([0xe0])],
    ["extended", 0],
  ]);
  assert.deepEqual(greeting(field(3), false), [["extended", 0]]);
});

Deno.test("greeting after a hand-over: haves after the fetch's have-none, a bitfield otherwise, the DHT port only once", () => {
  const ours = field(4, 0, 2);
  assert.deepEqual(
    greeting(ours, true, prior({ sentHaveNone: true, sentDhtPort: true }), 1),
    [["have", 0], ["have", 2], ["extended", 0]],
  );
  assert.deepEqual(greeting(ours, false, prior(), 7), [
    ["bitfield", new Uint8Array([0xa0])],
    ["extended", 0],
    ["dhtPort", 7],
  ]);
  assert.deepEqual(
    greeting(field(4), true, prior({ sentHaveNone: true })),
    [["extended", 0]],
    "nothing to tell: no have-all, no second have-none",
  );
});

Deno.test("replay: pieces, then haves and allowed-fast pieces, then unchoke and interest", () => {
  const calls: unknown[][] = [];
  const target = new Proxy({}, {
    get: (_t, name) => (...args: unknown[]) => calls.push([name, ...args]),
  }) as ReplayTarget;
  replayPrior(
    prior({
      bitfield: new Uint8Array([0x80]),
      haveAll: true,
      haves: [3, 5],
      allowedFast: [1],
      unchoked: true,
      interested: true,
    }),
    target,
  );
  assert.deepEqual(calls, [
    ["bitfield", new Uint8Array([0x80])],
    ["have", 3],
    ["have", 5],
    ["allowedFast", 1],
    ["unchoke"],
    ["interested"],
  ]);
  calls.length = 0;
  replayPrior(prior({ haveNone: true }), target);
  assert.deepEqual(calls, [["haveNone"]], "choked and not interested: as is");
});

/** A PeerOwner that records the peer events in order. */
function recordingOwner(events: unknown[]): PeerOwner {
  return {
    peerHasChanged: (_p, index) => events.push(["has", index]),
    blockArrived: () => {},
    blockRejected: () => {},
    fillPipeline: (p) => events.push(["fill", p.pipelineRoom]),
    requestsLost: () => {},
    refuseRequest: () => null,
    readBlock: () => true,
    blockServed: () => {},
    peerInterested: () => events.push(["interested"]),
    pexReceived: () => {},
    dhtNodeLearned: () => {},
    internalError: (_p, e) => events.push(["internal", e]),
    closed: (_p, reason) => events.push(["closed", reason]),
  };
}

Deno.test("hand-over: the fetch's record is replayed, and the bytes after its last parsed message are the torrent's", async () => {
  const conn = new FakeConn();
  const fetch = new MetadataPeer(
    {
      conn,
      remote: {
        reserved: new Uint8Array(8),
        infoHash: new Uint8Array(20),
        peerId: text("-XX0001-abcdefghijkl"),
      },
      leftover: new Uint8Array(0),
    },
    "127.0.0.1",
    6881,
    {
      extensionsKnown: () => {},
      metadataPiece: () => {},
      metadataRejected: () => {},
      pexPeers: () => {},
      dhtNodeLearned: () => {},
      internalError: () => {},
      closed: () => {},
    },
    { pex: true, dhtPort: 6881 },
  );
  const fetching = fetch.run(text("d1:md11:ut_metadatai2eee"), true);
  await settle();
  assert.deepEqual(conn.sentMessages().map(([name]) => name), [
    "haveNone",
    "extended",
    "dhtPort",
  ]);
  conn.send((out) => {
    out.extended(0, text("d1:md11:ut_metadatai3ee4:reqqi2ee"));
    out.bitfield(field(16, 0, 1).bytes);
    out.have(7);
    out.have(2, MessageId.AllowedFast);
    out.simple(MessageId.Unchoke);
    out.simple(MessageId.Interested);
  });
  await settle();
  const handed = (await fetch.handOver("tracker"))!;
  assert.ok(handed);
  // A message split over the boundary: its first bytes were read before
  // the hand-over ended the fetch's reading, the rest after.
  const after = new OutBuffer();
  after.have(9);
  after.have(12);
  const tail = after.take();
  conn.push(tail.subarray(0, 11));
  await fetching;
  conn.push(tail.subarray(11));

  const events: unknown[] = [];
  const peer = new PeerConnection(
    conn,
    "127.0.0.1",
    6881,
    handed.opened.remote.peerId,
    16,
    recordingOwner(events),
    {
      maxRequests: 250,
      pipelineSeconds: 2,
      fast: true,
      listenPortKnown: true,
      download: new Bandwidth(0),
      upload: new Bandwidth(0),
      extensionHandshake: text("d1:md11:ut_metadatai2ee13:metadata_sizei9ee"),
      pex: true,
      dhtPort: 6881,
      metadata: text("d4:name1:xe"),
    },
  );
  const running = peer.run(
    handed.opened.leftover,
    field(16, 4, 5),
    [],
    handed,
  );
  await settle();
  assert.deepEqual(events, [
    ["has", -1],
    ["has", 7],
    ["interested"],
    ["has", 9],
    ["has", 12],
  ]);
  assert.equal(peer.peerChoking, false);
  assert.equal(peer.fastPieces.has(2), true);
  assert.deepEqual(
    [...Array(16).keys()].filter((i) => peer.has.has(i)),
    [0, 1, 7, 9, 12],
  );
  peer.setInterested(true);
  assert.equal(peer.pipelineRoom, 2, "the reqq of the fetch's handshake");
  assert.deepEqual(
    conn.sentMessages().map((m) => m.slice(0, 2)),
    [["have", 4], ["have", 5], ["extended", 0], ["interested"]],
  );
  peer.close("test over");
  await running;
});
