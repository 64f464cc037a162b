// BEP 12 tiers against hostile first tiers: our client must reach a real
// tracker (opentracker) in tier 2, and the libtorrent seeder it lists, in
// seconds, when tier 1 is dead (silent, noisy or malformed UDP trackers that
// BEP 15's schedule alone would wait on for 105 s each) or floods us with
// 10,914 peers none of which answers.

import assert from "node:assert/strict";
import { ClientProcess, sourcesOf } from "../helpers/client.ts";
import { startFakeTracker } from "../helpers/fake_tracker.ts";
import {
  type HostileUdpTracker,
  startHostileUdpTracker,
} from "../helpers/hostile_udp_tracker.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { infoHashOf, makeTorrent } from "../helpers/mktorrent.ts";
import { startOpentracker } from "../helpers/opentracker.ts";
import {
  assertSameTree,
  type Fixture,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";
import { announceToTracker } from "../../src/tracker/announce.ts";

Deno.test("a dead tier 1 (silent, noisy, malformed UDP trackers) delays the download by seconds, not minutes", async () => {
  const hostile: HostileUdpTracker[] = [];
  for (const mode of ["silent", "noise", "malformed"] as const) {
    hostile.push(await startHostileUdpTracker(mode));
  }
  await withSeededOpentracker(async (fixture, tracker, seederPort) => {
    // Tier 1 is the three hostile trackers, in the order the client shuffles them to.
    const tier1 = hostile.map((t) => t.url).join(",");
    const clientTorrent = await remakeTorrent(fixture, "client.torrent", [
      tier1,
      tracker.udpUrl,
    ]);
    // The defaults: HTTP timeout and first UDP wait 15 s, two UDP retransmits.
    const config = await writeConfig(fixture, {});
    const client = new ClientProcess(
      clientArgs(fixture, clientTorrent, config),
      { lifetimeSec: 120 },
    );
    const result = await client.wait();
    assert.equal(result.code, 0, result.output);
    // From the client's first event (its data checked) to the torrent's completion.
    const started = Date.parse(result.events[0].time);
    const done = result.events.find((e) => e.type === "complete");
    assert.ok(done, result.output);
    const seconds = (Date.parse(done.time) - started) / 1000;
    console.log(
      `tier 1 dead: complete ${seconds.toFixed(1)} s after the client started`,
    );
    assert.ok(seconds < 15, `took ${seconds} s:\n${result.output}`);
    assert.ok(
      sourcesOf(result).includes(`127.0.0.1:${seederPort}`),
      result.output,
    );
    // Every tier-1 tracker was asked; the malformed one failed at once.
    for (const t of hostile) assert.ok(t.received > 0, `${t.url} not asked`);
    assert.match(
      result.output,
      new RegExp(`tracker ${hostile[2].url}: reply to connect has action 7`),
    );
    await assertSameTree(fixture);
  });
  for (const t of hostile) await t.stop();
});

Deno.test("a tier-1 tracker flooding 10,914 unreachable peers: at most 320 are kept, and tier 2's seeder is found", async () => {
  await withSeededOpentracker(async (fixture, tracker, seederPort) => {
    // 10,913 loopback addresses on port 1, where nothing listens (every dial
    // is refused), with the real seeder in the middle: a random 320 of them
    // are kept, so the seeder is usually not among them.
    const flood = Array.from({ length: 10_913 }, (_, i) => ({
      host: `127.77.${i >> 8}.${i & 255}`,
      port: 1,
    }));
    flood.splice(5000, 0, { host: "127.0.0.1", port: seederPort });
    const flooder = await startFakeTracker(flood, 600);
    try {
      const clientTorrent = await remakeTorrent(fixture, "client.torrent", [
        flooder.url,
        tracker.httpUrl,
      ]);
      // maxHalfOpen 40: the swarm starts that many dials a second, so the
      // 320 refusals take some 8 s rather than 40.
      const config = await writeConfig(fixture, {
        maxHalfOpen: 40,
        logIntervalSeconds: 0.5,
      });
      const client = new ClientProcess(
        clientArgs(fixture, clientTorrent, config),
        { lifetimeSec: 120 },
      );
      const peakRss = watchPeakRss(client.pid);
      const result = await client.wait();
      peakRss.stop();
      assert.equal(result.code, 0, result.output);
      assert.match(
        result.output,
        new RegExp(
          `tracker ${flooder.url} listed 10914 peers for numwant 80; using 320 of them`,
        ),
      );
      // Known peers: 320 of the flood, plus what tier 2 lists: the seeder, us,
      // and the probe peer that checked opentracker's whitelist was loaded.
      const known = [...result.output.matchAll(/ peers \d+\/(\d+) /g)].map((
        m,
      ) => Number(m[1]));
      assert.ok(known.length > 0, result.output);
      assert.ok(Math.max(...known) <= 323, `known peers: ${known}`);
      assert.ok(
        result.output.includes(`received from: 127.0.0.1:${seederPort}`),
        result.output,
      );
      const viaTier2 = result.output.includes(
        `tracker ${flooder.url}: none of the 320 peers it gave could be reached; trying the next tracker`,
      );
      const lines = result.output.split("\n");
      const seconds = (stamp(lines.find((l) => / complete: /.test(l))!) -
        stamp(lines.find((l) => / config: /.test(l))!)) / 1000;
      console.log(
        `flood: complete ${
          seconds.toFixed(1)
        } s after the client started, seeder found ${
          viaTier2
            ? "via tier 2 once the flood's peers failed"
            : "in the sample"
        }; most peers known ${Math.max(...known)}; peak RSS ${peakRss.mib} MiB`,
      );
      await assertSameTree(fixture);
    } finally {
      await flooder.stop();
    }
  });
});

/**
 * A fixture whose payload a libtorrent seeder serves and announces to a real
 * opentracker; `body` gets the fixture, the tracker and the seeder's port once
 * the tracker lists the seeder.
 */
async function withSeededOpentracker(
  body: (
    fixture: Fixture,
    tracker: { httpUrl: string; udpUrl: string },
    seederPort: number,
  ) => Promise<void>,
): Promise<void> {
  const fixture = await makeFixture({ kind: "single", announce: [] });
  const hash = await infoHashOf(fixture.torrent);
  const tracker = await startOpentracker([hash]);
  try {
    const seederTorrent = await remakeTorrent(fixture, "seeder.torrent", [
      tracker.httpUrl,
    ]);
    assert.equal(await infoHashOf(seederTorrent), hash);
    const seeder = await startLibtorrentSeeder({
      torrent: seederTorrent,
      dataDir: fixture.dataDir,
    });
    try {
      await waitUntilTrackerLists(tracker.httpUrl, hash, seeder.port);
      await body(fixture, tracker, seeder.port);
    } finally {
      await seeder.stop();
    }
  } finally {
    await tracker.stop();
    await fixture.remove();
  }
}

/** The fixture's payload in a torrent with these tiers (the info-hash is unchanged). */
async function remakeTorrent(
  fixture: Fixture,
  name: string,
  tiers: string[],
): Promise<string> {
  return await makeTorrent(
    `${fixture.dataDir}/${fixture.name}`,
    `${fixture.root}/${name}`,
    { announce: tiers },
  );
}

/** Announces as a probe peer until the tracker lists the seeder, then withdraws the probe. */
async function waitUntilTrackerLists(
  url: string,
  infoHashHex: string,
  port: number,
): Promise<void> {
  const infoHash = Uint8Array.from(
    infoHashHex.match(/../g)!.map((h) => parseInt(h, 16)),
  );
  const probe = (event: "none" | "stopped") =>
    announceToTracker(url, {
      infoHash,
      peerId: new TextEncoder().encode("-PROBE0-000000000000"),
      port: 1,
      uploaded: 0,
      downloaded: 0,
      left: 0,
      event,
      numWant: 50,
      key: 1,
    }, { timeoutMs: 2000, udpMaxRetries: 1 });
  const deadline = performance.now() + 15_000;
  while (performance.now() < deadline) {
    if ((await probe("none")).peers.some((p) => p.port === port)) {
      await probe("stopped");
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`tracker ${url} never listed the seeder on port ${port}`);
}

/** Download `torrent` into the fixture's download folder, with this config file. */
function clientArgs(
  fixture: Fixture,
  torrent: string,
  config: string,
): string[] {
  const dir = fixture.downloadDir;
  return ["download", torrent, "--dir", dir, "--port", "0", "--config", config];
}

/** The process's peak resident memory (VmHWM), read every 200 ms until stop(). */
function watchPeakRss(pid: number): { mib: number; stop(): void } {
  const read = () => {
    try {
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      const kib = Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1] ?? 0);
      peak.mib = Math.max(peak.mib, Math.round(kib / 1024));
    } catch { /* it has exited */ }
  };
  const timer = setInterval(read, 200);
  const peak = { mib: 0, stop: () => clearInterval(timer) };
  return peak;
}

/** Milliseconds of a log line's ISO timestamp (lines are stamped when not on a terminal). */
function stamp(line: string): number {
  return Date.parse(line.split(" ")[0]);
}
