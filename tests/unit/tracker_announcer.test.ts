import assert from "node:assert/strict";
import dgram from "node:dgram";
import { type Encodable, encode } from "../../src/bencode/encode.ts";
import type { TrackerAnnounceOptions } from "../../src/tracker/announce.ts";
import {
  Announcer,
  type AnnouncerOptions,
} from "../../src/tracker/announcer.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
} from "../../src/tracker/types.ts";
import type { PeerAddress } from "../../src/net/address.ts";
import { FakeClock, settle } from "../helpers/fake_clock.ts";

// --- scripted trackers: answers decided by the test, time by a FakeClock ---

interface Call {
  url: string;
  req: AnnounceRequest;
  aborted: boolean;
  resolve: (response: AnnounceResponse) => void;
  reject: (e: Error) => void;
}

/** What a scripted tracker does with an announce: answer at once, fail at once, or nothing (silent until cancelled). */
type Behaviour =
  | AnnounceResponse
  | "fail"
  | "silent"
  | ((call: Call) => void);

const PEER: PeerAddress = { host: "127.0.0.1", port: 6881 };

function reply(
  peers: PeerAddress[] = [PEER],
  extra: Partial<AnnounceResponse> = {},
): AnnounceResponse {
  return { peers, listedPeers: peers.length, interval: 3600, ...extra };
}

function scriptedTrackers(behaviours: Record<string, Behaviour>) {
  const calls: Call[] = [];
  const announce = (
    url: string,
    req: AnnounceRequest,
    opts: TrackerAnnounceOptions,
  ): Promise<AnnounceResponse> => {
    const { promise, resolve, reject } = Promise.withResolvers<
      AnnounceResponse
    >();
    const call: Call = { url, req, aborted: false, resolve, reject };
    calls.push(call);
    opts.signal?.addEventListener("abort", () => {
      call.aborted = true;
      reject(new TrackerError(`tracker ${url}: announce cancelled`));
    }, { once: true });
    const behaviour = behaviours[url] ?? reply();
    if (behaviour === "fail") {
      reject(new TrackerError(`tracker ${url}: HTTP 500`));
    } else if (typeof behaviour === "function") behaviour(call);
    else if (behaviour !== "silent") resolve(behaviour);
    return promise;
  };
  const events = (url: string) =>
    calls.filter((c) => c.url === url).map((c) => c.req.event);
  return { calls, announce, events };
}

/** Keeps every tier in the order given (Fisher-Yates with j = i each step). */
const KEEP_ORDER = () => 1 - Number.EPSILON;

function scripted(
  tiers: string[][],
  behaviours: Record<string, Behaviour>,
  overrides: Partial<AnnouncerOptions> = {},
) {
  const clock = new FakeClock();
  const trackers = scriptedTrackers(behaviours);
  const peers: { peers: PeerAddress[]; source: string; at: number }[] = [];
  const log: string[] = [];
  const a = new Announcer(tiers, {
    infoHash: new Uint8Array(20).fill(1),
    peerId: new Uint8Array(20).fill(2),
    port: 6881,
    numWant: 50,
    timeoutMs: 15_000,
    udpMaxRetries: 2,
    minReannounceSeconds: 30,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 100 }),
    onPeers: (p, source) => peers.push({ peers: p, source, at: clock.now() }),
    log: (line) => log.push(line),
    clock,
    random: KEEP_ORDER,
    announce: trackers.announce,
    ...overrides,
  });
  return { a, clock, peers, log, ...trackers };
}

/** Stops the announcer, letting "stopped" announces that get no answer time out. */
async function stop(t: ReturnType<typeof scripted>): Promise<void> {
  const stopping = t.a.stop(1000);
  await t.clock.advance(1000);
  await stopping;
}

Deno.test("a silent tracker has the next tier tried after 5 s, keeps going, and is used when it answers", async () => {
  const t = scripted([["udp://silent"], ["http://good"]], {
    "udp://silent": (call) => {
      if (call.req.event !== "started") call.resolve(reply());
    },
  });
  t.a.start();
  await t.clock.advance(4999);
  assert.deepEqual(t.calls.map((c) => c.url), ["udp://silent"]);
  await t.clock.advance(1);
  assert.deepEqual(t.peers.map((p) => [p.source, p.at]), [[
    "http://good",
    5000,
  ]]);
  const silent = t.calls[0];
  assert.equal(silent.aborted, false, "a tracker ahead of the winner goes on");
  await t.clock.advance(40_000);
  silent.resolve(reply([{ host: "127.0.0.2", port: 1 }]));
  await settle();
  assert.deepEqual(t.peers.map((p) => p.source), [
    "http://good",
    "udp://silent",
  ]);
  // The next round (on good's interval) starts with tier 1, which now answers.
  await t.clock.advance(3600_000);
  assert.deepEqual(t.events("udp://silent"), ["started", "none"]);
  assert.deepEqual(t.events("http://good"), ["started"]);
  assert.deepEqual(t.log, []);
  await stop(t);
  assert.deepEqual(t.events("udp://silent"), ["started", "none", "stopped"]);
  assert.deepEqual(t.events("http://good"), ["started", "stopped"]);
});

Deno.test("a tracker that fails has the next one tried at once", async () => {
  const t = scripted([["http://a", "http://b"], ["http://c"]], {
    "http://a": "fail",
    "http://b": "fail",
  });
  t.a.start();
  await settle();
  assert.deepEqual(t.peers.map((p) => [p.source, p.at]), [["http://c", 0]]);
  assert.deepEqual(t.log, [
    "tracker http://a: HTTP 500",
    "tracker http://b: HTTP 500",
  ]);
  await stop(t);
});

Deno.test("two silent trackers in tier 1: tier 2 is asked after 2 x 5 s, both keep going", async () => {
  const t = scripted([["udp://s1", "udp://s2"], ["http://good"]], {
    "udp://s1": "silent",
    "udp://s2": "silent",
  });
  t.a.start();
  await t.clock.advance(5000);
  assert.deepEqual(t.calls.map((c) => c.url), ["udp://s1", "udp://s2"]);
  await t.clock.advance(4999);
  assert.equal(t.peers.length, 0);
  await t.clock.advance(1);
  assert.deepEqual(t.peers.map((p) => [p.source, p.at]), [[
    "http://good",
    10_000,
  ]]);
  assert.deepEqual(t.calls.map((c) => c.aborted), [false, false, false]);
  await stop(t);
  assert.deepEqual(t.calls.slice(0, 2).map((c) => c.aborted), [true, true]);
});

Deno.test("the trackers tried after the one that answers are cancelled, quietly", async () => {
  let slow: Call | undefined;
  const t = scripted([["http://slow"], ["http://hedge"]], {
    "http://slow": (call) => slow ??= call,
    "http://hedge": "silent",
  });
  t.a.start();
  await t.clock.advance(5000);
  assert.deepEqual(t.calls.map((c) => c.url), ["http://slow", "http://hedge"]);
  await t.clock.advance(2000);
  slow!.resolve(reply());
  await settle();
  assert.deepEqual(t.peers.map((p) => [p.source, p.at]), [[
    "http://slow",
    7000,
  ]]);
  assert.equal(t.calls[1].aborted, true);
  assert.deepEqual(t.log, []);
  await stop(t);
});

Deno.test("a tracker still retrying from the last round is joined, not asked twice", async () => {
  const t = scripted([["udp://s"], ["http://good"]], {
    "udp://s": "silent",
    "http://good": reply([PEER], { interval: 60 }),
  });
  t.a.start();
  await t.clock.advance(5000);
  assert.equal(t.peers.length, 1);
  // The next round comes at 60 s; s has been silent for longer than 5 s already.
  await t.clock.advance(55_000);
  assert.deepEqual(t.events("udp://s"), ["started"]);
  assert.deepEqual(t.events("http://good"), ["started", "none"]);
  assert.deepEqual(t.peers.map((p) => p.at), [5000, 60_000]);
  await stop(t);
});

Deno.test("a tracker that answered moves to the front of its tier (BEP 12)", async () => {
  // The tier's order is kept as given, so the broken tracker is first: without
  // the move to the front, every round would ask it again.
  const t = scripted([["http://broken", "http://good"]], {
    "http://broken": "fail",
  }, { minReannounceSeconds: 1 });
  t.a.start();
  await settle();
  for (let round = 2; round <= 3; round++) {
    t.a.needPeers();
    await t.clock.advance(1000);
    assert.equal(t.peers.length, round);
  }
  assert.deepEqual(t.events("http://broken"), ["started"]);
  assert.deepEqual(t.events("http://good"), ["started", "none", "none"]);
  assert.equal(t.log.length, 1);
  await stop(t);
});

Deno.test("the BEP 12 shuffle follows the random source, once per tier", async () => {
  const t = scripted([["http://a", "http://b", "http://c"]], {
    "http://a": "fail",
    "http://b": "fail",
    "http://c": "fail",
  }, { random: () => 0 });
  t.a.start();
  await settle();
  // Fisher-Yates with j = 0 at each step: [a, b, c] -> [c, b, a] -> [b, c, a].
  const first = t.calls.map((c) => c.url);
  assert.deepEqual(first, ["http://b", "http://c", "http://a"]);
  await t.clock.advance(30_000); // retry after a failed round: same order
  assert.deepEqual(t.calls.slice(3).map((c) => c.url), first);
  await stop(t);
});

Deno.test("needPeers announces early but not before minReannounceSeconds", async () => {
  const t = scripted([["http://t"]], {}, { minReannounceSeconds: 0.3 });
  t.a.start();
  await settle();
  for (let i = 0; i < 5; i++) t.a.needPeers();
  await t.clock.advance(299);
  assert.equal(t.calls.length, 1);
  await t.clock.advance(1);
  assert.equal(t.calls.length, 2);
  await t.clock.advance(10_000);
  assert.equal(t.calls.length, 2, "needPeers once must announce once");
  await stop(t);
});

Deno.test("needPeers respects the tracker's min interval when it is longer", async () => {
  const t = scripted([["http://t"]], {
    "http://t": reply([], { minInterval: 1 }),
  }, { minReannounceSeconds: 0.05 });
  t.a.start();
  await settle();
  t.a.needPeers();
  await t.clock.advance(999);
  assert.equal(t.calls.length, 1);
  await t.clock.advance(1);
  assert.equal(t.calls.length, 2);
  await stop(t);
});

Deno.test("announcer re-announces on the tracker's interval, floored", async () => {
  const t = scripted([["http://t"]], {
    "http://t": reply([], { interval: 0 }),
  }, { minReannounceSeconds: 0.1 });
  t.a.start();
  await t.clock.advance(99);
  assert.equal(t.calls.length, 1);
  await t.clock.advance(101);
  assert.deepEqual(t.events("http://t"), ["started", "none", "none"]);
  await stop(t);
});

Deno.test("failed rounds are retried from minReannounceSeconds, doubling, logged once", async () => {
  const t = scripted([["http://t"]], { "http://t": "fail" }, {
    minReannounceSeconds: 2,
  });
  t.a.start();
  await t.clock.advance(1999);
  assert.equal(t.calls.length, 1);
  await t.clock.advance(1); // 2 s
  await t.clock.advance(4000); // + 4 s
  await t.clock.advance(8000); // + 8 s
  assert.deepEqual(t.calls.length, 4);
  assert.deepEqual(t.log, [
    "tracker http://t: HTTP 500",
    "no tracker answered; retrying, first in 2 s",
  ]);
  await stop(t);
});

Deno.test("setPort announces the new port at once, after a round still searching", async () => {
  let first: Call | undefined;
  const t = scripted([["http://t"]], {
    "http://t": (call) => first ? call.resolve(reply()) : first = call,
  }, { minReannounceSeconds: 1 });
  t.a.setPort(7000); // before start: just used from the first announce
  t.a.start();
  await settle();
  t.a.setPort(7001); // the round is still waiting for its answer
  t.a.setPort(7001);
  assert.deepEqual(t.calls.map((c) => c.req.port), [7000]);
  first!.resolve(reply());
  await settle();
  // No floor: the tracker hands out our old port until it hears the new one.
  assert.deepEqual(t.calls.map((c) => c.req.port), [7000, 7001]);
  await t.clock.advance(60_000);
  assert.equal(t.calls.length, 2, "one change, one announce");
  await stop(t);
});

Deno.test("a reply listing peers none of which can be dialled does not end the round", async () => {
  const t = scripted([["http://junk"], ["http://good"]], {
    "http://junk": { peers: [], listedPeers: 3, interval: 60 },
  });
  t.a.start();
  await settle();
  assert.deepEqual(t.peers.map((p) => p.source), ["http://good"]);
  assert.deepEqual(t.log, [
    "tracker http://junk: none of the 3 peers it listed can be dialled",
  ]);
  // It took the announce, though: it is told "stopped" like any other.
  await stop(t);
  assert.deepEqual(t.events("http://junk"), ["started", "stopped"]);
});

Deno.test("an empty peer list is an answer: the tracker works, it has no peers yet", async () => {
  const t = scripted([["http://empty"], ["http://other"]], {
    "http://empty": reply([]),
  });
  t.a.start();
  await settle();
  assert.deepEqual(t.calls.map((c) => c.url), ["http://empty"]);
  await stop(t);
});

const P1 = { host: "127.0.0.1", port: 1001 };
const P2 = { host: "127.0.0.1", port: 1002 };
const P3 = { host: "127.0.0.1", port: 1003 };

Deno.test("when every peer of the reply proves unreachable, the next tracker is tried", async () => {
  const t = scripted([["http://a"], ["http://b"]], {
    "http://a": reply([P1, P2]),
    "http://b": reply([P3]),
  });
  t.a.start();
  await settle();
  t.a.peerDialled(P1, false);
  t.a.peerDialled(P1, false); // the same peer again counts once
  t.a.peerDialled(P3, false); // not one of a's peers
  await settle();
  assert.deepEqual(t.calls.map((c) => c.url), ["http://a"]);
  t.a.peerDialled(P2, false);
  await settle();
  assert.deepEqual(t.peers.map((p) => p.source), ["http://a", "http://b"]);
  t.a.peerDialled(P3, false);
  assert.deepEqual(t.log, [
    "tracker http://a: none of the 2 peers it gave could be reached; trying the next tracker",
    "tracker http://b: none of the 1 peers it gave could be reached; no other tracker to try",
  ]);
  // The fallback does not disturb the schedule: b's interval sets the next round, which starts at a.
  await t.clock.advance(3600_000);
  assert.deepEqual(t.calls.map((c) => c.url), [
    "http://a",
    "http://b",
    "http://a",
  ]);
  await stop(t);
});

Deno.test("one reachable peer proves the reply: no fallback", async () => {
  const t = scripted([["http://a"], ["http://b"]], {
    "http://a": reply([P1, P2]),
  });
  t.a.start();
  await settle();
  t.a.peerDialled(P1, true);
  t.a.peerDialled(P2, false);
  await settle();
  assert.deepEqual(t.calls.map((c) => c.url), ["http://a"]);
  assert.deepEqual(t.log, []);
  await stop(t);
});

Deno.test("a reply listing far more peers than numwant is logged once per tracker", async () => {
  const many = Array.from({ length: 200 }, (_, i) => ({
    host: "127.0.0.1",
    port: 1 + i,
  }));
  const t = scripted([["udp://flood"]], {
    "udp://flood": { peers: many, listedPeers: 10_914, interval: 60 },
  });
  t.a.start();
  await t.clock.advance(60_000);
  assert.equal(t.calls.length, 2);
  assert.deepEqual(t.log, [
    "tracker udp://flood listed 10914 peers for numwant 50; using 200 of them",
  ]);
  await stop(t);
});

Deno.test("stop is bounded by its timeout when the tracker does not answer", async () => {
  const t = scripted([["http://t"]], {
    "http://t": (call) => {
      if (call.req.event !== "stopped") call.resolve(reply());
    },
  });
  t.a.start();
  await settle();
  const stopping = t.a.stop(150);
  let stopped = false;
  stopping.then(() => stopped = true);
  await t.clock.advance(149);
  assert.equal(stopped, false);
  await t.clock.advance(1);
  assert.equal(stopped, true);
  assert.deepEqual(t.events("http://t"), ["started", "stopped"]);
  assert.equal(t.calls[1].req.numWant, 0);
  assert.equal(
    t.log.at(-1),
    'tracker http://t: no reply within 150 ms (while sending "stopped")',
  );
  assert.equal(t.clock.pending, 0, "stop leaves no timer behind");
});

Deno.test("stop cancels an announce in flight and sends nothing if no tracker answered", async () => {
  const t = scripted([["http://t"]], { "http://t": "silent" });
  t.a.start();
  await t.clock.advance(50);
  await t.a.stop(500);
  assert.deepEqual(t.events("http://t"), ["started"]);
  assert.equal(t.calls[0].aborted, true);
  assert.deepEqual(t.peers, []);
  assert.deepEqual(t.log, []);
  assert.equal(t.clock.pending, 0);
});

Deno.test("completed is sent once; a started that went out before completion does not count as it", async () => {
  let left = 100;
  let first: Call | undefined;
  const t = scripted([["http://t"]], {
    "http://t": (call) => {
      if (!first) first = call;
      else call.resolve(reply());
    },
  }, { stats: () => ({ uploaded: 0, downloaded: 0, left }) });
  t.a.start();
  await settle();
  left = 0;
  t.a.completed();
  t.a.completed();
  first!.resolve(reply()); // "started" with left=100 answered after completing
  await settle();
  assert.deepEqual(t.events("http://t"), ["started", "completed"]);
  await stop(t);
  assert.deepEqual(t.events("http://t"), ["started", "completed", "stopped"]);
});

// --- against real sockets ---

/** An HTTP tracker on loopback that records each announce's event. */
function httpTracker(reply: () => Encodable | number = okReply) {
  const events: string[] = [];
  const urls: string[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req) => {
      events.push(new URL(req.url).searchParams.get("event") ?? "none");
      urls.push(req.url);
      const body = reply();
      if (typeof body === "number") return new Response("no", { status: body });
      return new Response(new Uint8Array(encode(body)));
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/announce`,
    events,
    urls,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function okReply(): Encodable {
  return {
    interval: 3600,
    "tracker id": "T1",
    peers: new Uint8Array([127, 0, 0, 1, 0x1a, 0xe1]),
  };
}

function closedPortUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return `http://127.0.0.1:${listener.addr.port}/announce`;
}

Deno.test("over real sockets: dead UDP and HTTP tiers fall through to a live tracker, each failure logged once", async () => {
  const silentUdp = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => silentUdp.bind(0, "127.0.0.1", resolve));
  await using good = httpTracker();
  const deadUdp = `udp://127.0.0.1:${silentUdp.address().port}/announce`;
  const peers: { peers: PeerAddress[]; source: string }[] = [];
  const log: string[] = [];
  let got = Promise.withResolvers<void>();
  const a = new Announcer([[deadUdp], [closedPortUrl()], [good.url]], {
    infoHash: new Uint8Array(20).fill(1),
    peerId: new Uint8Array(20).fill(2),
    port: 6881,
    numWant: 50,
    timeoutMs: 50,
    udpMaxRetries: 0,
    minReannounceSeconds: 1,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 100 }),
    onPeers: (p, source) => {
      peers.push({ peers: p, source });
      got.resolve();
    },
    log: (line) => log.push(line),
  });
  try {
    a.start();
    await got.promise;
    got = Promise.withResolvers<void>();
    a.needPeers();
    await got.promise;
    assert.deepEqual(peers[0], {
      peers: [{ host: "127.0.0.1", port: 6881 }],
      source: good.url,
    });
    assert.deepEqual(good.events, ["started", "none"]);
    assert.match(good.urls[1], /&numwant=50&.*&trackerid=T1$/);
    assert.equal(log.length, 2, log.join("\n"));
    assert.ok(
      log.some((l) =>
        /^tracker udp:\/\/127\.0\.0\.1:\d+\/announce: no reply after 1 try$/
          .test(l)
      ),
      log.join("\n"),
    );
    assert.ok(
      log.some((l) =>
        /^tracker http:\/\/127\.0\.0\.1:\d+\/announce: .*refused/i.test(l)
      ),
      log.join("\n"),
    );
  } finally {
    await a.stop(500);
    await new Promise<void>((resolve) => silentUdp.close(() => resolve()));
  }
  assert.deepEqual(good.events, ["started", "none", "stopped"]);
  assert.match(good.urls[2], /&numwant=0&.*&trackerid=T1$/);
});
