import assert from "node:assert/strict";
import { type Encodable, encode } from "../../src/bencode/encode.ts";
import { announceHttp, buildAnnounceUrl } from "../../src/tracker/http.ts";
import { parseHttpAnnounceReply } from "../../src/tracker/http_reply.ts";
import { type AnnounceRequest, TrackerError } from "../../src/tracker/types.ts";

const URL_ = "http://tracker.test/announce";

function request(overrides: Partial<AnnounceRequest> = {}): AnnounceRequest {
  const infoHash = new Uint8Array(20);
  infoHash.set([0x12, 0xab, 0xff, 0x00, 0x41, 0x7e, 0x20, 0x2d, 0x2e, 0x5f]);
  return {
    infoHash,
    peerId: new TextEncoder().encode("-XX0001-abcdefghijkl"),
    port: 6881,
    uploaded: 1,
    downloaded: 2,
    left: 3,
    event: "started",
    numWant: 50,
    key: 0xdeadbeef,
    ...overrides,
  };
}

function rejectsWith(promise: Promise<unknown>, pattern: RegExp) {
  return assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof TrackerError, `not a TrackerError: ${e}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "message is one line");
    return true;
  });
}

Deno.test("announce URL percent-encodes info_hash and peer_id byte by byte", () => {
  const url = buildAnnounceUrl(URL_, request());
  assert.equal(
    url,
    URL_ + "?info_hash=%12%AB%FF%00A~%20-._" + "%00".repeat(10) +
      "&peer_id=-XX0001-abcdefghijkl&port=6881&uploaded=1&downloaded=2&left=3" +
      "&compact=1&numwant=50&key=deadbeef&event=started",
  );
});

Deno.test("announce URL appends to an existing query, omits event none, sends trackerid", () => {
  const url = buildAnnounceUrl(
    "http://t.test/a?passkey=x#frag",
    request({ event: "none" }),
    "id\xff",
  );
  assert.match(url, /^http:\/\/t\.test\/a\?passkey=x&info_hash=/);
  assert.ok(!url.includes("event="));
  assert.ok(url.endsWith("&trackerid=id%FF"));
  assert.ok(!url.includes("#"));
});

Deno.test("reply with compact peers, min interval, warning, tracker id, counts", () => {
  const body = encode({
    interval: 1800,
    "min interval": 60,
    peers: new Uint8Array([1, 2, 3, 4, 0x1a, 0xe1, 5, 6, 7, 8, 0, 0]),
    "warning message": "slow\ndown",
    "tracker id": new Uint8Array([0x61, 0xff]),
    complete: 5,
    incomplete: 7,
  });
  assert.deepEqual(parseHttpAnnounceReply(body, URL_, 200), {
    peers: [{ host: "1.2.3.4", port: 6881 }],
    listedPeers: 2,
    interval: 1800,
    minInterval: 60,
    warning: "slow down",
    trackerId: "a\xff",
    complete: 5,
    incomplete: 7,
  });
});

Deno.test("reply with the dictionary peer list (BEP 3) keeps dialable IP literals only", () => {
  const body = encode({
    interval: 900,
    peers: [
      { ip: "10.0.0.1", port: 51413, "peer id": new Uint8Array(20) },
      { ip: "::ffff:10.0.0.2", port: 1 },
      { ip: "2001:DB8::5", port: 2 },
      { ip: "peer.example", port: 3 },
      { ip: "10.0.0.4", port: 0 },
      { ip: "10.0.0.5", port: 65536 },
      { ip: "0.0.0.0", port: 4 },
      { ip: "239.1.2.3", port: 5 },
      { ip: "255.255.255.255", port: 6 },
      { ip: "::", port: 7 },
      { ip: "ff02::1", port: 8 },
    ],
  });
  const reply = parseHttpAnnounceReply(body, URL_, 200);
  assert.deepEqual(reply.peers, [
    { host: "10.0.0.1", port: 51413 },
    { host: "10.0.0.2", port: 1 },
    { host: "2001:db8::5", port: 2 },
  ]);
  assert.equal(reply.listedPeers, 11);
});

/** A bencoded reply whose "peers" is a list of `count` dictionaries, written by hand. */
function dictPeersReply(
  count: number,
  peerAt: (i: number) => string,
): Uint8Array {
  const parts = ["d8:intervali900e5:peersl"];
  for (let i = 0; i < count; i++) {
    const ip = peerAt(i);
    parts.push(`d2:ip${ip.length}:${ip}4:porti${1 + (i % 60000)}ee`);
  }
  parts.push("ee");
  return new TextEncoder().encode(parts.join(""));
}

Deno.test("a flooded reply is cut to the limit: a uniform sample of its dialable peers", () => {
  // 10,000 dictionary peers, one per address, every tenth one undialable.
  const address = (i: number) =>
    i % 10 === 0 ? "0.0.0.0" : `127.${i >> 16}.${(i >> 8) & 255}.${i & 255}`;
  const body = dictPeersReply(10_000, address);
  const reply = parseHttpAnnounceReply(body, URL_, 200, seededRandom(7));
  assert.equal(reply.listedPeers, 10_000);
  assert.equal(reply.peers.length, 200);
  const hosts = new Set(reply.peers.map((p) => p.host));
  assert.equal(hosts.size, 200, "no entry kept twice");
  assert.ok(!hosts.has("0.0.0.0"));
  // A uniform sample of 9,000 spreads over the list: some from each quarter.
  const quarters = [0, 0, 0, 0];
  for (const p of reply.peers) {
    const [, b, c, d] = p.host.split(".").map(Number);
    quarters[Math.floor(((b << 16) | (c << 8) | d) / 2500)]++;
  }
  assert.ok(quarters.every((n) => n >= 25), `quarters: ${quarters}`);

  const compact = new Uint8Array(10_914 * 6);
  for (let i = 0; i < 10_914; i++) {
    compact.set([127, 1, i >> 8, i & 255, 0x1a, 0xe1], i * 6);
  }
  const udpSized = parseHttpAnnounceReply(
    encode({ interval: 60, peers: compact }),
    URL_,
    320,
  );
  assert.equal(udpSized.listedPeers, 10_914);
  assert.equal(udpSized.peers.length, 320);
});

/** Deterministic numbers in [0, 1) (mulberry32), so a sampling test cannot flake. */
function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("reply with peers6 (BEP 7) alongside or instead of peers", () => {
  const entry = new Uint8Array(18);
  entry[15] = 1;
  entry.set([0x1a, 0xe1], 16);
  const both = encode({
    interval: 60,
    peers: new Uint8Array([9, 9, 9, 9, 0, 80]),
    peers6: entry,
  });
  assert.deepEqual(parseHttpAnnounceReply(both, URL_, 200).peers, [
    { host: "9.9.9.9", port: 80 },
    { host: "::1", port: 6881 },
  ]);
  const only6 = encode({ interval: 60, peers6: entry });
  assert.deepEqual(parseHttpAnnounceReply(only6, URL_, 200).peers, [{
    host: "::1",
    port: 6881,
  }]);
});

Deno.test("failure reason, garbage and malformed replies are TrackerErrors", () => {
  const cases: [Uint8Array, RegExp][] = [
    [
      encode({ "failure reason": "torrent not registered" }),
      /^tracker http:\/\/tracker\.test\/announce refused the announce: torrent not registered$/,
    ],
    [
      new TextEncoder().encode("<html>oops</html>"),
      /^tracker http:\/\/tracker\.test\/announce: reply is not bencode \(unexpected byte 0x3c at byte 0\)$/,
    ],
    [encode([1, 2]), /reply is a list, not a dictionary/],
    [encode({ peers: new Uint8Array(0) }), /interval is missing/],
    [encode({ interval: 60 }), /peers is missing/],
    [
      encode({ interval: 60, peers: new Uint8Array(7) }),
      /peers is 7 bytes, not a multiple of 6/,
    ],
    [
      encode({ interval: 60, peers: [{ ip: "1.2.3.4" }] }),
      /peers\[0\]\.port is missing/,
    ],
    [
      encode({ interval: 60, peers: [{ ip: "1.2.3.4", port: 1 }, 5] }),
      /peers\[1\] is an integer, not a dictionary/,
    ],
    [
      encode({ "failure reason": "banned", peers: [7] }),
      /refused the announce: banned$/,
    ],
    [
      new TextEncoder().encode(
        "d8:intervali60e5:peersld2:ip7:1.2.3.44:porti1ee",
      ),
      /reply is not bencode \(unexpected end of input at byte 47\)$/,
    ],
    [
      new TextEncoder().encode("d8:intervali60e5:peerslei1e"),
      /reply is not bencode \(dictionary key is not a string at byte 24\)$/,
    ],
    [
      new TextEncoder().encode("d8:intervali60e5:peerslee!"),
      /reply is not bencode \(1 trailing bytes after the value\)$/,
    ],
    [
      encode({ interval: 60, peers: { a: 1 } }),
      /peers is a dictionary, not a string/,
    ],
    [
      encode({
        interval: 60,
        peers: new Uint8Array(0),
        peers6: new Uint8Array(5),
      }),
      /peers6 is 5 bytes/,
    ],
  ];
  for (const [body, pattern] of cases) {
    assert.throws(
      () => parseHttpAnnounceReply(body, URL_, 200),
      (e: unknown) => {
        assert.ok(e instanceof TrackerError);
        assert.match(e.message, pattern);
        return true;
      },
    );
  }
});

function bencoded(value: Encodable): Response {
  return new Response(new Uint8Array(encode(value)));
}

/** A one-route HTTP server on 127.0.0.1; records each raw request URL. */
function serve(handler: (url: string) => Response | Promise<Response>) {
  const seen: string[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req) => {
      seen.push(req.url);
      return handler(req.url);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/announce`,
    seen,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("announceHttp gets peers from a tracker over HTTP", async () => {
  await using tracker = serve(() =>
    bencoded({
      interval: 120,
      peers: new Uint8Array([127, 0, 0, 1, 0x1a, 0xe2]),
    })
  );
  const res = await announceHttp(tracker.url, request(), {
    timeoutMs: 2000,
    trackerId: "abc",
  });
  assert.deepEqual(res, {
    peers: [{ host: "127.0.0.1", port: 6882 }],
    listedPeers: 1,
    interval: 120,
  });
  assert.equal(tracker.seen.length, 1);
  assert.match(tracker.seen[0], /\?info_hash=%12%AB%FF%00A~%20-\._%00/);
  assert.match(tracker.seen[0], /&trackerid=abc$/);
});

Deno.test("announceHttp: HTTP 500, garbage body, oversized body, timeout, closed port", async () => {
  await using failing = serve(() => new Response("boom", { status: 500 }));
  await rejectsWith(
    announceHttp(failing.url, request(), { timeoutMs: 2000 }),
    /^tracker http:\/\/127\.0\.0\.1:\d+\/announce: HTTP 500 Internal Server Error$/,
  );
  await using garbage = serve(() => new Response("<html>"));
  await rejectsWith(
    announceHttp(garbage.url, request(), { timeoutMs: 2000 }),
    /reply is not bencode \(unexpected byte 0x3c at byte 0\)$/,
  );
  await using huge = serve(() => new Response(new Uint8Array(3 * 1024 * 1024)));
  await rejectsWith(
    announceHttp(huge.url, request(), { timeoutMs: 2000 }),
    /larger than/,
  );

  const { promise: release, resolve } = Promise.withResolvers<void>();
  await using slow = serve(async () => {
    await release;
    return bencoded({ interval: 1, peers: new Uint8Array(0) });
  });
  try {
    await rejectsWith(
      announceHttp(slow.url, request(), { timeoutMs: 100 }),
      /no reply within 100 ms$/,
    );
  } finally {
    resolve();
  }

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  await rejectsWith(
    announceHttp(`http://127.0.0.1:${closedPort}/announce`, request(), {
      timeoutMs: 2000,
    }),
    /^tracker http:\/\/127\.0\.0\.1:\d+\/announce: .*refused/i,
  );
});

Deno.test("announceHttp stops when the caller's signal aborts", async () => {
  const { promise: release, resolve } = Promise.withResolvers<void>();
  await using slow = serve(async () => {
    await release;
    return new Response("de");
  });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  try {
    await rejectsWith(
      announceHttp(slow.url, request(), {
        timeoutMs: 5000,
        signal: controller.signal,
      }),
      /announce cancelled$/,
    );
  } finally {
    resolve();
  }
});
