// The announced port follows a port mapping that comes (or moves) after the
// start: trackers and the DHT are told again, and nothing else happens when
// the port stays the same.

import assert from "node:assert/strict";
import { AnnouncePort } from "../../src/session/announce_port.ts";
import {
  type DhtService,
  PeerSources,
} from "../../src/discovery/peer_sources.ts";
import { Announcer } from "../../src/tracker/announcer.ts";

Deno.test("AnnouncePort tells its followers of changes only, until they unfollow", () => {
  const port = new AnnouncePort(6881);
  const seen: number[] = [];
  const unfollow = port.follow((p) => seen.push(p));
  port.set(6881);
  port.set(40000);
  port.set(40000);
  unfollow();
  port.set(40001);
  assert.deepEqual(seen, [40000]);
  assert.equal(port.value, 40001);
});

Deno.test("Announcer.setPort re-announces the new port at once, min interval or not", async () => {
  const ports: string[] = [];
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (req) => {
      ports.push(new URL(req.url).searchParams.get("port") ?? "");
      // interval and min interval of an hour: only setPort can announce again
      return new Response("d8:intervali3600e12:min intervali3600e5:peers0:e");
    },
  );
  const announcer = new Announcer([[
    `http://127.0.0.1:${server.addr.port}/announce`,
  ]], {
    infoHash: new Uint8Array(20).fill(1),
    peerId: new Uint8Array(20).fill(2),
    port: 6881,
    numWant: 50,
    timeoutMs: 5000,
    udpMaxRetries: 0,
    minReannounceSeconds: 30,
    stats: () => ({ uploaded: 0, downloaded: 0, left: 100 }),
    onPeers: () => {},
    log: () => {},
  });
  try {
    announcer.start();
    await until(() => ports.length === 1);
    announcer.setPort(6881);
    announcer.setPort(40000);
    await until(() => ports.length === 2);
    assert.deepEqual(ports, ["6881", "40000"]);
  } finally {
    await announcer.stop(1000);
    await server.shutdown();
  }
});

Deno.test("PeerSources.setAnnouncePort announces on the DHT again, after a lookup in flight", async () => {
  const lookups: (number | undefined)[] = [];
  const pending: (() => void)[] = [];
  const dht: DhtService = {
    port: 6881,
    addNode() {},
    lookup(_infoHash, _onPeers, announcePort) {
      lookups.push(announcePort);
      return new Promise<void>((resolve) => pending.push(resolve));
    },
  };
  const sources = new PeerSources({
    infoHash: new Uint8Array(20),
    infoHashHex: "00".repeat(20),
    dht,
    lsd: null,
    announcePort: 6881,
    onPeers: () => {},
    log: () => {},
  });
  sources.start();
  sources.setAnnouncePort(6881);
  sources.setAnnouncePort(40000);
  assert.deepEqual(lookups, [6881], "one lookup at a time");
  pending.shift()!();
  await until(() => lookups.length === 2);
  assert.deepEqual(lookups, [6881, 40000]);
  sources.stop();
  pending.shift()!();
});

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !done(); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(done(), "timed out");
}
