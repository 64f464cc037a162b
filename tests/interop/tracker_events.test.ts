// A download that completes tells its tracker started, completed and stopped,
// in that order (BEP 3), even when the client exits right after completing.

import assert from "node:assert/strict";
import { runClient } from "../helpers/client.ts";
import { startFakeSeeder } from "../helpers/fake_seeder.ts";
import { withAnnounce } from "../helpers/announce_url.ts";
import { startFakeTracker } from "../helpers/fake_tracker.ts";
import { makeFixture } from "../helpers/swarm_fixture.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";

Deno.test("a completed download announces started, completed, stopped", async () => {
  const fixture = await makeFixture({ kind: "single", size: 1024 * 1024 + 9 });
  const meta = parseMetainfo(await Deno.readFile(fixture.torrent));
  const seeder = startFakeSeeder({
    infoHash: meta.infoHash,
    file: `${fixture.dataDir}/${fixture.name}`,
    pieceLength: meta.pieceLength,
  });
  const tracker = await startFakeTracker([{
    host: "127.0.0.1",
    port: seeder.port,
  }], 60);
  try {
    const torrent = await withAnnounce(
      fixture.torrent,
      tracker.url,
      `${fixture.root}/tracked.torrent`,
    );
    const run = await runClient([
      "download",
      torrent,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
    ]);
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(tracker.announces.map((a) => a.event), [
      "started",
      "completed",
      "stopped",
    ]);
    assert.equal(tracker.announces[1].left, "0");
  } finally {
    await seeder.stop();
    await tracker.stop();
    await fixture.remove();
  }
});
