// Unattended runs (cron): batch mode over the torrents folder with the
// completion hook and --json, a second run that does no network work, the
// download-folder lock, and SIGTERM / --max-minutes followed by a rerun.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import {
  ClientProcess,
  progressBetween,
  runClient,
} from "../helpers/client.ts";
import { startFakeSeeder } from "../helpers/fake_seeder.ts";
import { startHostilePeer } from "../helpers/hostile_peer.ts";
import { slowDownload } from "../helpers/slow_download.ts";
import {
  assertSameTree,
  downloadArgs,
  makeFixture,
} from "../helpers/swarm_fixture.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";

const MIB = 1024 * 1024;

Deno.test("batch: one run completes a done, a partial and a new torrent; the next run needs no peer", async () => {
  const root = await Deno.makeTempDir({ prefix: "btclient-batch-" });
  const fixtures = await Promise.all(
    ["done", "partial", "fresh"].map((name, i) =>
      makeFixture({
        kind: "single",
        size: (i + 1) * MIB + 17,
        name: `${name}.bin`,
      })
    ),
  );
  const seeders = [];
  try {
    await Deno.mkdir(`${root}/torrents`);
    await Deno.mkdir(`${root}/downloads`);
    const names = ["done", "partial", "fresh"];
    for (const [i, f] of fixtures.entries()) {
      await Deno.copyFile(f.torrent, `${root}/torrents/${names[i]}.torrent`);
      const meta = parseMetainfo(await Deno.readFile(f.torrent));
      seeders.push(
        startFakeSeeder({
          infoHash: meta.infoHash,
          file: `${f.dataDir}/${f.name}`,
          pieceLength: meta.pieceLength,
        }),
      );
    }
    // "done" is on disk already; "partial" has its first half.
    const [done, partial] = fixtures;
    await Deno.copyFile(
      `${done.dataDir}/${done.name}`,
      `${root}/downloads/${done.name}`,
    );
    const half = fs.readFileSync(`${partial.dataDir}/${partial.name}`).subarray(
      0,
      MIB,
    );
    fs.writeFileSync(`${root}/downloads/${partial.name}`, half);
    const hookLog = `${root}/hook.log`;
    fs.writeFileSync(
      `${root}/config.json`,
      JSON.stringify({
        torrentsDir: "torrents",
        downloadDir: "downloads",
        listenPort: 0,
        onComplete:
          `echo "$BTCLIENT_NAME $BTCLIENT_INFOHASH $BTCLIENT_PATH" >> ${hookLog}`,
      }),
    );
    const peerArgs = seeders.flatMap((s) => ["--peer", `127.0.0.1:${s.port}`]);

    const first = await runClient(["download", "--json", ...peerArgs], root);
    assert.equal(first.code, 0, first.output);
    const results = first.output.split("\n").filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
    assert.deepEqual(results.map((r) => r.result), [
      "complete",
      "complete",
      "complete",
    ]);
    assert.match(first.output, new RegExp(`config: ${root}/config.json`));
    for (const f of fixtures) {
      assert.deepEqual(
        fs.readFileSync(`${root}/downloads/${f.name}`),
        fs.readFileSync(`${f.dataDir}/${f.name}`),
      );
    }
    // The hook ran once for each torrent completed in this run, not for "done".
    const hookLines = fs.readFileSync(hookLog, "utf8").trim().split("\n")
      .sort();
    const expected = fixtures.slice(1).map((f) => {
      const meta = parseMetainfo(fs.readFileSync(f.torrent));
      return `${f.name} ${meta.infoHashHex} ${root}/downloads/${f.name}`;
    }).sort();
    assert.deepEqual(hookLines, expected);

    // Second run: everything verified by the resume files, so no peer is even dialled.
    const meta = parseMetainfo(await Deno.readFile(fixtures[0].torrent));
    const watcher = startHostilePeer({
      infoHash: meta.infoHash,
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      attack: "silent",
    });
    try {
      const started = performance.now();
      const second = await runClient([
        "download",
        "--peer",
        `127.0.0.1:${watcher.port}`,
      ], root);
      assert.equal(second.code, 0, second.output);
      assert.equal(watcher.connections, 0);
      assert.ok(performance.now() - started < 10_000);
      assert.equal(
        second.events.filter((e) => e.type === "checked" && e.fromResume)
          .length,
        3,
        second.output,
      );
    } finally {
      await watcher.stop();
    }
  } finally {
    for (const s of seeders) await s.stop();
    for (const f of fixtures) await f.remove();
    await Deno.remove(root, { recursive: true });
  }
});

/** A throttled download with its client arguments. */
async function slowRun() {
  const { fixture, meta, seeder } = await slowDownload(2 * MIB);
  const config = `${fixture.root}/config.json`;
  fs.writeFileSync(config, JSON.stringify({ logIntervalSeconds: 0.5 }));
  const args = downloadArgs(
    fixture,
    "--config",
    config,
    "--peer",
    `127.0.0.1:${seeder.port}`,
  );
  return { fixture, meta, seeder, args };
}

Deno.test("a second run on a locked download folder exits 4 at once; the first completes", async () => {
  const { fixture, seeder, args } = await slowRun();
  try {
    const first = new ClientProcess(args);
    await first.waitForEvent(progressBetween(0, 100), 20_000);
    const second = await runClient(args);
    assert.equal(second.code, 4, second.output);
    assert.match(
      second.output,
      /error: .* is in use by another btclient run \(pid \d+\)/,
    );
    const end = await first.wait();
    assert.equal(end.code, 0, end.output);
    await assertSameTree(fixture);
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

for (const how of ["SIGTERM", "--max-minutes"] as const) {
  Deno.test(`stopped by ${how} mid-download, a rerun finishes without fetching verified pieces again`, async () => {
    const { fixture, meta, seeder, args } = await slowRun();
    try {
      // --max-minutes 0.02 is 1.2 s: about a third of the download.
      const first = new ClientProcess(
        how === "SIGTERM" ? args : [...args, "--max-minutes", "0.02"],
      );
      if (how === "SIGTERM") {
        await first.waitForEvent(progressBetween(10, 50), 20_000);
        first.kill("SIGTERM");
      }
      const stopped = await first.wait();
      assert.equal(stopped.code, how === "SIGTERM" ? 143 : 3, stopped.output);
      const verified = stopped.events.find((e) => e.type === "stopped")
        ?.piecesDone;
      assert.ok(verified > 0 && verified < meta.pieceCount, stopped.output);
      seeder.requests.length = 0;
      const second = await runClient(args);
      assert.equal(second.code, 0, second.output);
      assert.ok(
        second.events.some((e) =>
          e.type === "checked" && e.fromResume && e.verified === verified
        ),
        second.output,
      );
      // Pieces are fetched in rarest-first order, so check by piece, not by count.
      const startedPieces = new Set(
        seeder.requests.map((r) => Number(r.split(":")[0])),
      );
      assert.ok(
        startedPieces.size <= meta.pieceCount - verified,
        `refetched: ${[...startedPieces]}`,
      );
      await assertSameTree(fixture);
    } finally {
      await seeder.stop();
      await fixture.remove();
    }
  });
}
