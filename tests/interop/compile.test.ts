// `deno task compile` makes a standalone binary of the client. Deno needs a
// denort runtime for that, which it downloads unless DENORT_BIN names one;
// with neither, the test is skipped with its reason. Where it runs, the
// binary is copied with a config file into an empty folder and downloads
// from a real libtorrent seeder there, as a user's cron job would.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { makeFixture } from "../helpers/swarm_fixture.ts";
import { VERSION } from "../../src/version.ts";

const denort = Deno.env.get("DENORT_BIN");
const ROOT = new URL("../..", import.meta.url).pathname;

if (!denort) {
  console.log(
    "compile test skipped: no denort runtime (set DENORT_BIN to one; none can be downloaded here)",
  );
}

Deno.test({
  name:
    "the compiled binary, copied with a config into an empty folder, downloads from libtorrent",
  ignore: !denort,
  async fn() {
    const build = await Deno.makeTempDir({ prefix: "btclient-compile-" });
    const fixture = await makeFixture({ kind: "multi" });
    const seeder = await startLibtorrentSeeder({
      torrent: fixture.torrent,
      dataDir: fixture.dataDir,
    });
    const elsewhere = await Deno.makeTempDir({ prefix: "btclient-copied-" });
    try {
      const compiled = await new Deno.Command("deno", {
        args: ["task", "compile", "--output", `${build}/btclient`],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(compiled.code, 0, new TextDecoder().decode(compiled.stderr));
      // Copy the binary and its config beside it; run from another folder.
      fs.copyFileSync(`${build}/btclient`, `${elsewhere}/btclient`);
      fs.chmodSync(`${elsewhere}/btclient`, 0o755);
      fs.writeFileSync(
        `${elsewhere}/config.json`,
        JSON.stringify({
          downloadDir: `${elsewhere}/dl`,
          listenPort: 0,
          // loopback only: no DHT routers, multicast or router traffic
          dht: false,
          lsd: false,
          portMapping: "off",
        }),
      );
      const version = await new Deno.Command(`${elsewhere}/btclient`, {
        args: ["--version"],
        stdin: "null",
        stdout: "piped",
        signal: AbortSignal.timeout(10_000),
      }).output();
      const text = new TextDecoder().decode(version.stdout).trim();
      // The full deno CLI used as the runtime would print "deno 2..." or start a REPL.
      assert.doesNotMatch(text, /^deno \d/);
      assert.equal(text, `btclient ${VERSION}`);
      const run = await new Deno.Command(`${elsewhere}/btclient`, {
        args: [
          "download",
          fixture.torrent,
          "--peer",
          `127.0.0.1:${seeder.port}`,
        ],
        cwd: "/",
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const output = new TextDecoder().decode(run.stdout) +
        new TextDecoder().decode(run.stderr);
      assert.equal(run.code, 0, output);
      assert.match(output, new RegExp(`config: ${elsewhere}/config.json`));
      assert.deepEqual(
        fs.readFileSync(`${elsewhere}/dl/multi/a.bin`),
        fs.readFileSync(`${fixture.dataDir}/multi/a.bin`),
      );
    } finally {
      await seeder.stop();
      await fixture.remove();
      await Deno.remove(build, { recursive: true });
      await Deno.remove(elsewhere, { recursive: true });
    }
  },
});
