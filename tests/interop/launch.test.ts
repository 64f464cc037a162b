// The ways README says to start the client, each against a real libtorrent
// seeder with no Deno on PATH: the ./btclient launcher (which runs the
// download task) called from another folder, finding the torrent in
// torrents/ there, and the command `deno task install` puts on PATH, run
// from a cron-like bare environment.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { assertSameTree, makeFixture } from "../helpers/swarm_fixture.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
/** Loopback only, as every test (see tests/helpers/client.ts). */
const ISOLATED = ["--no-dht", "--no-lsd", "--no-port-mapping", "--port", "0"];
/** What cron gives a job: no Deno on PATH, nothing else set. */
const BARE_PATH = "/usr/bin:/bin";

async function run(
  cmd: string,
  args: string[],
  cwd: string,
  home: string,
): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command(cmd, {
    args,
    cwd,
    clearEnv: true,
    env: { PATH: BARE_PATH, HOME: home, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(90_000),
  }).output();
  const text = new TextDecoder();
  return {
    code: result.code,
    output: text.decode(result.stdout) + text.decode(result.stderr),
  };
}

Deno.test("./btclient download movie1.torrent, called from a folder holding torrents/movie1.torrent, downloads there", async () => {
  const fixture = await makeFixture({ kind: "multi" });
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  try {
    const work = fixture.downloadDir.replace(/download$/, "work");
    fs.mkdirSync(`${work}/torrents`, { recursive: true });
    fs.copyFileSync(fixture.torrent, `${work}/torrents/movie1.torrent`);
    const { code, output } = await run(
      `${ROOT}btclient`,
      [
        "download",
        "movie1.torrent",
        "--peer",
        `127.0.0.1:${seeder.port}`,
        ...ISOLATED,
      ],
      work,
      work,
    );
    assert.equal(code, 0, output);
    // The default download folder is the caller's ./downloads, not the checkout's.
    fs.renameSync(`${work}/downloads`, fixture.downloadDir);
    await assertSameTree(fixture);
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("the command `deno task install` writes runs offline from a bare cron environment", async () => {
  const fixture = await makeFixture({ kind: "single", size: 2_000_003 });
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  const home = await Deno.makeTempDir({ prefix: "btclient-install-" });
  try {
    const installed = await new Deno.Command(Deno.execPath(), {
      args: ["task", "install", "--root", home],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(
      installed.code,
      0,
      new TextDecoder().decode(installed.stderr),
    );
    const { code, output } = await run(
      `${home}/bin/btclient`,
      [
        "download",
        fixture.torrent,
        "--dir",
        fixture.downloadDir,
        "--peer",
        `127.0.0.1:${seeder.port}`,
        ...ISOLATED,
      ],
      "/",
      home,
    );
    assert.equal(code, 0, output);
    await assertSameTree(fixture);
  } finally {
    await seeder.stop();
    await fixture.remove();
    await Deno.remove(home, { recursive: true });
  }
});
