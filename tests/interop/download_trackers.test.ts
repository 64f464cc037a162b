// Our client downloads from a real libtorrent seeder that it finds through a
// real opentracker, over HTTP (multi-file torrent) and over UDP (single-file).

import assert from "node:assert/strict";
import { runClient } from "../helpers/client.ts";
import { infoHashOf, makeTorrent } from "../helpers/mktorrent.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { startOpentracker } from "../helpers/opentracker.ts";
import {
  assertSameTree,
  downloadArgs,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";
import { announceToTracker } from "../../src/tracker/announce.ts";

for (const scheme of ["http", "udp"] as const) {
  Deno.test(`downloads a ${scheme === "http" ? "multi" : "single"}-file torrent from libtorrent found via opentracker over ${scheme.toUpperCase()}`, async () => {
    const fixture = await makeFixture({
      kind: scheme === "http" ? "multi" : "single",
      announce: [],
    });
    const hash = await infoHashOf(fixture.torrent);
    const tracker = await startOpentracker([hash]);
    try {
      // The same info dictionary with the tracker's real URL: the info-hash is unchanged.
      const url = scheme === "http" ? tracker.httpUrl : tracker.udpUrl;
      await Deno.remove(fixture.torrent);
      const payload = `${fixture.dataDir}/${fixture.name}`;
      await makeTorrent(payload, fixture.torrent, { announce: [url] });
      assert.equal(await infoHashOf(fixture.torrent), hash);

      const seeder = await startLibtorrentSeeder({
        torrent: fixture.torrent,
        dataDir: fixture.dataDir,
      });
      try {
        await waitUntilTrackerKnows(url, hash, seeder.port);
        const config = await writeConfig(fixture, {
          trackerTimeoutSeconds: 2,
          udpTrackerRetries: 1,
        });
        const run = await runClient([
          ...downloadArgs(fixture),
          "--config",
          config,
        ]);
        assert.equal(run.code, 0, run.output);
        assert(
          run.output.includes(`received from: 127.0.0.1:${seeder.port}`),
          run.output,
        );
        await assertSameTree(fixture);
      } finally {
        await seeder.stop();
      }
    } finally {
      await tracker.stop();
      await fixture.remove();
    }
  });
}

/** Announces as a probe peer until the tracker lists the seeder. */
async function waitUntilTrackerKnows(
  url: string,
  infoHashHex: string,
  port: number,
): Promise<void> {
  const infoHash = Uint8Array.from(
    infoHashHex.match(/../g)!.map((h) => parseInt(h, 16)),
  );
  const deadline = performance.now() + 15_000;
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
  while (performance.now() < deadline) {
    const reply = await probe("none");
    if (reply.peers.some((p) => p.port === port)) {
      // Withdraw the probe so that the client under test is not handed it.
      await probe("stopped");
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`tracker ${url} never listed the seeder on port ${port}`);
}
