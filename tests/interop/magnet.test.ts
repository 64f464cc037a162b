// Magnet links without a tracker (BEP 9 over BEP 10): the info dictionary
// comes from a libtorrent seeder through ut_metadata, is saved as
// torrents/<info-hash>.torrent, and the next run uses it without a fetch. A
// peer that sends a wrong dictionary is banned and the right one is fetched
// from an honest peer. PEX (BEP 11): knowing only peer A, the client learns
// peer B from A and downloads from both.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { ClientProcess, runClient, sourcesOf } from "../helpers/client.ts";
import { freePort } from "../helpers/ports.ts";
import { startDelayProxy } from "../helpers/delay_proxy.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { startMetadataLiar } from "../helpers/metadata_liar.ts";
import { infoHashOf } from "../helpers/mktorrent.ts";
import { assertSameTree, makeFixture } from "../helpers/swarm_fixture.ts";
import { magnetUri } from "../../src/metainfo/magnet.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";

Deno.test("a magnet link downloads from libtorrent via ut_metadata; the saved .torrent spares the next fetch", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  try {
    const hex = await infoHashOf(fixture.torrent);
    const magnet = `${
      magnetUri(hex, fixture.name)
    }&x.pe=127.0.0.1:${seeder.port}`;
    const args = [
      "download",
      magnet,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
    ];
    const first = await runClient(args, fixture.root);
    assert.equal(first.code, 0, first.output);
    assert.ok(
      first.events.some((e) =>
        e.type === "metadata" && e.savedAs.startsWith("torrents/")
      ),
      first.output,
    );
    // The connection that gave the metadata goes on to give the data.
    assert.ok(
      first.events.some((e) => e.type === "started" && e.handedOver === 1),
      first.output,
    );
    await assertSameTree(fixture);
    const saved = `${fixture.root}/torrents/${hex}.torrent`;
    assert.equal(
      await infoHashOf(saved),
      hex,
      "saved .torrent has another info-hash",
    );

    // The second run reads the saved torrent and finds the data complete: no peer needed.
    await seeder.stop();
    const second = await runClient(args, fixture.root);
    assert.equal(second.code, 0, second.output);
    assert.match(second.output, /using the metadata saved in torrents\//);
    assert.ok(!second.events.some((e) => e.type === "metadataFetching"));
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("a wrong info dictionary is rejected by its hash and its sender banned; an honest peer's is used", async () => {
  const fixture = await makeFixture({
    kind: "single",
    size: 2 * 1024 * 1024 + 3,
  });
  const meta = parseMetainfo(fs.readFileSync(fixture.torrent));
  const liar = startMetadataLiar(meta.infoHash, meta.infoBytes);
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  // The honest seeder answers 1.5 s late, so the liar is asked first.
  const late = startDelayProxy(seeder.port, 1500);
  try {
    const magnet = magnetUri(meta.infoHashHex, null);
    const run = await runClient([
      "download",
      magnet,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
      "--peer",
      `127.0.0.1:${liar.port}`,
      "--peer",
      `127.0.0.1:${late.port}`,
    ], fixture.root);
    assert.equal(run.code, 0, run.output);
    assert.ok(liar.piecesServed > 0, "the liar was never asked");
    assert.ok(
      run.events.some((e) =>
        e.type === "peerBanned" && e.address === `127.0.0.1:${liar.port}` &&
        e.reason.startsWith("sent an info dictionary that does not match")
      ),
      run.output,
    );
    await assertSameTree(fixture);
  } finally {
    await late.stop();
    await liar.stop();
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("PEX: knowing only libtorrent peer A, the client learns peer B from A and downloads from both", async () => {
  const fixture = await makeFixture({ kind: "single", size: 8 * 1024 * 1024 });
  // B starts without the last MiB and fetches it from A, so A and B are
  // connected (two seeds would part at once) when A tells us of B.
  const partialDir = `${fixture.root}/partial`;
  await Deno.mkdir(partialDir);
  const half = fs.readFileSync(`${fixture.dataDir}/${fixture.name}`);
  half.fill(0, 7 * 1024 * 1024);
  fs.writeFileSync(`${partialDir}/${fixture.name}`, half);
  // A is slow, so most of the data is still to fetch when PEX names B.
  const a = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
    uploadLimit: 256 * 1024,
  });
  const b = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: partialDir,
    partial: true,
    connect: [`127.0.0.1:${a.port}`],
  });
  try {
    const run = await runClient([
      "download",
      fixture.torrent,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
      "--peer",
      `127.0.0.1:${a.port}`,
    ], fixture.root);
    assert.equal(run.code, 0, run.output);
    const sources = sourcesOf(run);
    assert.ok(
      sources.includes(`127.0.0.1:${a.port}`),
      `A sent nothing: ${sources}`,
    );
    assert.ok(
      sources.includes(`127.0.0.1:${b.port}`),
      `B (learnt by PEX) sent nothing: ${sources}`,
    );
    await assertSameTree(fixture);
  } finally {
    await a.stop();
    await b.stop();
    await fixture.remove();
  }
});

Deno.test("batch mode takes a .magnet file from torrents/; the next batch run uses the saved .torrent and no network", async () => {
  const fixture = await makeFixture({ kind: "single", size: 1024 * 1024 + 5 });
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  try {
    const hex = await infoHashOf(fixture.torrent);
    await Deno.mkdir(`${fixture.root}/torrents`);
    await Deno.writeTextFile(
      `${fixture.root}/torrents/film.magnet`,
      `# dropped here by a script\n${
        magnetUri(hex, "film")
      }&x.pe=127.0.0.1:${seeder.port}\n`,
    );
    const args = [
      "download",
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
      "--json",
    ];
    const first = await runClient(args, fixture.root);
    assert.equal(first.code, 0, first.output);
    await assertSameTree(fixture);
    assert.ok(fs.existsSync(`${fixture.root}/torrents/${hex}.torrent`));

    await seeder.stop();
    const second = await runClient(args, fixture.root);
    assert.equal(second.code, 0, second.output);
    assert.ok(!second.events.some((e) => e.type === "metadataFetching"));
    const summaries = second.output.split("\n").filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
    assert.deepEqual(summaries.map((s) => [s.infoHash, s.result]), [[
      hex,
      "complete",
    ]]);
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("a magnet link's metadata comes from a peer that dials us (no address to dial)", async () => {
  const fixture = await makeFixture({ kind: "single", size: 1024 * 1024 + 5 });
  const hex = await infoHashOf(fixture.torrent);
  const port = freePort();
  const client = new ClientProcess([
    "download",
    magnetUri(hex, null),
    "--dir",
    fixture.downloadDir,
    "--port",
    String(port),
  ], { cwd: fixture.root, lifetimeSec: 60 });
  await client.waitForEvent((e) => e.type === "metadataFetching", 20_000);
  // libtorrent dials us (again every 2 s while it has no peer).
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
    connect: [`127.0.0.1:${port}`],
  });
  try {
    const run = await client.wait();
    assert.equal(run.code, 0, run.output);
    assert.ok(run.events.some((e) => e.type === "metadata"), run.output);
    await assertSameTree(fixture);
  } finally {
    client.kill("SIGKILL");
    await client.wait();
    await seeder.stop();
    await fixture.remove();
  }
});
