// One session seeds a thousand torrents at once (maxActiveSeeds, made by
// libtorrent), while a torrent to download in the same batch still gets its
// slot and completes (from a libtorrent seeder found through a tracker),
// finding no seeding slot left; a libtorrent leecher fetches one of the
// thousand from us. Prints start time, memory and idle CPU.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { ClientProcess } from "../helpers/client.ts";
import { startFakeTracker } from "../helpers/fake_tracker.ts";
import {
  runLibtorrentLeecher,
  startLibtorrentSeeder,
} from "../helpers/libtorrent.ts";
import { DEBIAN_PYTHON, makeTorrent } from "../helpers/mktorrent.ts";
import { makeSingleFile } from "../helpers/payload.ts";
import { ExternalProcess } from "../helpers/process.ts";

const TORRENTS = 1000;
const SIZE = 20_000;
const MAKE_TORRENTS = new URL("../helpers/lt_make_torrents.py", import.meta.url)
  .pathname;

Deno.test(`one session seeds ${TORRENTS} torrents at once; a libtorrent leecher gets one`, async () => {
  const root = await Deno.makeTempDir({ prefix: "btclient-many-" });
  const data = `${root}/downloads`;
  fs.mkdirSync(data);
  fs.mkdirSync(`${root}/torrents`);
  fs.mkdirSync(`${root}/leech`);
  for (let i = 0; i < TORRENTS; i++) {
    const name = `s${String(i).padStart(4, "0")}.bin`;
    fs.writeFileSync(
      `${data}/${name}`,
      crypto.getRandomValues(new Uint8Array(SIZE)),
    );
  }
  const maker = ExternalProcess.spawn({
    name: "libtorrent torrent maker",
    cmd: DEBIAN_PYTHON,
    args: [MAKE_TORRENTS, data, `${root}/torrents`],
    lifetimeSec: 120,
  });
  await maker.waitForLine(new RegExp(`^MADE ${TORRENTS}$`), 120_000);
  // The one to download, from a libtorrent seeder that a tracker names.
  fs.mkdirSync(`${root}/elsewhere`);
  const wanted = await makeSingleFile(`${root}/elsewhere`, "wanted.bin", 3e6);
  const tracker = await startFakeTracker();
  await makeTorrent(wanted, `${root}/torrents/wanted.torrent`, {
    announce: [tracker.url],
  });
  const seeder = await startLibtorrentSeeder({
    torrent: `${root}/torrents/wanted.torrent`,
    dataDir: `${root}/elsewhere`,
  });
  tracker.peers.push({ host: "127.0.0.1", port: seeder.port });
  fs.writeFileSync(
    `${root}/config.json`,
    JSON.stringify({ seedMinutes: 10, listenPort: 0 }),
  );
  const began = performance.now();
  const client = new ClientProcess(["download"], {
    cwd: root,
    lifetimeSec: 240,
  });
  try {
    const { port } = await client.waitForEvent(
      (e) => e.type === "seeding",
      120_000,
    );
    await until(
      () =>
        client.events.filter((e) => e.type === "seeding").length === TORRENTS,
      120_000,
    );
    const startSeconds = (performance.now() - began) / 1000;
    const pid = client.pid;
    const cpuBefore = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 5000));
    const idleCpu = (cpuSeconds(pid) - cpuBefore) / 5;
    const rssMiB = statusKiB(pid, "VmRSS") / 1024;
    console.log(
      `  ${TORRENTS} torrents seeding ${
        startSeconds.toFixed(1)
      } s after start; RSS ${rssMiB.toFixed(0)} MiB; idle CPU ${
        (idleCpu * 100).toFixed(1)
      } % of a core`,
    );
    const picked = "s0777.bin";
    const leech = await runLibtorrentLeecher({
      torrent: `${root}/torrents/${picked}.torrent`,
      saveDir: `${root}/leech`,
      connect: [`127.0.0.1:${port}`],
      timeoutSec: 30,
    });
    assert.deepEqual(
      fs.readFileSync(`${root}/leech/${picked}`),
      fs.readFileSync(`${data}/${picked}`),
    );
    console.log(`  libtorrent fetched ${picked} in ${leech.seconds} s`);
    assert.ok(rssMiB < 400, `RSS ${rssMiB} MiB`);
    assert.ok(idleCpu < 0.5, `idle CPU ${idleCpu}`);
    await client.waitForEvent(
      (e) => e.type === "notSeeding" && e.torrent.name === "wanted.bin",
      60_000,
    );
    assert.deepEqual(
      fs.readFileSync(`${data}/wanted.bin`),
      fs.readFileSync(wanted),
    );
    client.kill("SIGINT");
    const end = await client.wait();
    assert.equal(end.code, 130, end.output.slice(-2000));
  } finally {
    client.kill("SIGKILL");
    await client.wait();
    await seeder.stop();
    await tracker.stop();
    await Deno.remove(root, { recursive: true });
  }
});

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    assert.ok(performance.now() < deadline, "timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** User + system CPU seconds of a process, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 Hz here)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function statusKiB(pid: number, key: string): number {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")
    .find((l) => l.startsWith(`${key}:`));
  return Number(line?.split(/\s+/)[1] ?? 0);
}
