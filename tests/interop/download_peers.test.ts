// Our client downloads from real seeders given with --peer: aria2c alone, and
// libtorrent plus aria2c at once (blocks must come from both).

import assert from "node:assert/strict";
import { startAria2Seeder } from "../helpers/aria2.ts";
import { runClient, sourcesOf } from "../helpers/client.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import {
  assertSameTree,
  downloadArgs,
  makeFixture,
} from "../helpers/swarm_fixture.ts";

Deno.test("downloads a multi-file torrent from an aria2c seeder", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const seeder = await startAria2Seeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  try {
    const run = await runClient([
      ...downloadArgs(fixture),
      "--peer",
      `127.0.0.1:${seeder.port}`,
    ]);
    assert.equal(run.code, 0, run.output);
    assert.match(
      run.output,
      new RegExp(`received from: 127\\.0\\.0\\.1:${seeder.port} `),
    );
    await assertSameTree(fixture);
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("downloads from libtorrent and aria2c at once, taking blocks from both", async () => {
  // Either seeder alone serves 24 MiB on loopback before the other's first
  // unchoke, so both are capped to make the transfer last a few seconds.
  const fixture = await makeFixture({
    kind: "single",
    size: 24 * 1024 * 1024 + 777,
  });
  const lt = await startLibtorrentSeeder({
    uploadLimit: 4 * 1024 * 1024,
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  const aria = await startAria2Seeder({
    uploadLimit: 4 * 1024 * 1024,
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  try {
    const run = await runClient([
      ...downloadArgs(fixture),
      "--peer",
      `127.0.0.1:${lt.port}`,
      "--peer",
      `127.0.0.1:${aria.port}`,
    ]);
    assert.equal(run.code, 0, run.output);
    const sources = sourcesOf(run);
    assert.ok(
      sources.includes(`127.0.0.1:${lt.port}`),
      `libtorrent sent nothing: ${sources}`,
    );
    assert.ok(
      sources.includes(`127.0.0.1:${aria.port}`),
      `aria2c sent nothing: ${sources}`,
    );
    await assertSameTree(fixture);
  } finally {
    await lt.stop();
    await aria.stop();
    await fixture.remove();
  }
});
