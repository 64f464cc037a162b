// Our HTTP and UDP announce clients against a real tracker (opentracker).
// Two fake peers on 127.0.0.1 announce; each must learn of the other, and a
// peer that says "stopped" must disappear from later replies.

import assert from "node:assert/strict";
import { startOpentracker } from "../helpers/opentracker.ts";
import { Announcer } from "../../src/tracker/announcer.ts";
import { announceHttp } from "../../src/tracker/http.ts";
import { announceUdp, UdpConnectionCache } from "../../src/tracker/udp.ts";
import type {
  AnnounceEvent,
  AnnounceRequest,
  AnnounceResponse,
} from "../../src/tracker/types.ts";
import type { PeerAddress } from "../../src/net/address.ts";

const HTTP_HASH = "11".repeat(20);
const UDP_HASH = "22".repeat(20);
const ANNOUNCER_HASH = "33".repeat(20);
const PORT_A = 40001;
const PORT_B = 40002;

function hexBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
}

function request(
  hashHex: string,
  port: number,
  event: AnnounceEvent,
): AnnounceRequest {
  return {
    infoHash: hexBytes(hashHex),
    peerId: new TextEncoder().encode(`-XX0001-peer${port}xxx`.slice(0, 20)),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 1000,
    event,
    numWant: 50,
    key: port,
  };
}

function hasPeer(res: AnnounceResponse, port: number): boolean {
  return res.peers.some((p) => p.host === "127.0.0.1" && p.port === port);
}

/** Announces A then B, checks B sees A, stops A, checks B no longer sees A. */
async function twoPeersMeet(
  hashHex: string,
  announce: (req: AnnounceRequest) => Promise<AnnounceResponse>,
): Promise<void> {
  const a = await announce(request(hashHex, PORT_A, "started"));
  assert.ok(a.interval > 0);
  const b = await announce(request(hashHex, PORT_B, "started"));
  assert.ok(
    hasPeer(b, PORT_A),
    `B's reply lacks A: ${JSON.stringify(b.peers)}`,
  );
  const aAgain = await announce(request(hashHex, PORT_A, "none"));
  assert.ok(
    hasPeer(aAgain, PORT_B),
    `A's reply lacks B: ${JSON.stringify(aAgain.peers)}`,
  );
  await announce(request(hashHex, PORT_A, "stopped"));
  const bAgain = await announce(request(hashHex, PORT_B, "none"));
  assert.ok(!hasPeer(bAgain, PORT_A), `A is still listed after stopped`);
}

Deno.test("opentracker over HTTP: two peers see each other, stopped removes one", async () => {
  const tracker = await startOpentracker([HTTP_HASH]);
  try {
    await twoPeersMeet(
      HTTP_HASH,
      (req) => announceHttp(tracker.httpUrl, req, { timeoutMs: 5000 }),
    );
  } finally {
    await tracker.stop();
  }
});

Deno.test("opentracker over UDP: two peers see each other, stopped removes one", async () => {
  const tracker = await startOpentracker([UDP_HASH]);
  const connections = new UdpConnectionCache();
  try {
    await twoPeersMeet(
      UDP_HASH,
      (req) =>
        announceUdp(tracker.udpUrl, req, {
          timeoutMs: 1000,
          maxRetries: 2,
          connections,
        }),
    );
  } finally {
    await tracker.stop();
  }
});

Deno.test("opentracker refuses an info-hash missing from its whitelist", async () => {
  const tracker = await startOpentracker([HTTP_HASH]);
  try {
    await assert.rejects(
      announceHttp(tracker.httpUrl, request(UDP_HASH, PORT_A, "started"), {
        timeoutMs: 5000,
      }),
      /refused the announce: .*not authorized/,
    );
  } finally {
    await tracker.stop();
  }
});

Deno.test("Announcer: falls through a dead UDP tier to opentracker and stops cleanly", async () => {
  const tracker = await startOpentracker([ANNOUNCER_HASH]);
  const found: { peers: PeerAddress[]; source: string }[] = [];
  const { promise: gotPeers, resolve } = Promise.withResolvers<void>();
  const log: string[] = [];
  const announcer = new Announcer([[deadUdpUrl()], [
    tracker.httpUrl,
    tracker.udpUrl,
  ]], {
    infoHash: hexBytes(ANNOUNCER_HASH),
    peerId: new TextEncoder().encode("-XX0001-announcer123"),
    port: PORT_A,
    numWant: 50,
    timeoutMs: 100,
    udpMaxRetries: 0,
    minReannounceSeconds: 1,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 1000 }),
    onPeers: (peers, source) => {
      found.push({ peers, source });
      resolve();
    },
    log: (line) => log.push(line),
  });
  try {
    // Inside the try: a refusal here must still stop the tracker.
    const other = await announceHttp(
      tracker.httpUrl,
      request(ANNOUNCER_HASH, PORT_B, "started"),
      { timeoutMs: 5000 },
    );
    assert.ok(other.interval > 0);
    announcer.start();
    await gotPeers;
    assert.ok(
      found[0].peers.some((p) => p.port === PORT_B),
      JSON.stringify(found),
    );
    assert.ok([tracker.httpUrl, tracker.udpUrl].includes(found[0].source));
    // Tier 2 is tried once the dead tier has been silent for timeoutMs, the
    // moment that tier also gives up: its failure may be logged just after.
    const deadline = performance.now() + 2000;
    while (log.length === 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(log.length, 1, log.join("\n"));
    await announcer.stop(2000);
    const after = await announceHttp(
      tracker.httpUrl,
      request(ANNOUNCER_HASH, PORT_B, "none"),
      {
        timeoutMs: 5000,
      },
    );
    assert.ok(
      !after.peers.some((p) => p.port === PORT_A),
      "stopped peer still listed",
    );
  } finally {
    await announcer.stop(2000);
    await tracker.stop();
  }
});

/** A UDP port nothing listens on (taken from a TCP probe; nothing binds it). */
function deadUdpUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return `udp://127.0.0.1:${listener.addr.port}/announce`;
}
