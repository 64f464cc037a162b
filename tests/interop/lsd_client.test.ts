// Our client (main.ts, a process of its own) finds a libtorrent seeder
// through Local Service Discovery (BEP 14) alone: a bare magnet link, no
// trackers, DHT or port mapping, LSD on. It hears the seeder's announce on
// 239.192.152.143:6771, fetches the info dictionary (ut_metadata) from it and
// downloads the data.
//
// The network is NatLab's LAN host, in namespaces this test creates: a veth
// with 192.168.77.2/24 and a default route via the router. Both programs run
// on that host and neither pins an interface for LSD, as a user's would not.
// What the unpinned path needs (checked with a bare veth): an address on an
// interface other than lo and a route that covers the group, the default
// route or 224.0.0.0/4. The kernel then picks that interface for the join
// and the sends, so announces carry its address, which is inside the network
// libtorrent takes announces from; multicast loopback hands each one to the
// other program on the same host. Without such a route the join fails
// (EINVAL) and the client runs without LSD; a namespace with only lo works
// only when both sides pin 127.0.0.1 (lsd.test.ts). The MULTICAST flag on
// the veth is not needed. Nothing leaves the LAN host: Linux forwards no
// multicast without a multicast routing daemon, and the namespaces have no
// link to the host's network.

import assert from "node:assert/strict";
import { ClientProcess } from "../helpers/client.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import { infoHashOf } from "../helpers/mktorrent.ts";
import { LAN_HOST, NatLab } from "../helpers/nat_lab.ts";
import {
  assertSameTree,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";

const STEP_MS = 20_000;

Deno.test("LSD: a bare magnet link finds a libtorrent seeder on the LAN, fetches the metadata and downloads", async () => {
  const fixture = await makeFixture({ kind: "single", size: 1024 * 1024 + 7 });
  const lab = await NatLab.create();
  let client: ClientProcess | null = null;
  let seeder: Awaited<ReturnType<typeof startLibtorrentSeeder>> | null = null;
  try {
    const hex = await infoHashOf(fixture.torrent);
    const config = await writeConfig(fixture, {
      dht: false,
      lsd: true,
      portMapping: "off",
    });
    client = new ClientProcess([
      "download",
      `magnet:?xt=urn:btih:${hex}`,
      "--dir",
      fixture.downloadDir,
      "--port",
      "0",
      "--config",
      config,
    ], { cwd: fixture.root, lifetimeSec: 40, network: true, netns: lab.lan });
    // Each side announces when its torrent starts, then every 5 minutes:
    // the seeder starts second so that our client is the one that hears an
    // announce and dials (libtorrent dialling us would test the other way).
    await client.waitForEvent((e) => e.type === "metadataFetching", STEP_MS);
    seeder = await startLibtorrentSeeder({
      torrent: fixture.torrent,
      dataDir: fixture.dataDir,
      netns: lab.lan,
      interface: LAN_HOST,
      lsd: true,
      lifetimeSec: 40,
    });
    await client.waitForEvent((e) => e.type === "metadata", STEP_MS);
    const run = await client.wait();
    assert.equal(run.code, 0, run.output);
    // The download announces again as it starts, and libtorrent may dial us
    // on hearing it: the data may come over that connection, from another
    // port, so only the seeder's host is certain.
    assert.match(
      run.output,
      new RegExp(`received from: ${LAN_HOST.replaceAll(".", "\\.")}:\\d+ `),
    );
    await assertSameTree(fixture);
  } finally {
    client?.kill("SIGKILL");
    await client?.wait();
    await seeder?.stop();
    await lab.close();
    await fixture.remove();
  }
});
