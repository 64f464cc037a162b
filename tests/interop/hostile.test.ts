// Hostile peers never cost data or the process: beside an honest libtorrent
// seeder, a peer that sends wrong data is banned and the download completes
// correctly; a peer running each other attack is dropped while the download
// goes on, and memory stays within the budget throughout.

import assert from "node:assert/strict";
import { ClientProcess } from "../helpers/client.ts";
import {
  type HostileAttack,
  rssKiB,
  startHostilePeer,
} from "../helpers/hostile_peer.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import {
  assertSameTree,
  downloadArgs,
  makeFixture,
} from "../helpers/swarm_fixture.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";

const MIB = 1024 * 1024;
/** The memory budget from DESIGN.md, in KiB. */
const RSS_BUDGET_KIB = 150 * 1024;

/** Downloads 16 MiB from a capped libtorrent seeder while a hostile peer attacks. */
async function downloadUnderAttack(
  attack: HostileAttack,
  extra: string[] = [],
) {
  const fixture = await makeFixture({ kind: "single", size: 16 * MIB + 3 });
  const meta = parseMetainfo(await Deno.readFile(fixture.torrent));
  const honest = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
    uploadLimit: 4 * MIB,
  });
  const hostile = startHostilePeer({
    infoHash: meta.infoHash,
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    attack,
  });
  const client = new ClientProcess(
    downloadArgs(
      fixture,
      "--peer",
      `127.0.0.1:${hostile.port}`,
      "--peer",
      `127.0.0.1:${honest.port}`,
      ...extra,
    ),
    { lifetimeSec: 60 },
  );
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      peakRss = Math.max(peakRss, rssKiB(client.pid));
    } catch { /* the process has just exited */ }
  }, 100);
  try {
    const end = await client.wait();
    clearInterval(sampler);
    assert.equal(end.code, 0, end.output);
    await assertSameTree(fixture);
    assert.ok(hostile.connections > 0, "the hostile peer was never connected");
    assert.ok(peakRss < RSS_BUDGET_KIB, `peak RSS ${peakRss} KiB`);
    console.log(`${attack}: peak RSS ${(peakRss / 1024).toFixed(0)} MiB`);
    return { output: end.output, hostilePort: hostile.port, fixture, peakRss };
  } finally {
    clearInterval(sampler);
    await hostile.stop();
    await honest.stop();
  }
}

Deno.test("a peer sending wrong data is banned, and the download completes correctly", async () => {
  const reportDir = await Deno.makeTempDir();
  const report = `${reportDir}/peers.json`;
  const run = await downloadUnderAttack("wrong-data", [
    "--peer-report",
    report,
  ]);
  try {
    assert.match(
      run.output,
      new RegExp(`banned 127\\.0\\.0\\.1:${run.hostilePort}`),
    );
    const rows = JSON.parse(await Deno.readTextFile(report)) as {
      address: string;
      banned: boolean;
    }[];
    const row = rows.find((r) => r.address === `127.0.0.1:${run.hostilePort}`);
    assert.equal(row?.banned, true, JSON.stringify(rows));
    assert.ok(
      rows.some((r) => !r.banned && r.address !== row?.address),
      "the honest seeder is in the report",
    );
  } finally {
    await run.fixture.remove();
    await Deno.remove(reportDir, { recursive: true });
  }
});

for (
  const attack of [
    "garbage",
    "huge-length",
    "bad-bitfield",
    "request-flood",
    "silent",
    "unsolicited",
    "metadata-flood",
  ] as const
) {
  Deno.test(`a peer sending ${attack} is survived: the download completes, memory stays bounded`, async () => {
    const run = await downloadUnderAttack(attack);
    try {
      if (attack !== "silent") {
        assert.match(
          run.output,
          new RegExp(`dropped peer 127\\.0\\.0\\.1:${run.hostilePort}`),
        );
      }
    } finally {
      await run.fixture.remove();
    }
  });
}
