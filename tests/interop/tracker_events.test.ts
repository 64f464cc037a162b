// A download that completes tells its tracker started, completed and stopped,
// in that order (BEP 3), even when the client exits right after completing.

import assert from "node:assert/strict";
import { runClient } from "../helpers/client.ts";
import { startFakeSeeder } from "../helpers/fake_seeder.ts";
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
  const events: { event: string; left: string }[] = [];
  const abort = new AbortController();
  const listening = Promise.withResolvers<number>();
  const tracker = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: abort.signal,
    onListen: (a) => listening.resolve(a.port),
  }, (req) => {
    const q = new URL(req.url).searchParams;
    events.push({ event: q.get("event") ?? "none", left: q.get("left") ?? "" });
    const peers = new Uint8Array([
      127,
      0,
      0,
      1,
      seeder.port >> 8,
      seeder.port & 0xff,
    ]);
    const head = new TextEncoder().encode("d8:intervali60e5:peers6:");
    return new Response(new Uint8Array([...head, ...peers, 0x65]));
  });
  const url = `http://127.0.0.1:${await listening.promise}/announce`;
  const torrent = `${fixture.root}/tracked.torrent`;
  const original = await Deno.readFile(fixture.torrent);
  const announce = new TextEncoder().encode(`8:announce${url.length}:${url}`);
  await Deno.writeFile(
    torrent,
    new Uint8Array([0x64, ...announce, ...original.subarray(1)]),
  );
  try {
    const run = await runClient([
      "download",
      torrent,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
    ]);
    assert.equal(run.code, 0, run.output);
    assert.deepEqual(events.map((e) => e.event), [
      "started",
      "completed",
      "stopped",
    ]);
    assert.equal(events[1].left, "0");
  } finally {
    await seeder.stop();
    abort.abort();
    await tracker.finished;
    await fixture.remove();
  }
});
