// Global rate caps hold within 10% over at least 10 s: a download capped at
// 5 MiB/s from an unlimited libtorrent seeder, and an upload capped at
// 5 MiB/s to a libtorrent leecher.

import assert from "node:assert/strict";
import { ClientProcess } from "../helpers/client.ts";
import {
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../helpers/libtorrent.ts";
import { freePort } from "../helpers/ports.ts";
import {
  downloadArgs,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";

const MIB = 1024 * 1024;
const CAP = 5 * MIB;

/** (time, verified bytes) from the client's timestamped progress lines. */
function progressSamples(output: string): { t: number; bytes: number }[] {
  const samples = [];
  for (const line of output.split("\n")) {
    const m = /^(\S+Z) [\d.]+% ([\d.]+) (B|KiB|MiB)\//.exec(line);
    if (!m) continue;
    const scale = { B: 1, KiB: 1024, MiB: MIB }[m[3] as "B" | "KiB" | "MiB"];
    samples.push({ t: Date.parse(m[1]) / 1000, bytes: Number(m[2]) * scale });
  }
  return samples;
}

Deno.test("a 5 MiB/s download cap holds within 10% over 10 s", async () => {
  const fixture = await makeFixture({ kind: "single", size: 64 * MIB });
  const seeder = await startLibtorrentSeeder({
    torrent: fixture.torrent,
    dataDir: fixture.dataDir,
  });
  try {
    const config = await writeConfig(fixture, { logIntervalSeconds: 0.5 });
    const client = new ClientProcess(
      downloadArgs(
        fixture,
        "--config",
        config,
        "--download-limit",
        "5M",
        "--peer",
        `127.0.0.1:${seeder.port}`,
      ),
      { lifetimeSec: 60 },
    );
    const end = await client.wait();
    assert.equal(end.code, 0, end.output);
    const samples = progressSamples(end.output).filter((s) =>
      s.bytes > 0 && s.bytes < 64 * MIB
    );
    const first = samples[0];
    const last = samples.findLast((s) => s.t - first.t >= 10);
    assert.ok(last, `the download did not last 10 s:\n${end.output}`);
    const rate = (last.bytes - first.bytes) / (last.t - first.t);
    console.log(
      `download cap 5 MiB/s: measured ${(rate / MIB).toFixed(3)} MiB/s over ${
        (last.t - first.t).toFixed(1)
      } s`,
    );
    assert.ok(
      Math.abs(rate - CAP) <= CAP * 0.1,
      `measured ${(rate / MIB).toFixed(2)} MiB/s`,
    );
  } finally {
    await seeder.stop();
    await fixture.remove();
  }
});

Deno.test("a 5 MiB/s upload cap holds within 10% over 10 s", async () => {
  const fixture = await makeFixture({ kind: "single", size: 64 * MIB });
  const port = freePort();
  const seeder = new ClientProcess(
    [
      "seed",
      fixture.torrent,
      "--dir",
      fixture.dataDir,
      "--port",
      String(port),
      "--upload-limit",
      "5M",
    ],
    { lifetimeSec: 60 },
  );
  try {
    await seeder.waitForLine(/seeding .* on port \d+/, 20_000);
    const { seconds } = await runLibtorrentLeecher({
      torrent: fixture.torrent,
      saveDir: fixture.downloadDir,
      connect: [`127.0.0.1:${port}`],
      timeoutSec: 40,
    });
    // The leecher's time includes its start and connect (well under a second).
    const rate = (64 * MIB) / seconds;
    console.log(
      `upload cap 5 MiB/s: measured ${(rate / MIB).toFixed(3)} MiB/s over ${
        seconds.toFixed(1)
      } s`,
    );
    assert.ok(seconds >= 10, `took only ${seconds} s`);
    assert.ok(
      Math.abs(rate - CAP) <= CAP * 0.1,
      `measured ${(rate / MIB).toFixed(2)} MiB/s`,
    );
  } finally {
    seeder.kill("SIGINT");
    await seeder.wait();
    await fixture.remove();
  }
});
