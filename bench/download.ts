// `deno task bench [--size-mib 1024] [--runs 1] [--clients ours,libtorrent,aria2]
//                  [--startup-runs 3]`
//
// Downloads one random single-file payload (1 MiB pieces) from a libtorrent seeder on
// 127.0.0.1 with our client, libtorrent's own leecher and aria2c, each run measured the same
// way (bench/measure.py: wall time, CPU of the process tree, peak RSS), each into a fresh
// folder that is verified against the source's sha256 and deleted. Prints a Markdown table of
// the medians; then the start-up table (bench/startup.ts; --startup-runs 0 leaves it out).

import { parseArgs } from "node:util";
import { clientArgv } from "../tools/client_command.ts";
import { benchStartup, startupTable } from "./startup.ts";
import { aria2LeecherArgs } from "../tests/helpers/aria2.ts";
import {
  libtorrentLeecherArgs,
  startLibtorrentSeeder,
} from "../tests/helpers/libtorrent.ts";
import { DEBIAN_PYTHON } from "../tests/helpers/mktorrent.ts";
import { sha256File } from "../tests/helpers/payload.ts";
import { describeStatus, ExternalProcess } from "../tests/helpers/process.ts";
import {
  absorbFirstTouch,
  BenchWorkspace,
  type CleanupStack,
  log,
  LOOPBACK_ONLY,
  makeBenchPayload,
  median,
  MIB,
  parseNames,
  positiveInteger,
  removeTree,
} from "./common.ts";

const REPO = new URL("..", import.meta.url).pathname;
const MEASURE_SCRIPT = new URL("./measure.py", import.meta.url).pathname;
const PAYLOAD_NAME = "payload.bin";
const CLIENT_NAMES = ["ours", "libtorrent", "aria2"] as const;
type ClientName = typeof CLIENT_NAMES[number];

interface Measurement {
  wall_s: number;
  cpu_s: number;
  max_rss_mib: number;
}

type RunResult = { ok: true; measurement: Measurement } | {
  ok: false;
  error: string;
};

interface Swarm {
  torrent: string;
  seederAddress: string;
}

/** The command that downloads the torrent into saveDir, for each client. */
const commands: Record<
  ClientName,
  (swarm: Swarm, saveDir: string, timeoutSec: number) => string[]
> = {
  ours: (swarm, saveDir) =>
    clientArgv([
      "download",
      swarm.torrent,
      "--dir",
      saveDir,
      "--peer",
      swarm.seederAddress,
      "--quiet",
      ...LOOPBACK_ONLY,
    ]),
  libtorrent: (swarm, saveDir, timeoutSec) => [
    DEBIAN_PYTHON,
    ...libtorrentLeecherArgs({
      torrent: swarm.torrent,
      saveDir,
      connect: [swarm.seederAddress],
      timeoutSec,
    }),
  ],
  // finds the seeder through the fake tracker named in the torrent
  aria2: (swarm, saveDir, timeoutSec) => [
    "aria2c",
    ...aria2LeecherArgs({ torrent: swarm.torrent, saveDir, timeoutSec }),
  ],
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      runs: { type: "string", default: "1" },
      clients: { type: "string", default: CLIENT_NAMES.join(",") },
      "startup-runs": { type: "string", default: "3" },
    },
  });
  const sizeMib = positiveInteger(values["size-mib"], "--size-mib");
  const runs = positiveInteger(values.runs, "--runs");
  const clients = parseNames(values.clients, CLIENT_NAMES, "--clients");
  const startupRuns = values["startup-runs"] === "0"
    ? 0
    : positiveInteger(values["startup-runs"], "--startup-runs");
  // generous: a client slower than 5 MiB/s has a problem worth a failed row
  const timeoutSec = Math.max(120, Math.ceil(sizeMib / 5));

  const workspace = await BenchWorkspace.open("bench-download-");
  const { workDir, cleanups } = workspace;
  try {
    const { sourceSha256, tracker, torrent } = await makeBenchPayload(
      workspace,
      `${workDir}/seed`,
      PAYLOAD_NAME,
      sizeMib,
    );
    const seeder = await startLibtorrentSeeder({
      torrent,
      dataDir: `${workDir}/seed`,
      lifetimeSec: timeoutSec * runs * clients.length + 300,
    });
    cleanups.push(seeder.stop);
    tracker.peers.push({ host: "127.0.0.1", port: seeder.port });
    const swarm = { torrent, seederAddress: `127.0.0.1:${seeder.port}` };

    // One unmeasured run of each client first. On this VM a process's first
    // GiB of page-cache writes after a fresh payload is several times slower
    // (3.0 s of pwrite against 0.24 s in the next run, profiled), and the
    // seeder maps the payload on its first pass: neither is a client's doing.
    for (const client of clients) {
      log(`warm-up: ${client} (not measured)`);
      const warmUp = await measureDownload(client, swarm, {
        saveDir: `${workDir}/warm-up-${client}`,
        sourceSha256,
        timeoutSec,
        cleanups,
        sizeBytes: sizeMib * MIB,
      });
      if (workspace.interrupted) return;
      if (!warmUp.ok) log(`  warm-up failed: ${warmUp.error}`);
    }

    const results = new Map<ClientName, RunResult[]>(
      clients.map((client) => [client, []]),
    );
    for (let run = 1; run <= runs; run++) {
      for (const client of clients) {
        log(`run ${run}/${runs}: ${client}`);
        const result = await measureDownload(client, swarm, {
          saveDir: `${workDir}/${client}-${run}`,
          sourceSha256,
          timeoutSec,
          cleanups,
          sizeBytes: sizeMib * MIB,
        });
        if (workspace.interrupted) return;
        log(
          result.ok
            ? `  ${JSON.stringify(result.measurement)}`
            : `  failed: ${result.error}`,
        );
        results.get(client)!.push(result);
      }
    }
    console.log(table(results, sizeMib, runs));
    if (startupRuns > 0) {
      console.log(
        `\n${startupTable(await benchStartup(workspace, startupRuns))}`,
      );
    }
  } finally {
    await workspace.close();
  }
}

async function measureDownload(
  client: ClientName,
  swarm: Swarm,
  run: {
    saveDir: string;
    sourceSha256: string;
    timeoutSec: number;
    cleanups: CleanupStack;
    sizeBytes: number;
  },
): Promise<RunResult> {
  const { saveDir } = run;
  await Deno.mkdir(saveDir, { recursive: true });
  await absorbFirstTouch(`${saveDir}.scratch`, run.sizeBytes);
  const [cmd, ...args] = commands[client](swarm, saveDir, run.timeoutSec);
  const measured = ExternalProcess.spawn({
    name: client,
    cmd: DEBIAN_PYTHON,
    args: [MEASURE_SCRIPT, cmd, ...args],
    cwd: REPO,
    lifetimeSec: run.timeoutSec + 10,
  });
  const forget = run.cleanups.push(async () => {
    await measured.stop();
    await removeTree(saveDir);
  });
  try {
    const status = await measured.exited;
    if (!status.success) {
      return {
        ok: false,
        error: measured.error(`failed (${describeStatus(status)})`).message,
      };
    }
    const [line] = await measured.waitForLine(/^\{"wall_s".*\}$/, 0);
    const sha256 = await sha256File(`${saveDir}/${PAYLOAD_NAME}`).catch(() =>
      "missing"
    );
    if (sha256 !== run.sourceSha256) {
      return {
        ok: false,
        error: `${saveDir}/${PAYLOAD_NAME} is ${sha256}, not the source's data`,
      };
    }
    return { ok: true, measurement: JSON.parse(line) };
  } finally {
    forget();
    await measured.stop();
    await removeTree(saveDir);
  }
}

function table(
  results: Map<ClientName, RunResult[]>,
  sizeMib: number,
  runs: number,
): string {
  const medians = new Map<ClientName, Measurement>();
  for (const [client, clientResults] of results) {
    const measured = clientResults.flatMap((result) =>
      result.ok ? [result.measurement] : []
    );
    if (measured.length === 0) continue;
    medians.set(client, {
      wall_s: median(measured.map((m) => m.wall_s)),
      cpu_s: median(measured.map((m) => m.cpu_s)),
      max_rss_mib: median(measured.map((m) => m.max_rss_mib)),
    });
  }
  const ours = medians.get("ours");
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const lines = [
    `Download of ${sizeMib} MiB (1 MiB pieces) from a libtorrent seeder ` +
    `on 127.0.0.1; median of ${runs} run(s).`,
    "",
    row([
      "client",
      "wall s",
      "MiB/s",
      "CPU s",
      "peak RSS MiB",
      "ours ÷ this (MiB/s)",
      "runs: wall s",
    ]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---"]),
  ];
  const failures: string[] = [];
  for (const [client, clientResults] of results) {
    const runWalls = clientResults.map((r) =>
      r.ok ? r.measurement.wall_s.toFixed(2) : "failed"
    ).join(", ");
    for (const result of clientResults) {
      if (!result.ok) failures.push(`- ${client}: ${result.error}`);
    }
    const m = medians.get(client);
    if (!m) {
      lines.push(row([client, "–", "–", "–", "–", "–", runWalls]));
      continue;
    }
    lines.push(row([
      client,
      m.wall_s.toFixed(2),
      (sizeMib / m.wall_s).toFixed(0),
      m.cpu_s.toFixed(2),
      m.max_rss_mib.toFixed(0),
      // equal sizes, so the ratio of speeds is the inverse ratio of wall times
      ours ? (m.wall_s / ours.wall_s).toFixed(2) : "–",
      runWalls,
    ]));
  }
  if (results.has("libtorrent")) {
    lines.push(
      "",
      "libtorrent 2.0 memory-maps the files it writes, so its peak RSS " +
        "counts the payload's cached pages.",
    );
  }
  if (failures.length > 0) lines.push("", "Failures:", ...failures);
  return lines.join("\n");
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
