import assert from "node:assert/strict";
import dgram from "node:dgram";
import { announceUdp, UdpConnectionCache } from "../../src/tracker/udp.ts";
import { type AnnounceRequest, TrackerError } from "../../src/tracker/types.ts";

const CONNECTION_ID = 0x1122334455667788n;

const request: AnnounceRequest = {
  infoHash: new Uint8Array(20).fill(0xaa),
  peerId: new Uint8Array(20).fill(0xbb),
  port: 6881,
  uploaded: 10,
  downloaded: 20,
  left: 30,
  event: "started",
  numWant: 50,
  key: 0xcafef00d,
};

interface Datagram {
  bytes: Uint8Array;
  view: DataView;
  action: number;
  transactionId: number;
}

type Reply = (bytes: Uint8Array) => void;

/**
 * A UDP tracker on loopback. `handle` sees every datagram with a `reply`
 * function; by default it answers like a correct BEP 15 tracker.
 */
async function fakeTracker(
  handle: (
    d: Datagram,
    reply: Reply,
    from: { address: string; port: number },
  ) => void = answerCorrectly,
  family: "udp4" | "udp6" = "udp4",
) {
  const socket = dgram.createSocket(family);
  const counts = { connects: 0, announces: 0 };
  const received: Datagram[] = [];
  socket.on("message", (msg, rinfo) => {
    const bytes = new Uint8Array(msg);
    const view = new DataView(bytes.buffer);
    const d = {
      bytes,
      view,
      action: view.getUint32(8),
      transactionId: view.getUint32(12),
    };
    received.push(d);
    if (d.action === 0) counts.connects++;
    if (d.action === 1) counts.announces++;
    handle(d, (out) => socket.send(out, rinfo.port, rinfo.address), rinfo);
  });
  const host = family === "udp4" ? "127.0.0.1" : "::1";
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  const port = socket.address().port;
  return {
    url: family === "udp4"
      ? `udp://127.0.0.1:${port}/announce`
      : `udp://[::1]:${port}/announce`,
    port,
    counts,
    received,
    [Symbol.asyncDispose]: () =>
      new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function answerCorrectly(d: Datagram, reply: Reply): void {
  if (d.action === 0) reply(connectReply(d.transactionId, CONNECTION_ID));
  if (d.action === 1 && d.view.getBigUint64(0) === CONNECTION_ID) {
    reply(
      announceReply(d.transactionId, [
        127,
        0,
        0,
        1,
        0x1a,
        0xe2,
        10,
        0,
        0,
        2,
        0,
        0,
      ]),
    );
  }
}

function connectReply(transactionId: number, connectionId: bigint): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setUint32(4, transactionId);
  view.setBigUint64(8, connectionId);
  return out;
}

function announceReply(transactionId: number, peers: number[]): Uint8Array {
  const out = new Uint8Array(20 + peers.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 1);
  view.setUint32(4, transactionId);
  view.setUint32(8, 900); // interval
  view.setUint32(12, 3); // leechers
  view.setUint32(16, 4); // seeders
  out.set(peers, 20);
  return out;
}

function errorReply(transactionId: number, message: string): Uint8Array {
  const text = new TextEncoder().encode(message);
  const out = new Uint8Array(8 + text.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 3);
  view.setUint32(4, transactionId);
  out.set(text, 8);
  return out;
}

Deno.test("UDP announce: connect, announce, parse peers and counts", async () => {
  await using tracker = await fakeTracker();
  const res = await announceUdp(tracker.url, request, {
    timeoutMs: 1000,
    maxRetries: 0,
  });
  assert.deepEqual(res, {
    peers: [{ host: "127.0.0.1", port: 6882 }],
    listedPeers: 2,
    interval: 900,
    incomplete: 3,
    complete: 4,
  });
  const [connect, announce] = tracker.received;
  assert.equal(connect.bytes.length, 16);
  assert.equal(connect.view.getBigUint64(0), 0x41727101980n);
  assert.equal(announce.bytes.length, 98);
  assert.deepEqual(announce.bytes.subarray(16, 36), request.infoHash);
  assert.deepEqual(announce.bytes.subarray(36, 56), request.peerId);
  assert.equal(announce.view.getBigUint64(56), 20n); // downloaded
  assert.equal(announce.view.getBigUint64(64), 30n); // left
  assert.equal(announce.view.getBigUint64(72), 10n); // uploaded
  assert.equal(announce.view.getUint32(80), 2); // started
  assert.equal(announce.view.getUint32(88), 0xcafef00d);
  assert.equal(announce.view.getInt32(92), 50);
  assert.equal(announce.view.getUint16(96), 6881);
  assert.notEqual(connect.transactionId, announce.transactionId);
});

Deno.test("UDP announce ignores wrong transaction ids and other senders", async () => {
  const intruder = dgram.createSocket("udp4");
  await using tracker = await fakeTracker((d, reply, from) => {
    if (d.action === 0) {
      reply(connectReply(d.transactionId + 1, 0xbadn)); // wrong transaction id
      reply(new Uint8Array([0, 0, 0])); // too short to carry one
      // Right transaction id from another address: must be ignored too.
      intruder.send(
        connectReply(d.transactionId, 0xbadn),
        from.port,
        from.address,
      );
      setTimeout(() => answerCorrectly(d, reply), 30);
    } else {
      answerCorrectly(d, reply);
    }
  });
  try {
    const res = await announceUdp(tracker.url, request, {
      timeoutMs: 1000,
      maxRetries: 0,
    });
    assert.equal(res.peers.length, 1);
    assert.deepEqual(tracker.counts, { connects: 1, announces: 1 });
    assert.equal(tracker.received[1].view.getBigUint64(0), CONNECTION_ID);
  } finally {
    await new Promise<void>((resolve) => intruder.close(() => resolve()));
  }
});

Deno.test("UDP error action becomes a TrackerError with the tracker's message", async () => {
  await using tracker = await fakeTracker((d, reply) => {
    if (d.action === 0) reply(connectReply(d.transactionId, CONNECTION_ID));
    else {reply(
        errorReply(d.transactionId, "Requested download is not authorized."),
      );}
  });
  await assert.rejects(
    announceUdp(tracker.url, request, { timeoutMs: 1000, maxRetries: 0 }),
    (e: unknown) => {
      assert.ok(e instanceof TrackerError);
      assert.match(
        e.message,
        /^tracker udp:\/\/127\.0\.0\.1:\d+\/announce returned an error: Requested download is not authorized\.$/,
      );
      return true;
    },
  );
});

Deno.test("an 8-byte UDP error reply (no message) is reported as the tracker's error, to connect or announce", async () => {
  for (const failing of [0, 1]) {
    await using tracker = await fakeTracker((d, reply) => {
      if (d.action === failing) reply(errorReply(d.transactionId, ""));
      else answerCorrectly(d, reply);
    });
    assert.equal(errorReply(0, "").length, 8);
    await assert.rejects(
      announceUdp(tracker.url, request, { timeoutMs: 1000, maxRetries: 0 }),
      /^TrackerError: tracker udp:\/\/127\.0\.0\.1:\d+\/announce returned an error \(with no message\)$/,
    );
  }
});

Deno.test("a UDP reply filling a whole datagram (10,914 peers for numwant 80) is cut to 320", async () => {
  const count = 10_914;
  const peers = new Array(count * 6);
  for (let i = 0; i < count; i++) {
    peers.splice(i * 6, 6, 127, 2, i >> 8, i & 255, 0x1a, 0xe1);
  }
  await using tracker = await fakeTracker((d, reply) => {
    if (d.action === 0) reply(connectReply(d.transactionId, CONNECTION_ID));
    else reply(announceReply(d.transactionId, peers));
  });
  const res = await announceUdp(tracker.url, { ...request, numWant: 80 }, {
    timeoutMs: 1000,
    maxRetries: 0,
  });
  assert.equal(res.listedPeers, count);
  assert.equal(res.peers.length, 320);
  assert.equal(new Set(res.peers.map((p) => p.host)).size, 320);
});

Deno.test("UDP announce resends a request whose reply did not come", async () => {
  let dropped = 0;
  await using tracker = await fakeTracker((d, reply) => {
    if (dropped++ === 0) return; // the first connect request is lost
    answerCorrectly(d, reply);
  });
  const res = await announceUdp(tracker.url, request, {
    timeoutMs: 50,
    maxRetries: 2,
  });
  assert.equal(res.peers.length, 1);
  assert.equal(tracker.counts.connects, 2);
  assert.equal(
    tracker.received[0].transactionId,
    tracker.received[1].transactionId,
  );
});

Deno.test("UDP announce gives up after maxRetries resends, waiting twice as long each time", async () => {
  await using tracker = await fakeTracker(() => {});
  const began = performance.now();
  await assert.rejects(
    announceUdp(tracker.url, request, { timeoutMs: 40, maxRetries: 2 }),
    /no reply after 3 tries$/,
  );
  const elapsed = performance.now() - began;
  assert.ok(elapsed >= 40 + 80 + 160 - 5, `gave up after ${elapsed} ms`);
  assert.equal(tracker.counts.connects, 3);
});

Deno.test("UDP connection id is reused while valid and renewed after it expires", async () => {
  await using tracker = await fakeTracker();
  const connections = new UdpConnectionCache(100);
  const opts = { timeoutMs: 1000, maxRetries: 0, connections };
  await announceUdp(tracker.url, request, opts);
  await announceUdp(tracker.url, request, opts);
  assert.deepEqual(tracker.counts, { connects: 1, announces: 2 });
  await new Promise((resolve) => setTimeout(resolve, 150));
  await announceUdp(tracker.url, request, opts);
  assert.deepEqual(tracker.counts, { connects: 2, announces: 3 });
});

Deno.test("UDP tracker over IPv6 returns 18-byte peer entries", async () => {
  const peer6 = new Array(18).fill(0);
  peer6[0] = 0x20, peer6[1] = 0x01, peer6[15] = 7, peer6[17] = 80;
  await using tracker = await fakeTracker((d, reply) => {
    if (d.action === 0) reply(connectReply(d.transactionId, CONNECTION_ID));
    else reply(announceReply(d.transactionId, peer6));
  }, "udp6");
  const res = await announceUdp(tracker.url, request, {
    timeoutMs: 1000,
    maxRetries: 0,
  });
  assert.deepEqual(res.peers, [{ host: "2001::7", port: 80 }]);
});

Deno.test("UDP announce: malformed replies, bad URLs and cancellation", async () => {
  await using tracker = await fakeTracker((d, reply) => {
    if (d.action === 0) reply(connectReply(d.transactionId, CONNECTION_ID));
    else reply(announceReply(d.transactionId, [1, 2, 3])); // not whole 6-byte entries
  });
  await assert.rejects(
    announceUdp(tracker.url, request, { timeoutMs: 1000, maxRetries: 0 }),
    /announce reply has 3 bytes of peers, not a multiple of 6$/,
  );
  await assert.rejects(
    announceUdp("udp://127.0.0.1/announce", request, {
      timeoutMs: 1000,
      maxRetries: 0,
    }),
    /has no port$/,
  );
  await using silent = await fakeTracker(() => {});
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 30);
  await assert.rejects(
    announceUdp(silent.url, request, {
      timeoutMs: 5000,
      maxRetries: 0,
      signal: controller.signal,
    }),
    /announce cancelled$/,
  );
});
