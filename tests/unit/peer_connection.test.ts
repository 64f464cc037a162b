// One peer connection over an in-memory socket: a later BEP 10 handshake
// updates the earlier one, the peer's reqq caps the pipeline, only payload
// taken into a piece counts as downloaded, and a failure of our own code is
// reported as such instead of being blamed on the peer.

import { describeSwarmEvent } from "../../src/swarm/events.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { encode } from "../../src/bencode/encode.ts";
import { DEFAULT_CONFIG } from "../../src/config.ts";
import { type Metainfo, parseMetainfo } from "../../src/metainfo/metainfo.ts";
import { MetadataPeer } from "../../src/metadata/metadata_peer.ts";
import {
  type ConnectionOptions,
  PeerConnection,
  type PeerOwner,
} from "../../src/peer/connection.ts";
import { type CloseCause, internalErrorEntry } from "../../src/peer/faults.ts";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { BLOCK_SIZE } from "../../src/pieces/geometry.ts";
import { PieceStore } from "../../src/storage/store.ts";
import { Bandwidth } from "../../src/swarm/bandwidth.ts";
import { Torrent } from "../../src/torrent.ts";
import { LOCAL_EXTENSION_IDS } from "../../src/wire/extension.ts";
import { MessageId, type OutBuffer } from "../../src/wire/messages.ts";
import { encodeMetadataRequest } from "../../src/wire/ut_metadata.ts";
import { FakeConn, settle } from "../helpers/fake_conn.ts";

const text = (s: string) => new TextEncoder().encode(s);
const PEER_ID = text("-XX0001-abcdefghijkl");

/** A PeerOwner that records what it is told and does nothing else. */
class RecordingOwner implements PeerOwner {
  closes: { reason: string; cause: CloseCause }[] = [];
  internal: unknown[] = [];
  interestedPeers = 0;
  peerHasChanged(): void {}
  blockArrived(): void {}
  blockRejected(): void {}
  fillPipeline(): void {}
  requestsLost(): void {}
  refuseRequest(): string | null {
    return null;
  }
  readBlock(): boolean {
    return true;
  }
  blockServed(): void {}
  peerInterested(): void {
    this.interestedPeers++;
  }
  pexReceived(): void {}
  dhtNodeLearned(): void {}
  internalError(_peer: PeerConnection, error: unknown): void {
    this.internal.push(error);
  }
  closed(_peer: PeerConnection, reason: string, cause: CloseCause): void {
    this.closes.push({ reason, cause });
  }
}

function options(over: Partial<ConnectionOptions> = {}): ConnectionOptions {
  return {
    maxRequests: 250,
    pipelineSeconds: 2,
    fast: false,
    listenPortKnown: false,
    download: new Bandwidth(0),
    upload: new Bandwidth(0),
    extensionHandshake: null,
    pex: true,
    dhtPort: 0,
    metadata: text("d4:name1:xe"),
    ...over,
  };
}

function connection(
  owner: PeerOwner,
  over: Partial<ConnectionOptions> = {},
  pieceCount = 8,
) {
  const conn = new FakeConn();
  const peer = new PeerConnection(
    conn,
    "127.0.0.1",
    6881,
    PEER_ID,
    pieceCount,
    owner,
    options(over),
  );
  return { conn, peer };
}

Deno.test("peer connection: a second, partial extended handshake keeps ut_pex, ut_metadata, reqq and the port (BEP 10)", async () => {
  const { conn, peer } = connection(new RecordingOwner());
  peer.extended(
    0,
    text("d1:md11:ut_metadatai3e6:ut_pexi4ee1:pi7000e4:reqqi2e1:v2:lte"),
  );
  peer.extended(0, text("d1:md11:lt_donthavei7ee1:v3:lt2e"));
  assert.deepEqual(Object.fromEntries(peer.extensions!.messages), {
    ut_metadata: 3,
    ut_pex: 4,
    lt_donthave: 7,
  });
  assert.equal(peer.extensions!.maxRequests, 2);
  assert.deepEqual(peer.listenAddress, { host: "127.0.0.1", port: 7000 });
  assert.equal(peer.extensions!.client, "lt2");

  // The ids of the first handshake are still the ones we send with.
  peer.extended(
    LOCAL_EXTENSION_IDS.ut_metadata,
    encodeMetadataRequest(0),
  );
  peer.sendPex([{ host: "10.0.0.1", port: 1, flags: 0 }], []);
  await settle();
  const extendedIds = conn.sentMessages()
    .filter(([name]) => name === "extended").map(([, id]) => id);
  assert.deepEqual(extendedIds, [3, 4]);

  // An id of 0 switches an extension off; the others stay.
  peer.extended(0, text("d1:md6:ut_pexi0eee"));
  assert.deepEqual([...peer.extensions!.messages.keys()].sort(), [
    "lt_donthave",
    "ut_metadata",
  ]);
  peer.sendPex([{ host: "10.0.0.2", port: 1, flags: 0 }], []);
  await settle();
  assert.deepEqual(conn.sentMessages(), []);
});

Deno.test("peer connection: the peer's reqq caps requests in flight from the first one", () => {
  const { peer } = connection(new RecordingOwner());
  peer.extended(0, text("d1:md11:ut_metadatai3ee4:reqqi2ee"));
  peer.setInterested(true);
  peer.unchoke();
  assert.equal(peer.pipelineRoom, 2);
  peer.outstanding.add(1);
  assert.equal(peer.pipelineRoom, 1);
  // A later handshake without reqq keeps the cap.
  peer.extended(0, text("d1:v1:xe"));
  assert.equal(peer.pipelineRoom, 1);
});

Deno.test("peer connection: a peer's requests, our unchoke and served blocks mark its upload slot as used", () => {
  const { peer } = connection(new RecordingOwner());
  assert.equal(peer.slotUsedAt, 0);
  const before = performance.now();
  peer.setChoking(false);
  const unchoked = peer.slotUsedAt;
  assert.ok(unchoked >= before);
  peer.interested();
  peer.request(0, 0, BLOCK_SIZE);
  assert.ok(peer.slotUsedAt >= unchoked);
  assert.equal(peer.uploadsQueued, 1);
});

Deno.test("peer connection: a protocol error is the peer's fault; any other exception is ours", async () => {
  const violating = connection(new RecordingOwner());
  const run1 = violating.peer.run(new Uint8Array(0), new Bitfield(8), []);
  violating.conn.send((out) => out.have(99));
  await run1;
  const owner1 = violating.peer["owner"] as RecordingOwner;
  assert.deepEqual(owner1.closes, [{
    reason: "have for piece 99 out of range",
    cause: "violation",
  }]);
  assert.deepEqual(owner1.internal, []);

  const owner2 = new RecordingOwner();
  owner2.peerInterested = () => {
    throw new TypeError("cannot read properties of undefined");
  };
  const buggy = connection(owner2);
  const run2 = buggy.peer.run(new Uint8Array(0), new Bitfield(8), []);
  buggy.conn.send((out) => out.simple(MessageId.Interested));
  await run2;
  assert.equal(owner2.internal.length, 1);
  assert.ok(owner2.internal[0] instanceof TypeError);
  assert.deepEqual(owner2.closes, [{
    reason: "internal error: cannot read properties of undefined",
    cause: "internal",
  }]);

  // A connection that merely ends is nobody's fault.
  const owner3 = new RecordingOwner();
  const ending = connection(owner3);
  const run3 = ending.peer.run(new Uint8Array(0), new Bitfield(8), []);
  ending.conn.close();
  await run3;
  assert.deepEqual(owner3.closes, [{
    reason: "peer closed the connection",
    cause: "ended",
  }]);
});

Deno.test("internal error entry: the message, then the stack frames on their own lines", () => {
  const entry = internalErrorEntry("with peer 1.2.3.4:5", new RangeError("x"));
  const [first, ...rest] = entry.split("\n");
  assert.equal(first, "internal error with peer 1.2.3.4:5: RangeError: x");
  assert.ok(rest.length > 0 && rest.every((l) => /^\s+at /.test(l)), entry);
  assert.equal(
    internalErrorEntry("here", "a string"),
    "internal error here: a string",
  );
});

Deno.test("metadata peer: an exception of ours is reported, not blamed on the peer", async () => {
  const conn = new FakeConn();
  const closes: CloseCause[] = [];
  const internal: unknown[] = [];
  const peer = new MetadataPeer(
    {
      conn,
      remote: {
        reserved: new Uint8Array(8),
        infoHash: new Uint8Array(20),
        peerId: PEER_ID,
      },
      leftover: new Uint8Array(0),
    },
    "127.0.0.1",
    6881,
    {
      extensionsKnown: () => {
        throw new TypeError("a bug");
      },
      metadataPiece: () => {},
      metadataRejected: () => {},
      pexPeers: () => {},
      dhtNodeLearned: () => {},
      internalError: (_p, e) => internal.push(e),
      closed: (_p, _reason, cause) => closes.push(cause),
    },
    { pex: true, dhtPort: 0 },
  );
  const run = peer.run(text("d1:md11:ut_metadatai2eee"), false);
  conn.send((out) => out.extended(0, text("d1:md11:ut_metadatai3eee")));
  await run;
  assert.equal(internal.length, 1);
  assert.deepEqual(closes, ["internal"]);
});

// --- the torrent's side: which bytes count as downloaded ---

function sha1(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(b).digest());
}

/** A single-file torrent of `pieces` pieces of two blocks each, and its data. */
function smallTorrent(pieces: number): { meta: Metainfo; data: Uint8Array } {
  const pieceLength = 2 * BLOCK_SIZE;
  const data = new Uint8Array(pieces * pieceLength);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  const hashes = new Uint8Array(pieces * 20);
  for (let p = 0; p < pieces; p++) {
    hashes.set(
      sha1(data.subarray(p * pieceLength, (p + 1) * pieceLength)),
      p * 20,
    );
  }
  const meta = parseMetainfo(encode({
    info: {
      name: "t.bin",
      length: data.length,
      "piece length": pieceLength,
      pieces: hashes,
    },
  }));
  return { meta, data };
}

/** A torrent (not started) downloading into a scratch folder; `incoming` connects a fake peer. */
async function withTorrent(
  pieces: number,
  body: (t: {
    torrent: Torrent;
    data: Uint8Array;
    log: string[];
    incoming: (reserved?: Uint8Array) => Promise<FakeConn>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "btclient-unit-" });
  const { meta, data } = smallTorrent(pieces);
  const store = new PieceStore(meta, dir);
  const log: string[] = [];
  const torrent = new Torrent(meta, store, new Bitfield(meta.pieceCount), {
    // One request in flight at a time: the test knows which block is asked for.
    config: { ...DEFAULT_CONFIG, maxRequestsPerPeer: 1 },
    peerId: text("-BT0001-ourselves!!!"),
    resumeFile: `${dir}/resume`,
    download: new Bandwidth(0),
    upload: new Bandwidth(0),
    dht: null,
    lsd: null,
    log: (line) => log.push(line),
    onEvent: (event) => log.push(describeSwarmEvent(event)),
  });
  let port = 5000;
  const incoming = async (reserved: Uint8Array = new Uint8Array(8)) => {
    const conn = new FakeConn();
    await torrent.acceptIncoming(
      {
        conn,
        remote: { reserved, infoHash: meta.infoHash, peerId: PEER_ID },
        leftover: new Uint8Array(0),
      },
      "127.0.0.1",
      port++,
    );
    // Our BEP 3 handshake answer comes first; the tests look at the messages after it.
    if (!conn.closed) assert.equal(conn.takeWritten(68)[0], 19);
    return conn;
  };
  try {
    await body({ torrent, data, log, incoming });
  } finally {
    await torrent.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The piece message for block `block` of piece `piece`, from the real data (or other bytes). */
function pieceMessage(
  data: Uint8Array,
  piece: number,
  block: number,
  bytes?: Uint8Array,
) {
  return (out: OutBuffer) => {
    const begin = block * BLOCK_SIZE;
    const at = piece * 2 * BLOCK_SIZE + begin;
    out.pieceSlot(piece, begin, BLOCK_SIZE).set(
      bytes ?? data.subarray(at, at + BLOCK_SIZE),
    );
  };
}

Deno.test("torrent: only requested, missing blocks count as downloaded; the rest is wasted", async () => {
  await withTorrent(4, async ({ torrent, data, incoming }) => {
    const conn = await incoming();
    const [peer] = torrent.connections;
    conn.send((out) => {
      out.bitfield(Bitfield.full(4).bytes);
      out.simple(MessageId.Unchoke);
    });
    await settle();
    const requests = conn.sentMessages().filter(([m]) => m === "request");
    assert.equal(requests.length, 1, JSON.stringify(requests));
    const [, piece, begin] = requests[0] as [string, number, number];
    const block = begin / BLOCK_SIZE;
    // The other block of the piece being fetched, never asked of this peer: wasted.
    conn.send(pieceMessage(data, piece, 1 - block));
    // The requested block: taken. The same block again: wasted.
    conn.send(pieceMessage(data, piece, block));
    conn.send(pieceMessage(data, piece, block));
    await settle();
    assert.equal(torrent.downloaded, BLOCK_SIZE);
    assert.equal(peer.downloaded, BLOCK_SIZE);
    assert.equal(torrent.wasted, 2 * BLOCK_SIZE);
    assert.equal(torrent.stats().wastedBytes, 2 * BLOCK_SIZE);
    assert.equal(peer.closedReason, null);
    // The peer keeps its pieces coming: the whole torrent is taken exactly once.
    for (let round = 0; round < 8 && !torrent.complete; round++) {
      for (
        const [, p, b] of conn.sentMessages().filter(([m]) => m === "request")
      ) {
        conn.send(pieceMessage(data, p as number, (b as number) / BLOCK_SIZE));
      }
      await settle();
    }
    assert.ok(torrent.complete);
    assert.equal(torrent.downloaded, data.length);
    assert.deepEqual(torrent.sources().map((s) => s.bytes), [data.length]);
  });
});

Deno.test("torrent: a block of a piece nobody asked for is a violation, and not counted", async () => {
  await withTorrent(64, async ({ torrent, data, incoming, log }) => {
    const conn = await incoming();
    const [peer] = torrent.connections;
    conn.send((out) => {
      out.bitfield(Bitfield.full(64).bytes);
      out.simple(MessageId.Unchoke);
    });
    await settle();
    const asked = new Set(
      conn.sentMessages().filter(([m]) => m === "request").map(([, p]) => p),
    );
    const stranger = [...Array(64).keys()].find((p) => !asked.has(p))!;
    conn.send(pieceMessage(data, stranger, 0));
    await settle();
    assert.match(peer.closedReason ?? "", /never requested/);
    assert.equal(torrent.downloaded, 0);
    assert.equal(torrent.wasted, BLOCK_SIZE);
    assert.ok(log.some((l) => l.startsWith("dropped peer 127.0.0.1:")));
    assert.equal(torrent.sources().length, 0);
  });
});

Deno.test("torrent: our own exception in a message handler is logged with its stack, counted, not held against the peer", async () => {
  await withTorrent(4, async ({ torrent, incoming, log }) => {
    const conn = await incoming();
    const [peer] = torrent.connections;
    torrent.picker.peerHas = () => {
      throw new TypeError("picker bug");
    };
    conn.send((out) => out.have(1));
    await settle();
    assert.equal(peer.closedReason, "internal error: picker bug");
    assert.equal(torrent.stats().internalErrors, 1);
    const entry = log.find((l) => l.startsWith("internal error"))!;
    assert.match(
      entry,
      /^internal error with peer 127\.0\.0\.1:\d+: TypeError: picker bug\n\s+at /,
    );
    assert.ok(!log.some((l) => l.startsWith("dropped peer")));
    const record = torrent.swarm.peers.get(peer.address)!;
    assert.equal(record.rating.violations, 0);
    assert.equal(record.rating.failures, 0);
    assert.equal(record.connected, false);
  });
});

Deno.test("torrent: an exception while starting a connection is ours: logged, counted, the peer not penalised", async () => {
  await withTorrent(4, async ({ torrent, incoming, log }) => {
    // Reserved bytes that are not bytes (a bug upstream): reading the flags throws.
    const broken = await incoming(null as unknown as Uint8Array);
    assert.equal(broken.closed, true);
    assert.equal(torrent.connections.size, 0);
    assert.equal(torrent.internalErrors.count, 1);
    assert.match(
      log.find((l) => l.startsWith("internal error")) ?? "",
      /^internal error starting a connection to 127\.0\.0\.1:5000: TypeError: .*\n\s+at /,
    );
    const record = torrent.swarm.peers.get("127.0.0.1:5000")!;
    assert.equal(record.connected, false);
    assert.equal(record.rating.failures, 0);
    assert.ok(torrent.swarm.hasRoom);
  });
});
