// Proves the real-software helpers work together: payload -> mktorrent -> libtorrent seeder
// -> libtorrent leecher (dialling the seeder directly) -> aria2c seeder of that copy -> aria2c
// leecher (finding it through the fake tracker) -> identical sha256 trees.

import assert from "node:assert/strict";
import { runAria2Leecher, startAria2Seeder } from "../helpers/aria2.ts";
import { startFakeTracker } from "../helpers/fake_tracker.ts";
import {
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../helpers/libtorrent.ts";
import { infoHashOf, makeTorrent } from "../helpers/mktorrent.ts";
import {
  makeMultiFile,
  MULTI_FILE_LAYOUT,
  sha256Tree,
} from "../helpers/payload.ts";

Deno.test("helpers: libtorrent and aria2c pass a mktorrent multi-file torrent along", async () => {
  const workDir = await Deno.makeTempDir({ prefix: "helpers-selftest-" });
  const tracker = await startFakeTracker();
  try {
    const source = await makeMultiFile(`${workDir}/seed`, "payload");
    const torrent = await makeTorrent(source, `${workDir}/payload.torrent`, {
      announce: [tracker.url],
    });
    assert.match(await infoHashOf(torrent), /^[0-9a-f]{40}$/);

    const seeder = await startLibtorrentSeeder({
      torrent,
      dataDir: `${workDir}/seed`,
      lifetimeSec: 60,
    });
    try {
      tracker.peers.push({ host: "127.0.0.1", port: seeder.port });
      const { seconds } = await runLibtorrentLeecher({
        torrent,
        saveDir: `${workDir}/libtorrent`,
        connect: [`127.0.0.1:${seeder.port}`],
        timeoutSec: 30,
      });
      assert.ok(seconds > 0 && seconds < 30);
    } finally {
      await seeder.stop();
    }

    const expected = await sha256Tree(source);
    assert.deepEqual(
      [...expected.keys()].sort(),
      MULTI_FILE_LAYOUT.map((f) => f.path).sort(),
    );
    assert.deepEqual(
      await sha256Tree(`${workDir}/libtorrent/payload`),
      expected,
    );

    const aria2Seeder = await startAria2Seeder({
      torrent,
      dataDir: `${workDir}/libtorrent`,
      lifetimeSec: 60,
    });
    try {
      tracker.peers.splice(0, Infinity, {
        host: "127.0.0.1",
        port: aria2Seeder.port,
      });
      await runAria2Leecher({
        torrent,
        saveDir: `${workDir}/aria2`,
        timeoutSec: 30,
      });
    } finally {
      await aria2Seeder.stop();
    }
    assert.deepEqual(await sha256Tree(`${workDir}/aria2/payload`), expected);
  } finally {
    await tracker.stop();
    await Deno.remove(workDir, { recursive: true });
  }
});
