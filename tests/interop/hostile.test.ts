// Hostile peers never cost data or the process: beside an honest libtorrent
// seeder, a peer that sends wrong data is banned and the download completes
// correctly; a peer running each other attack is dropped while the download
// goes on, memory stays within the budget throughout, and what such a peer
// sends is not counted as downloaded. Odd but honest peers are served as
// they ask: a second, partial extended handshake keeps the extensions of the
// first. A peer of another torrent is logged once and never redialled, and a
// leecher that holds its upload slot without asking for anything gives it
// up to a libtorrent leecher waiting for one.

import assert from "node:assert/strict";
import { ClientProcess } from "../helpers/client.ts";
import {
  type HostileAttack,
  type HostileNote,
  rssKiB,
  SECOND_HANDSHAKE_REQQ,
  startHostilePeer,
} from "../helpers/hostile_peer.ts";
import {
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../helpers/libtorrent.ts";
import { sha256Tree } from "../helpers/payload.ts";
import { freePort } from "../helpers/ports.ts";
import {
  assertSameTree,
  downloadArgs,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";

const MIB = 1024 * 1024;
/** The memory budget from DESIGN.md, in KiB. */
const RSS_BUDGET_KIB = 150 * 1024;

/**
 * Downloads 16 MiB from a capped libtorrent seeder while a hostile peer
 * attacks (given the content when it serves real blocks).
 */
async function downloadUnderAttack(
  attack: HostileAttack,
  extra: string[] = [],
  servesContent = false,
) {
  const fixture = await makeFixture({ kind: "single", size: 16 * MIB + 3 });
  const meta = parseMetainfo(await Deno.readFile(fixture.torrent));
  const payload = servesContent
    ? await Deno.readFile(`${fixture.dataDir}/${fixture.name}`)
    : undefined;
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
    payload,
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
    const summaries = end.output.split("\n").filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { bytesDown: number });
    const hostileAddress = `127.0.0.1:${hostile.port}`;
    return {
      output: end.output,
      hostilePort: hostile.port,
      /** What the engine said of the hostile peer. */
      said: (type: "peerBanned" | "peerDropped") =>
        end.events.some((e) => e.type === type && e.address === hostileAddress),
      fixture,
      peakRss,
      notes: hostile.notes as HostileNote[],
      totalLength: meta.totalLength,
      summaries,
    };
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
    assert.ok(run.said("peerBanned"), run.output);
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
  Deno.test(`a peer sending ${attack} is survived: the download completes, memory stays bounded, nothing of it counts as downloaded`, async () => {
    const run = await downloadUnderAttack(attack, ["--json"]);
    try {
      if (attack !== "silent") assert.ok(run.said("peerDropped"), run.output);
      // Only the honest seeder's blocks were taken, each once.
      assert.deepEqual(
        run.summaries.map((s) => s.bytesDown),
        [run.totalLength],
      );
    } finally {
      await run.fixture.remove();
    }
  });
}

Deno.test("a peer that sends a second, partial extended handshake keeps its extensions: ut_metadata, ut_pex and reqq are honoured", async () => {
  const run = await downloadUnderAttack("second-handshake", [], true);
  try {
    const notes = run.notes.map((n) => n.text);
    // BEP 9 msg_type 1: data, sent under the id of the first handshake.
    assert.ok(notes.includes("metadata 1"), notes.join(", "));
    assert.ok(notes.includes("pex"), notes.join(", "));
    const inFlight = notes.filter((n) => n.startsWith("in flight "))
      .map((n) => Number(n.slice("in flight ".length)));
    assert.ok(inFlight.length > 0, "the client asked it for blocks");
    console.log(
      `second-handshake: ${inFlight.length} requests, at most ${
        Math.max(...inFlight)
      } in flight`,
    );
    assert.ok(
      Math.max(...inFlight) <= SECOND_HANDSHAKE_REQQ,
      `requests in flight: ${inFlight.join(" ")}`,
    );
    assert.ok(!run.said("peerDropped"), run.output);
  } finally {
    await run.fixture.remove();
  }
});

Deno.test("a peer of another torrent is logged once and not dialled again", async () => {
  const fixture = await makeFixture({ kind: "single", size: MIB });
  const meta = parseMetainfo(await Deno.readFile(fixture.torrent));
  const stranger = startHostilePeer({
    infoHash: meta.infoHash,
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    attack: "other-torrent",
  });
  const client = new ClientProcess(
    downloadArgs(fixture, "--peer", `127.0.0.1:${stranger.port}`),
    { lifetimeSec: 60 },
  );
  try {
    await client.waitForEvent(
      (e) =>
        e.type === "peerOfOtherTorrent" &&
        e.address === `127.0.0.1:${stranger.port}`,
      15_000,
    );
    // Longer than the first redial wait (reconnectBaseSeconds, 15 s).
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    client.kill("SIGINT");
    const end = await client.wait();
    assert.equal(end.code, 130, end.output);
    assert.equal(stranger.connections, 1, "dialled once");
    const lines = end.output.split("\n").filter((l) =>
      l.includes(`peer 127.0.0.1:${stranger.port} serves another torrent`)
    );
    assert.equal(lines.length, 1, end.output);
    console.log(`other-torrent: ${stranger.connections} dial in 20 s`);
  } finally {
    client.kill("SIGKILL");
    await client.wait();
    await stranger.stop();
    await fixture.remove();
  }
});

Deno.test("a leecher that holds its upload slot without asking for anything gives it up to a waiting libtorrent leecher", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const meta = parseMetainfo(await Deno.readFile(fixture.torrent));
  const hog = startHostilePeer({
    infoHash: meta.infoHash,
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    attack: "slot-hog",
  });
  // One upload slot: whoever holds it keeps everyone else waiting.
  const config = await writeConfig(fixture, { uploadSlots: 1 });
  const port = freePort();
  const seeder = new ClientProcess([
    "seed",
    fixture.torrent,
    "--dir",
    fixture.dataDir,
    "--port",
    String(port),
    "--config",
    config,
    "--peer",
    `127.0.0.1:${hog.port}`,
  ], { lifetimeSec: 90 });
  try {
    const unchoked = await hog.waitForNote(/^unchoked$/, 20_000);
    const leecher = runLibtorrentLeecher({
      torrent: fixture.torrent,
      saveDir: fixture.downloadDir,
      connect: [`127.0.0.1:${port}`],
      timeoutSec: 50,
    });
    leecher.catch(() => {});
    const choked = await hog.waitForNote(/^choked$/, 35_000);
    const held = (choked.at - unchoked.at) / 1000;
    // About 20 s without a request, and before the 30 s optimistic unchoke.
    assert.ok(held >= 19 && held < 25, `the hog kept its slot for ${held} s`);
    console.log(
      `slot-hog: choked after ${held.toFixed(1)} s without a request`,
    );
    await leecher;
    const source = await sha256Tree(fixture.dataDir);
    const copy = await sha256Tree(fixture.downloadDir);
    for (const key of source.keys()) {
      if (key.startsWith(".btclient/")) source.delete(key);
    }
    assert.deepEqual(copy, source);
  } finally {
    seeder.kill("SIGINT");
    await seeder.wait();
    await hog.stop();
    await fixture.remove();
  }
});
