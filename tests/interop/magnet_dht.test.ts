// Trackerless magnet links through a loopback DHT of libtorrent nodes
// (BEP 5 + BEP 9): our client, given only the info-hash and one bootstrap
// node in its config, finds a libtorrent seeder with get_peers, fetches the
// metadata and downloads; the routing table it saved lets a second run find
// the seeder with no bootstrap node at all. And the reverse: our client seeds
// and announces, and a libtorrent leecher finds it through the DHT.

import assert from "node:assert/strict";
import { ClientProcess } from "../helpers/client.ts";
import { startLibtorrentDht } from "../helpers/lt_dht.ts";
import { infoHashOf } from "../helpers/mktorrent.ts";
import { sha256Tree } from "../helpers/payload.ts";
import {
  assertSameTree,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";

/** Loopback only: the DHT on, LSD and port mapping off (they would leave 127.0.0.1). */
function dhtConfig(bootstrap: number[]) {
  return {
    dhtBootstrap: bootstrap.map((port) => `127.0.0.1:${port}`),
    lsd: false,
    portMapping: "off",
  };
}

function runOnDht(args: string[], cwd: string, lifetimeSec = 90) {
  return new ClientProcess(args, { cwd, lifetimeSec, network: true }).wait();
}

Deno.test("a bare magnet link is found through the DHT, fetched and downloaded; the saved routing table needs no bootstrap next time", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const hex = await infoHashOf(fixture.torrent);
  const dht = await startLibtorrentDht({
    nodes: 4,
    seed: { torrent: fixture.torrent, dataDir: fixture.dataDir },
  });
  try {
    const magnet = `magnet:?xt=urn:btih:${hex}`;
    const args = (config: string) => [
      "download",
      magnet,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
      "--config",
      config,
    ];
    const first = await runOnDht(
      args(await writeConfig(fixture, dhtConfig([dht.dhtPorts[0]]))),
      fixture.root,
    );
    assert.equal(first.code, 0, first.output);
    assert.ok(first.events.some((e) => e.type === "metadata"), first.output);
    assert.match(
      first.output,
      new RegExp(`received from: 127\\.0\\.0\\.1:${dht.seederPort} `),
    );
    await assertSameTree(fixture);

    // Forget the data and the metadata, keep the DHT state: no bootstrap node now.
    await Deno.remove(`${fixture.downloadDir}/${fixture.name}`, {
      recursive: true,
    });
    await Deno.remove(`${fixture.root}/torrents`, { recursive: true });
    const second = await runOnDht(
      args(await writeConfig(fixture, dhtConfig([]))),
      fixture.root,
    );
    assert.equal(second.code, 0, second.output);
    assert.match(second.output, /DHT: .* [1-9]\d* saved nodes/);
    assert.ok(second.events.some((e) => e.type === "metadata"), second.output);
    await assertSameTree(fixture);
  } finally {
    await dht.stop();
    await fixture.remove();
  }
});

Deno.test("our seeder announces into the DHT and a libtorrent leecher with only the magnet link finds it", async () => {
  const fixture = await makeFixture({
    kind: "single",
    size: 3 * 1024 * 1024 + 11,
  });
  const hex = await infoHashOf(fixture.torrent);
  const leechDir = `${fixture.root}/leech`;
  await Deno.mkdir(leechDir);
  // Our node joins first (bootstrapped by the plain nodes); the leecher starts
  // once a plain node's get_peers returns our address.
  // The plain nodes look the hash up every 2 s, so the test can tell when
  // our announce has landed: libtorrent's leecher looks up once at start
  // and then only every few minutes.
  const nodes = await startLibtorrentDht({ nodes: 4, lookup: [hex] });
  const seeder = new ClientProcess([
    "seed",
    fixture.torrent,
    "--dir",
    fixture.dataDir,
    "--port",
    "0",
    "--config",
    await writeConfig(fixture, dhtConfig(nodes.dhtPorts)),
  ], { cwd: fixture.root, lifetimeSec: 120, network: true });
  let leecher: Awaited<ReturnType<typeof startLibtorrentDht>> | null = null;
  try {
    const [, port] = await seeder.waitForLine(
      /DHT: .* on UDP port (\d+)/,
      30_000,
    );
    const [, tcpPort] = await seeder.waitForLine(
      /seeding .* on port (\d+)/,
      30_000,
    );
    await nodes.waitForPeer(hex, `127.0.0.1:${tcpPort}`, 30_000).catch((e) => {
      throw new Error(`${e}\nCLIENT:\n${seeder.output}`);
    });
    leecher = await startLibtorrentDht({
      nodes: 1,
      bootstrap: [...nodes.dhtPorts, Number(port)].map((p) => `127.0.0.1:${p}`),
      leechMagnet: { uri: `magnet:?xt=urn:btih:${hex}`, saveDir: leechDir },
    });
    await leecher.waitLeechDone!(60_000);
    const seeded = await sha256Tree(fixture.dataDir);
    assert.deepEqual(
      await sha256Tree(leechDir),
      new Map([[fixture.name, seeded.get(fixture.name)]]),
    );
  } finally {
    seeder.kill("SIGINT");
    await seeder.wait();
    await leecher?.stop();
    await nodes.stop();
    await fixture.remove();
  }
});
