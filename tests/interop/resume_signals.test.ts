// Hash failures, SIGKILL and SIGINT mid-download: the data ends up correct
// and a verified piece is never fetched twice.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import {
  ClientProcess,
  progressBetween,
  runClient,
} from "../helpers/client.ts";
import { startFakeSeeder } from "../helpers/fake_seeder.ts";
import { slowDownload } from "../helpers/slow_download.ts";
import { withAnnounce } from "../helpers/announce_url.ts";
import { startFakeTracker } from "../helpers/fake_tracker.ts";
import {
  assertSameTree,
  downloadArgs,
  type Fixture,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";

const PIECE = 256 * 1024;

async function loadMeta(fixture: Fixture) {
  return parseMetainfo(await Deno.readFile(fixture.torrent));
}

/** Pieces of the partial download whose bytes equal the source's (computed here, not by the client). */
function piecesOnDisk(fixture: Fixture, pieceCount: number): Set<number> {
  const copy = `${fixture.downloadDir}/${fixture.name}`;
  const good = new Set<number>();
  if (!fs.existsSync(copy)) return good;
  const source = fs.readFileSync(`${fixture.dataDir}/${fixture.name}`);
  const partial = fs.readFileSync(copy);
  for (let i = 0; i < pieceCount; i++) {
    const want = source.subarray(i * PIECE, (i + 1) * PIECE);
    const got = partial.subarray(i * PIECE, (i + 1) * PIECE);
    if (got.length === want.length && sha1(got) === sha1(want)) good.add(i);
  }
  return good;
}

function sha1(b: Uint8Array): string {
  return createHash("sha1").update(b).digest("hex");
}

function requestedPieces(requests: string[]): Set<number> {
  return new Set(requests.map((r) => Number(r.split(":")[0])));
}

Deno.test("a piece that fails its hash check is fetched again and the data is right", async () => {
  const fixture = await makeFixture({
    kind: "single",
    size: 2 * 1024 * 1024 + 3,
  });
  const meta = await loadMeta(fixture);
  // Piece 3's first block is corrupted the first time it is served.
  const seeder = startFakeSeeder({
    infoHash: meta.infoHash,
    file: `${fixture.dataDir}/${fixture.name}`,
    pieceLength: meta.pieceLength,
    corrupt: (piece, begin, times) => piece === 3 && begin === 0 && times === 0,
  });
  try {
    const run = await runClient([
      ...downloadArgs(fixture),
      "--peer",
      `127.0.0.1:${seeder.port}`,
    ]);
    assert.equal(run.code, 0, run.output);
    assert.ok(
      run.events.some((e) => e.type === "pieceFailed" && e.piece === 3),
      run.output,
    );
    assert.equal(seeder.requests.filter((r) => r === "3:0").length, 2);
    await assertSameTree(fixture);
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("killed with SIGKILL mid-download, a rerun finishes without fetching verified pieces again", async () => {
  const { fixture, meta, seeder: slow } = await slowDownload(3 * 2 ** 20);
  const file = `${fixture.dataDir}/${fixture.name}`;
  const config = await writeConfig(fixture, { logIntervalSeconds: 0.5 });
  const args = downloadArgs(fixture, "--config", config);
  try {
    const first = new ClientProcess([
      ...args,
      "--peer",
      `127.0.0.1:${slow.port}`,
    ]);
    await first.waitForEvent(progressBetween(20, 50), 30_000);
    first.kill("SIGKILL");
    const killed = await first.wait();
    assert.equal(killed.signal, "SIGKILL");
  } finally {
    await slow.stop();
  }
  const verified = piecesOnDisk(fixture, meta.pieceCount);
  assert.ok(
    verified.size > 0 && verified.size < meta.pieceCount,
    `verified ${verified.size} pieces`,
  );

  const fast = startFakeSeeder({
    infoHash: meta.infoHash,
    file,
    pieceLength: PIECE,
  });
  try {
    const second = await runClient([
      ...args,
      "--peer",
      `127.0.0.1:${fast.port}`,
    ]);
    assert.equal(second.code, 0, second.output);
    const refetched = [...requestedPieces(fast.requests)].filter((p) =>
      verified.has(p)
    );
    assert.deepEqual(refetched, [], "verified pieces were requested again");
    await assertSameTree(fixture);
  } finally {
    await fast.stop();
    await fixture.remove();
  }
});

Deno.test("SIGINT stops cleanly: exit 130, tracker told stopped, resume file used by the next run", async () => {
  const { fixture, meta, seeder: slow } = await slowDownload(3 * 2 ** 20);
  const tracker = await startFakeTracker([{
    host: "127.0.0.1",
    port: slow.port,
  }], 60);
  const withTracker = await withAnnounce(
    fixture.torrent,
    tracker.url,
    `${fixture.root}/tracked.torrent`,
  );
  const config = await writeConfig(fixture, { logIntervalSeconds: 0.5 });
  const args = [
    "download",
    withTracker,
    "--dir",
    fixture.downloadDir,
    "--port",
    "0",
    "--config",
    config,
  ];
  try {
    const first = new ClientProcess(args);
    await first.waitForEvent(progressBetween(10, 40), 30_000);
    first.kill("SIGINT");
    const stopped = await first.wait();
    assert.equal(stopped.code, 130, stopped.output);
    const end = stopped.events.find((e) => e.type === "stopped");
    assert.ok(end && end.pieceCount === 33 && end.piecesDone < 33);
    assert.deepEqual(tracker.announces.map((a) => a.event), [
      "started",
      "stopped",
    ]);
    const verified = piecesOnDisk(fixture, meta.pieceCount);
    assert.ok(verified.size > 0, "nothing was saved before the stop");

    slow.requests.length = 0;
    const second = new ClientProcess(args);
    await second.waitForEvent(
      (e) => e.type === "checked" && e.fromResume,
      10_000,
    );
    const done = await second.wait();
    assert.equal(done.code, 0, done.output);
    const refetched = [...requestedPieces(slow.requests)].filter((p) =>
      verified.has(p)
    );
    assert.deepEqual(refetched, [], "verified pieces were requested again");
    await assertSameTree(fixture);
  } finally {
    await slow.stop();
    await tracker.stop();
    await fixture.remove();
  }
});
