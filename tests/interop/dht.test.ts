// Our DHT node (BEP 5) in a loopback DHT of libtorrent sessions: it finds a libtorrent
// seeder through get_peers, libtorrent finds what it announces, and a saved routing
// table is enough to start the next run without any bootstrap node.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { DhtNode, type DhtNodeOptions } from "../../src/dht/dht_node.ts";
import { nodeIdHex } from "../../src/dht/node_id.ts";
import { startLibtorrentDht } from "../helpers/lt_dht.ts";
import { infoHashOf } from "../helpers/mktorrent.ts";
import { makeFixture } from "../helpers/swarm_fixture.ts";

function options(overrides: Partial<DhtNodeOptions>): DhtNodeOptions {
  return {
    host: "127.0.0.1",
    port: 0,
    bootstrap: [],
    stateFile: null,
    log: () => {},
    queryTimeoutMs: 1000,
    ...overrides,
  };
}

function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

/** Runs get_peers lookups until one finds `address`; returns how many lookups it took. */
async function lookupUntilFound(
  node: DhtNode,
  infoHash: Uint8Array,
  address: string,
  attempts: number,
): Promise<number> {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const found: string[] = [];
    await node.lookup(infoHash, (peers) => {
      found.push(...peers.map((p) => `${p.host}:${p.port}`));
    });
    if (found.includes(address)) return attempt;
  }
  throw new Error(`${address} not found in ${attempts} lookups`);
}

Deno.test("finds a libtorrent seeder through get_peers, and again from the saved table alone", async () => {
  const fixture = await makeFixture({ kind: "single", size: 300_000 });
  const infoHash = hexBytes(await infoHashOf(fixture.torrent));
  const lt = await startLibtorrentDht({
    nodes: 4,
    seed: { torrent: fixture.torrent, dataDir: fixture.dataDir },
    lifetimeSec: 90,
  });
  const stateFile = `${fixture.root}/dht.dat`;
  const seeder = `127.0.0.1:${lt.seederPort}`;
  try {
    const first = await DhtNode.start(options({
      bootstrap: [`127.0.0.1:${lt.dhtPorts[0]}`],
      stateFile,
    }));
    try {
      // the first lookup must do it: the seeder announced before lt.seederPort was known
      assert.equal(await lookupUntilFound(first, infoHash, seeder, 1), 1);
      assert.ok(first.stats().goodNodes >= 2, JSON.stringify(first.stats()));
    } finally {
      await first.close();
    }

    const lines: string[] = [];
    const second = await DhtNode.start(options({
      bootstrap: [],
      stateFile,
      log: (line) => lines.push(line),
    }));
    try {
      const saved = lines.join("\n").match(/(\d+) saved nodes/);
      assert.ok(saved && Number(saved[1]) >= 2, lines.join("\n"));
      assert.equal(await lookupUntilFound(second, infoHash, seeder, 1), 1);
    } finally {
      await second.close();
    }
  } finally {
    await lt.stop();
    await fixture.remove();
  }
});

Deno.test("announces an info-hash that libtorrent then finds through get_peers", async () => {
  const infoHash = new Uint8Array(randomBytes(20));
  const hex = nodeIdHex(infoHash);
  const lt = await startLibtorrentDht({
    nodes: 4,
    lookup: [hex],
    lifetimeSec: 60,
  });
  const node = await DhtNode.start(options({
    bootstrap: [`127.0.0.1:${lt.dhtPorts[1]}`],
  }));
  try {
    const announcedPort = 40_000 + Math.floor(Math.random() * 20_000);
    const result = await node.lookup(infoHash, () => {}, announcedPort);
    assert.equal(result.peers, 0, "nobody had announced this hash");
    assert.ok(result.queried >= 3, JSON.stringify(result));
    await lt.waitForPeer(hex, `127.0.0.1:${announcedPort}`, 15_000);
    assert.ok(node.stats().queriesAnswered > 0, "libtorrent queried us too");
  } finally {
    await node.close();
    await lt.stop();
  }
});
