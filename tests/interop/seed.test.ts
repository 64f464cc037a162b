// Our client uploads: real leechers (libtorrent, aria2c) download a
// multi-file torrent from our seeder alone, and in a three-way swarm an
// aria2c leecher that can reach only us gets pieces from us while we are
// still downloading them from libtorrent.

import assert from "node:assert/strict";
import { runAria2Leecher } from "../helpers/aria2.ts";
import { withAnnounce } from "../helpers/announce_url.ts";
import { ClientProcess, progressBetween } from "../helpers/client.ts";
import { startFakeTracker } from "../helpers/fake_tracker.ts";
import {
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../helpers/libtorrent.ts";
import { sha256Tree } from "../helpers/payload.ts";
import { freePort } from "../helpers/ports.ts";
import {
  downloadArgs,
  type Fixture,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";

/** Starts `seed` on the fixture's own data and waits until it is seeding. */
async function startOurSeeder(
  fixture: Fixture,
  port: number,
  extra: string[] = [],
) {
  const seeder = new ClientProcess([
    "seed",
    fixture.torrent,
    "--dir",
    fixture.dataDir,
    "--port",
    String(port),
    ...extra,
  ]);
  await seeder.waitForLine(/seeding .* on port \d+/, 20_000);
  return seeder;
}

async function assertSameAsSource(
  fixture: Fixture,
  dir: string,
): Promise<void> {
  const source = await sha256Tree(fixture.dataDir);
  const copy = await sha256Tree(dir);
  for (const key of [...source.keys()]) {
    if (key.startsWith(".btclient/")) source.delete(key);
  }
  for (const key of [...copy.keys()]) {
    if (key.startsWith(".btclient/")) copy.delete(key);
  }
  assert.deepEqual(copy, source);
}

Deno.test("a libtorrent leecher downloads a multi-file torrent from our seeder alone", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const port = freePort();
  const seeder = await startOurSeeder(fixture, port);
  try {
    await runLibtorrentLeecher({
      torrent: fixture.torrent,
      saveDir: fixture.downloadDir,
      connect: [`127.0.0.1:${port}`],
      timeoutSec: 60,
      encryption: "enabled",
    });
    await assertSameAsSource(fixture, fixture.downloadDir);
  } finally {
    seeder.kill("SIGINT");
    const end = await seeder.wait();
    assert.equal(end.code, 130, end.output);
    assert.match(end.output, /complete: multi, 0 B down, 3\.\d MiB up/);
    await fixture.remove();
  }
});

Deno.test("an aria2c leecher downloads a multi-file torrent from our seeder alone", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const port = freePort();
  const tracker = await startFakeTracker([{ host: "127.0.0.1", port }], 60);
  const seeder = await startOurSeeder(fixture, port);
  try {
    await runAria2Leecher({
      torrent: fixture.torrent,
      saveDir: fixture.downloadDir,
      tracker: tracker.url,
      timeoutSec: 60,
    });
    await assertSameAsSource(fixture, fixture.downloadDir);
  } finally {
    seeder.kill("SIGINT");
    await seeder.wait();
    await tracker.stop();
    await fixture.remove();
  }
});

Deno.test("three-way swarm: aria2c gets pieces from us while we download them from libtorrent", async () => {
  // 12 MiB from a seeder capped at 2 MiB/s: we download for about 6 s.
  const fixture = await makeFixture({
    kind: "single",
    size: 12 * 1024 * 1024 + 5,
  });
  const lt = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
    uploadLimit: 2 * 1024 * 1024,
  });
  const ourPort = freePort();
  // aria2c can reach only us: the tracker it asks lists our client alone.
  const tracker = await startFakeTracker(
    [{ host: "127.0.0.1", port: ourPort }],
    60,
  );
  // No PEX: we would tell aria2c of libtorrent, and our ratio goal would
  // wait for uploads aria2c no longer needs from us.
  const config = await writeConfig(fixture, {
    logIntervalSeconds: 0.5,
    seedRatio: 1,
    pex: false,
  });
  const ours = new ClientProcess([
    ...downloadArgs(
      fixture,
      "--config",
      config,
      "--peer",
      `127.0.0.1:${lt.port}`,
    ),
  ].map((a) => a === "0" ? String(ourPort) : a));
  const ariaDir = `${fixture.root}/aria2`;
  try {
    await ours.waitForEvent(progressBetween(10, 40), 20_000);
    await runAria2Leecher({
      torrent: fixture.torrent,
      saveDir: ariaDir,
      tracker: tracker.url,
      timeoutSec: 60,
    });
    await assertSameAsSource(fixture, ariaDir);
    // Uploading while downloading: a progress line below 100% with data going up.
    const during = ours.events.filter((e) =>
      progressBetween(0, 100)(e) && e.uploadRate > 0
    );
    assert.ok(
      during.length > 0,
      `no upload before our download completed:\n${ours.output}`,
    );
    const end = await ours.wait();
    assert.equal(end.code, 0, end.output);
  } finally {
    ours.kill("SIGINT");
    await ours.wait();
    await lt.stop();
    await tracker.stop();
    await fixture.remove();
  }
});

Deno.test("seed stops by itself once its time goal is reached, telling its tracker", async () => {
  const fixture = await makeFixture({ kind: "single", size: 300_000 });
  const tracker = await startFakeTracker([], 60);
  const torrent = await withAnnounce(
    fixture.torrent,
    tracker.url,
    `${fixture.root}/tracked.torrent`,
  );
  try {
    const started = performance.now();
    // 0.05 minutes: 3 s of seeding.
    const run = await new ClientProcess([
      "seed",
      torrent,
      "--dir",
      fixture.dataDir,
      "--port",
      "0",
      "--seed-minutes",
      "0.05",
    ]).wait();
    const seconds = (performance.now() - started) / 1000;
    assert.equal(run.code, 0, run.output);
    assert.ok(
      run.events.some((e) =>
        e.type === "seeding" && e.torrent.name === "single.bin" &&
        e.goal === " until 0.05 min"
      ),
      run.output,
    );
    assert.ok(seconds >= 3 && seconds < 10, `seeded for ${seconds} s`);
    assert.deepEqual(tracker.announces.map((a) => a.event), [
      "started",
      "stopped",
    ]);
  } finally {
    await tracker.stop();
    await fixture.remove();
  }
});
