// Bounded memory under a DHT flood (issue 10): our client, seeding with the DHT on a
// loopback-only config, takes 20,000 KRPC datagrams at 1,000 a second from 200 source
// addresses, malformed and well-formed-but-hostile alike. Its peak RSS (VmHWM) may grow
// only a little over the baseline taken before the flood, and afterwards it still
// answers a ping from a fresh address.
//
// Measured here: +36 to +39 MiB when every datagram was read into a 64 KiB buffer,
// +16 to +17 MiB since (a bare node:dgram socket dropping everything grows some 15 MiB
// under the same flood: that much is the platform's).

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { ClientProcess } from "../helpers/client.ts";
import { floodKrpc } from "../helpers/krpc_flood.ts";
import { makeFixture, writeConfig } from "../helpers/swarm_fixture.ts";
import { decodeKrpc, encodeQuery } from "../../src/dht/krpc.ts";
import { randomNodeId } from "../../src/dht/node_id.ts";

const MIB = 1024 * 1024;
/** Room over the +17 MiB measured; the 64 KiB read buffer alone cost twice that. */
const MAX_GROWTH = 26 * MIB;

/** VmHWM (peak) and VmRSS (now) of a process, in bytes. */
async function memory(pid: number): Promise<{ peak: number; now: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (key: string) =>
    Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))![1]) * 1024;
  return { peak: kib("VmHWM"), now: kib("VmRSS") };
}

/**
 * One ping from `host`; resolves with the type of the message answering it (matched by
 * transaction id: the node may ping us back first), or "none" in time.
 */
async function ping(host: string, port: number): Promise<string> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  const { promise, resolve } = Promise.withResolvers<string>();
  const timer = setTimeout(() => resolve("none"), 3000);
  socket.on("message", (msg) => {
    try {
      const message = decodeKrpc(new Uint8Array(msg));
      if (new TextDecoder().decode(message.t) === "pp") resolve(message.type);
    } catch { /* not the answer: keep waiting */ }
  });
  try {
    const t = new TextEncoder().encode("pp");
    socket.send(encodeQuery(t, { method: "ping", id: randomNodeId() }), port);
    return await promise;
  } finally {
    clearTimeout(timer);
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

Deno.test("20,000 malformed and hostile KRPC datagrams from 200 addresses leave the peak RSS bounded and the node answering", async () => {
  const fixture = await makeFixture({ kind: "single", size: 100_000 });
  // loopback only: a silent bootstrap node of ours; no LSD, no port mapping (flags)
  const silent = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
  const config = await writeConfig(fixture, {
    dhtBootstrap: [`127.0.0.1:${silent.address().port}`],
  });
  const client = new ClientProcess([
    "seed",
    fixture.torrent,
    "--dir",
    fixture.dataDir,
    "--port",
    "0",
    "--config",
    config,
    "--no-lsd",
    "--no-port-mapping",
  ], { cwd: fixture.root, lifetimeSec: 60, network: true });
  try {
    const [, udpPort] = await client.waitForLine(
      /DHT: .* on UDP port (\d+)/,
      20_000,
    );
    await client.waitForLine(/DHT: bootstrapped/, 20_000);
    await client.waitForEvent((e) => e.type === "seeding", 20_000);
    const port = Number(udpPort);
    assert.equal(await ping("127.0.0.1", port), "response");
    const before = await memory(client.pid);

    const flood = await floodKrpc({
      port,
      sources: 200,
      packets: 20_000,
      perSecond: 1000,
      kinds: ["malformed", "hostile"],
    });
    const after = await memory(client.pid);
    console.log(
      `RSS before ${(before.now / MIB).toFixed(1)} MiB (peak ${
        (before.peak / MIB).toFixed(1)
      }), peak after ${(after.peak / MIB).toFixed(1)} MiB, now ${
        (after.now / MIB).toFixed(1)
      } MiB; ${JSON.stringify(flood)}`,
    );
    assert.equal(flood.sent, 20_000);
    assert.ok(flood.announcesAccepted > 0, "the peer store took announces");
    assert.equal(await ping("127.0.0.250", port), "response");
    assert.ok(
      after.peak - before.peak < MAX_GROWTH,
      `peak RSS grew by ${((after.peak - before.peak) / MIB).toFixed(1)} MiB`,
    );
  } finally {
    client.kill("SIGINT");
    await client.wait();
    silent.close();
    await fixture.remove();
  }
});
