// The engine's API without the CLI: a torrent paused mid-download keeps its
// data and stops talking, resumes and completes from a libtorrent seeder;
// a queued torrent removed before its turn ends partial; events arrive typed.

import assert from "node:assert/strict";
import { parseConfig } from "../../src/config.ts";
import { Engine, type EngineEvent } from "../../src/session/mod.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { assertSameTree, makeFixture } from "../helpers/swarm_fixture.ts";

Deno.test("engine: pause mid-download, resume, complete; remove a queued torrent", async () => {
  const fixture = await makeFixture({ kind: "single", size: 3_000_000 });
  const other = await makeFixture({
    kind: "single",
    size: 100_000,
    name: "other.bin",
  });
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
    uploadLimit: 400_000,
  });
  const events: EngineEvent[] = [];
  const engine = new Engine({
    config: parseConfig(
      JSON.stringify({
        downloadDir: fixture.downloadDir,
        listenPort: 0,
        dht: false,
        lsd: false,
        portMapping: "off",
        maxActiveDownloads: 1,
      }),
      "test",
    ),
    peers: [{ host: "127.0.0.1", port: seeder.port }],
    seedCommand: false,
    onEvent: (e) => events.push(e),
  });
  try {
    await engine.add(fixture.torrent);
    await engine.add(other.torrent);
    const infoHash = (name: string) => {
      for (const e of events) {
        if (e.type === "checked" && e.torrent.name === name) {
          return e.torrent.infoHash;
        }
      }
      throw new Error(`${name} was not checked`);
    };
    const running = engine.run();
    await until(() => engine.stats().bytesDone > 0);
    assert.equal(engine.remove(infoHash("other.bin")), true);
    assert.equal(engine.pause(infoHash("single.bin")), true);
    await until(() =>
      events.some((e) => e.type === "stopped" && e.stoppedBy === "paused")
    );
    const paused = events.find((e) =>
      e.type === "stopped" && e.stoppedBy === "paused"
    )!;
    assert.ok(paused.type === "stopped");
    assert.ok(paused.piecesDone < paused.pieceCount);
    assert.equal(engine.stats().peers, 0, "a paused torrent has no peers");
    assert.equal(engine.resume(infoHash("single.bin")), true);
    const summaries = await running;
    const byName = new Map(summaries.map((s) => [s.name, s]));
    assert.equal(byName.get("single.bin")?.result, "complete");
    assert.equal(byName.get("other.bin")?.result, "partial");
    assert.equal(summaries.length, 2);
    assert.ok(events.some((e) => e.type === "complete"));
    // The resumed run checked the data again and kept what it had.
    const checks = events.filter((e) =>
      e.type === "checked" && e.torrent.name === "single.bin"
    );
    assert.equal(checks.length, 2);
    assert.ok(checks[1].type === "checked" && checks[1].verified > 0);
    await assertSameTree(fixture);
  } finally {
    await seeder.stop();
    await fixture.remove();
    await other.remove();
  }
});

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 600 && !done(); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(done(), "timed out");
}
