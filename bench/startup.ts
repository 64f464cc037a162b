// The start-up row of `deno task bench`: a 4 MiB torrent, whole-process wall
// time from start to exit with the data verified, our client in its default
// config (DHT, LSD and port mapping on) against libtorrent's leecher, both
// dialling the same libtorrent seeder. They run in a network namespace of the
// bench's own whose default route leads to a gateway that never answers, so
// that port mapping, LSD and the DHT bootstrap try for real and nothing they
// send leaves the machine.

import { clientArgv } from "../tools/client_command.ts";
import {
  libtorrentLeecherArgs,
  startLibtorrentSeeder,
} from "../tests/helpers/libtorrent.ts";
import { DEBIAN_PYTHON, makeTorrent } from "../tests/helpers/mktorrent.ts";
import { makeSingleFile, sha256File } from "../tests/helpers/payload.ts";
import { describeStatus, ExternalProcess } from "../tests/helpers/process.ts";
import { type BenchWorkspace, log, median, MIB, removeTree } from "./common.ts";

const MEASURE_SCRIPT = new URL("./measure.py", import.meta.url).pathname;
const SIZE = 4 * MIB;
const NAME = "small.bin";
/**
 * The namespace's own LAN: a veth pair whose far end has no address, so the
 * gateway's address is never answered (this kernel has no dummy links).
 */
const HOST_ADDRESS = "10.199.0.2/24";
const SILENT_GATEWAY = "10.199.0.1";

export interface StartupRow {
  client: "ours" | "libtorrent";
  walls: number[];
  failures: string[];
}

export async function benchStartup(
  workspace: BenchWorkspace,
  runs: number,
): Promise<StartupRow[]> {
  const dir = `${workspace.workDir}/startup`;
  await Deno.mkdir(`${dir}/seed`, { recursive: true });
  const payload = await makeSingleFile(`${dir}/seed`, NAME, SIZE);
  const sha256 = await sha256File(payload);
  const torrent = await makeTorrent(payload, `${dir}/small.torrent`, {
    announce: [],
  });
  const netns = `btbench-${Deno.pid}`;
  await makeNamespace(netns);
  workspace.cleanups.push(() => ip("netns", "delete", netns));
  const seeder = await startLibtorrentSeeder({
    torrent,
    dataDir: `${dir}/seed`,
    netns,
    lifetimeSec: 60 * runs + 120,
  });
  workspace.cleanups.push(seeder.stop);
  const peer = `127.0.0.1:${seeder.port}`;
  const commands = {
    // a clean working folder: the embedded defaults, no config.json
    ours: (saveDir: string) =>
      clientArgv(["download", torrent, "--dir", saveDir, "--peer", peer]),
    libtorrent: (saveDir: string) => [
      DEBIAN_PYTHON,
      ...libtorrentLeecherArgs({
        torrent,
        saveDir,
        connect: [peer],
        timeoutSec: 60,
      }),
    ],
  };
  const rows: StartupRow[] = (["ours", "libtorrent"] as const).map((
    client,
  ) => ({ client, walls: [], failures: [] }));
  // one unmeasured round first, as in the download rows
  for (let run = 0; run <= runs; run++) {
    for (const row of rows) {
      const saveDir = `${dir}/${row.client}-${run}`;
      await Deno.mkdir(saveDir);
      const measured = ExternalProcess.spawn({
        name: `${row.client} start-up`,
        cmd: "ip",
        args: [
          "netns",
          "exec",
          netns,
          DEBIAN_PYTHON,
          MEASURE_SCRIPT,
          ...commands[row.client](saveDir),
        ],
        cwd: saveDir,
        lifetimeSec: 90,
      });
      const status = await measured.exited;
      const [line] = status.success
        ? await measured.waitForLine(/^\{"wall_s".*\}$/, 0)
        : [""];
      const ok = status.success &&
        await sha256File(`${saveDir}/${NAME}`).catch(() => "") === sha256;
      await removeTree(saveDir);
      if (run === 0) continue;
      if (!ok) {
        row.failures.push(
          `${row.client}: ${
            measured.error(`failed (${describeStatus(status)})`).message
          }`,
        );
        continue;
      }
      const wall = JSON.parse(line).wall_s as number;
      log(`start-up run ${run}/${runs}: ${row.client} ${wall.toFixed(2)} s`);
      row.walls.push(wall);
    }
  }
  return rows;
}

export function startupTable(rows: StartupRow[]): string {
  const libtorrent = median(rows.find((r) => r.client === "libtorrent")!.walls);
  const lines = [
    `Start-up: ${
      SIZE / MIB
    } MiB from a libtorrent seeder, default config (DHT, LSD, port mapping on; the gateway never answers), whole process, median of ${
      rows[0].walls.length
    }`,
    "",
    "| client | wall s | this ÷ ours (wall) | runs: wall s |",
    "| --- | ---: | ---: | --- |",
  ];
  const ours = median(rows.find((r) => r.client === "ours")!.walls);
  for (const row of rows) {
    const wall = median(row.walls);
    lines.push(
      `| ${row.client} | ${wall.toFixed(2)} | ${
        row.client === "ours" ? "1.00" : (wall / ours).toFixed(2)
      } | ${row.walls.map((w) => w.toFixed(2)).join(", ")} |`,
    );
  }
  for (const row of rows) lines.push(...row.failures.map((f) => `- ${f}`));
  if (!Number.isFinite(libtorrent)) lines.push("- libtorrent: no run");
  return lines.join("\n");
}

async function makeNamespace(name: string): Promise<void> {
  await ip("netns", "add", name);
  await ip("-n", name, "link", "set", "lo", "up");
  await ip("-n", name, "link", "add", "lan0", "type", "veth", "peer", "lan1");
  await ip("-n", name, "addr", "add", HOST_ADDRESS, "dev", "lan0");
  await ip("-n", name, "link", "set", "lan0", "up");
  await ip("-n", name, "link", "set", "lan1", "up");
  await ip("-n", name, "route", "add", "default", "via", SILENT_GATEWAY);
}

async function ip(...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("ip", {
    args,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `ip ${args.join(" ")}: ${new TextDecoder().decode(stderr).trim()}`,
    );
  }
}
