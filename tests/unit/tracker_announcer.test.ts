import assert from "node:assert/strict";
import dgram from "node:dgram";
import { type Encodable, encode } from "../../src/bencode/encode.ts";
import {
  Announcer,
  type AnnouncerOptions,
} from "../../src/tracker/announcer.ts";
import type { PeerAddress } from "../../src/tracker/types.ts";

/** An HTTP tracker on loopback that records each announce's event. */
function httpTracker(reply: (event: string) => Encodable | number = okReply) {
  const events: string[] = [];
  const urls: string[] = [];
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    async (req) => {
      const event = new URL(req.url).searchParams.get("event") ?? "none";
      events.push(event);
      urls.push(req.url);
      const body = reply(event);
      if (body === HANG) await released;
      if (typeof body === "number") return new Response("no", { status: body });
      return new Response(new Uint8Array(encode(body)));
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/announce`,
    events,
    urls,
    [Symbol.asyncDispose]: () => {
      release();
      return server.shutdown();
    },
  };
}

/** A status code that makes httpTracker hold the request until it is disposed. */
const HANG = 599;

function okReply(): Encodable {
  return { interval: 3600, peers: new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]) };
}

function closedPortUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return `http://127.0.0.1:${listener.addr.port}/announce`;
}

/** An Announcer whose peers and log lines are collected for the test. */
function announcer(
  tiers: string[][],
  overrides: Partial<AnnouncerOptions> = {},
) {
  const peers: { peers: PeerAddress[]; source: string }[] = [];
  const log: string[] = [];
  const waiters: (() => void)[] = [];
  const a = new Announcer(tiers, {
    infoHash: new Uint8Array(20).fill(1),
    peerId: new Uint8Array(20).fill(2),
    port: 6881,
    numWant: 50,
    timeoutMs: 2000,
    udpMaxRetries: 0,
    minReannounceSeconds: 0.1,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 100 }),
    onPeers: (p, source) => {
      peers.push({ peers: p, source });
      waiters.splice(0).forEach((w) => w());
    },
    log: (line) => log.push(line),
    ...overrides,
  });
  /** Resolves once `count` replies have been delivered. */
  const replies = async (count: number) => {
    while (peers.length < count) {
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { a, peers, log, replies };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("announcer falls back from dead trackers to the next tier and logs each once", async () => {
  const silentUdp = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => silentUdp.bind(0, "127.0.0.1", resolve));
  await using good = httpTracker();
  const deadHttp = closedPortUrl();
  const deadUdp = `udp://127.0.0.1:${silentUdp.address().port}/announce`;
  const { a, peers, log, replies } = announcer([[deadUdp], [deadHttp], [
    good.url,
  ]], {
    timeoutMs: 50,
  });
  try {
    a.start();
    await replies(1);
    assert.deepEqual(peers[0], {
      peers: [{ host: "127.0.0.1", port: 6881 }],
      source: good.url,
    });
    a.needPeers();
    await replies(2);
    assert.deepEqual(good.events, ["started", "none"]);
    assert.equal(log.length, 2, log.join("\n"));
    assert.match(
      log[0],
      /^tracker udp:\/\/127\.0\.0\.1:\d+\/announce: no reply after 1 try$/,
    );
    assert.match(
      log[1],
      /^tracker http:\/\/127\.0\.0\.1:\d+\/announce: .*refused/i,
    );
  } finally {
    await a.stop(500);
    await new Promise<void>((resolve) => silentUdp.close(() => resolve()));
  }
  assert.deepEqual(good.events, ["started", "none", "stopped"]);
});

Deno.test("announcer moves a tracker that answered to the front of its tier", async () => {
  await using broken = httpTracker(() => 500);
  await using good = httpTracker();
  const { a, log, replies } = announcer([[broken.url, good.url]]);
  try {
    a.start();
    await replies(1);
    const brokenTries = broken.events.length; // 0 or 1: the tier is shuffled
    for (let i = 2; i <= 3; i++) {
      a.needPeers();
      await replies(i);
    }
    assert.equal(broken.events.length, brokenTries);
    assert.deepEqual(good.events, ["started", "none", "none"]);
    assert.equal(log.length, brokenTries);
  } finally {
    await a.stop(500);
  }
});

Deno.test("needPeers announces early but not before minReannounceSeconds", async () => {
  await using tracker = httpTracker();
  const { a, replies } = announcer([[tracker.url]], {
    minReannounceSeconds: 0.3,
  });
  try {
    const began = performance.now();
    a.start();
    await replies(1);
    for (let i = 0; i < 5; i++) a.needPeers();
    await sleep(100);
    assert.equal(tracker.events.length, 1);
    await replies(2);
    assert.ok(
      performance.now() - began >= 295,
      "second announce came too early",
    );
    await sleep(400);
    assert.equal(tracker.events.length, 2, "needPeers once must announce once");
  } finally {
    await a.stop(500);
  }
});

Deno.test("needPeers respects the tracker's min interval when it is longer", async () => {
  await using tracker = httpTracker(() => ({
    interval: 3600,
    "min interval": 1,
    peers: new Uint8Array(0),
  }));
  const { a, replies } = announcer([[tracker.url]], {
    minReannounceSeconds: 0.05,
  });
  try {
    const began = performance.now();
    a.start();
    await replies(1);
    a.needPeers();
    await replies(2);
    assert.ok(
      performance.now() - began >= 995,
      "announced before the min interval",
    );
  } finally {
    await a.stop(500);
  }
});

Deno.test("announcer re-announces on the tracker's interval, floored", async () => {
  await using tracker = httpTracker(() => ({
    interval: 0,
    peers: new Uint8Array(0),
  }));
  const { a, replies } = announcer([[tracker.url]], {
    minReannounceSeconds: 0.1,
  });
  try {
    a.start();
    await replies(3);
    assert.deepEqual(tracker.events, ["started", "none", "none"]);
  } finally {
    await a.stop(500);
  }
});

Deno.test("completed is sent once; stop sends stopped with numwant 0 and uses tracker id", async () => {
  await using tracker = httpTracker(() => ({
    interval: 3600,
    "tracker id": "T1",
    peers: new Uint8Array(0),
  }));
  const { a, replies } = announcer([[tracker.url]]);
  a.start();
  await replies(1);
  a.completed();
  a.completed();
  await replies(2);
  await a.stop(500);
  await a.stop(500);
  assert.deepEqual(tracker.events, ["started", "completed", "stopped"]);
  assert.ok(!tracker.urls[0].includes("trackerid="));
  assert.match(tracker.urls[1], /&numwant=50&.*&trackerid=T1$/);
  assert.match(tracker.urls[2], /&numwant=0&.*&trackerid=T1$/);
});

Deno.test("stop is bounded by its timeout when the tracker does not answer", async () => {
  await using tracker = httpTracker((event) =>
    event === "stopped" ? HANG : okReply()
  );
  const { a, log, replies } = announcer([[tracker.url]]);
  a.start();
  await replies(1);
  const began = performance.now();
  await a.stop(150);
  const elapsed = performance.now() - began;
  assert.ok(elapsed < 1000, `stop took ${elapsed} ms`);
  assert.match(
    log.at(-1)!,
    /^tracker http:\/\/127\.0\.0\.1:\d+\/announce: no reply within 150 ms \(while sending "stopped"\)$/,
  );
});

Deno.test("stop cancels an announce in flight and sends nothing if no tracker answered", async () => {
  await using tracker = httpTracker(() => HANG);
  const { a, peers, log } = announcer([[tracker.url]]);
  a.start();
  await sleep(50);
  await a.stop(500);
  assert.deepEqual(tracker.events, ["started"]);
  assert.deepEqual(peers, []);
  assert.deepEqual(log, []);
});
