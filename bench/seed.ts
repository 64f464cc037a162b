// `deno task bench:seed [--size-mib 1024] [--runs 1] [--seeders libtorrent,ours]`
//
// Uploading, measured from the leecher's side: libtorrent's leecher and aria2c each download
// one random single-file payload (1 MiB pieces) from a libtorrent seeder and from our seeder
// on 127.0.0.1, one leecher at a time. Each run is measured by bench/measure.py (wall time,
// CPU and peak RSS of the leecher) plus the seeder's CPU time over the run (/proc), into a
// fresh folder verified against the source's sha256 and deleted. Prints a Markdown table of
// the medians, with our seeder's speed relative to libtorrent's for the same leecher.
//
// Our seeder is `main.ts seed <torrent> --dir <dataDir> --port <port>`: ready once it
// prints "seeding ... on port N", stopped with SIGINT (exit code 130).

import { parseArgs } from "node:util";
import { clientArgv } from "../tools/client_command.ts";
import { aria2LeecherArgs } from "../tests/helpers/aria2.ts";
import {
  libtorrentLeecherArgs,
  startLibtorrentSeeder,
} from "../tests/helpers/libtorrent.ts";
import { DEBIAN_PYTHON } from "../tests/helpers/mktorrent.ts";
import { sha256File } from "../tests/helpers/payload.ts";
import { freePort } from "../tests/helpers/ports.ts";
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
const SEEDER_NAMES = ["libtorrent", "ours"] as const;
const LEECHER_NAMES = ["libtorrent", "aria2"] as const;
type SeederName = typeof SEEDER_NAMES[number];
type LeecherName = typeof LEECHER_NAMES[number];
/** How long our seeder may take to stop after SIGINT before it is killed. */
const SEEDER_STOP_GRACE_MS = 10_000;
/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ). */
const CLOCK_TICKS_PER_SECOND = 100;

interface Measurement {
  wall_s: number;
  cpu_s: number;
  max_rss_mib: number;
  seeder_cpu_s: number;
}

type RunResult = { ok: true; measurement: Measurement } | {
  ok: false;
  error: string;
};

interface Seeder {
  port: number;
  process: ExternalProcess;
  /** The seeding program itself (process.pid is its `timeout` wrapper), for its CPU time. */
  pid: number;
  stop(): Promise<void>;
}

interface SeederContext {
  torrent: string;
  dataDir: string;
  lifetimeSec: number;
  workDir: string;
}

const seeders: Record<SeederName, (context: SeederContext) => Promise<Seeder>> =
  {
    libtorrent: async (context) => {
      const seeder = await startLibtorrentSeeder({
        torrent: context.torrent,
        dataDir: context.dataDir,
        lifetimeSec: context.lifetimeSec,
      });
      return { ...seeder, pid: childPid(seeder.process) };
    },
    ours: startOurSeeder,
  };

/** The command that downloads the torrent into saveDir from the seeder, for each leecher. */
const leecherCommands: Record<
  LeecherName,
  (
    torrent: string,
    seeder: string,
    saveDir: string,
    timeoutSec: number,
  ) => string[]
> = {
  libtorrent: (torrent, seeder, saveDir, timeoutSec) => [
    DEBIAN_PYTHON,
    ...libtorrentLeecherArgs({
      torrent,
      saveDir,
      connect: [seeder],
      timeoutSec,
    }),
  ],
  // finds the seeder through the fake tracker named in the torrent
  aria2: (torrent, _seeder, saveDir, timeoutSec) => [
    "aria2c",
    ...aria2LeecherArgs({ torrent, saveDir, timeoutSec }),
  ],
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      runs: { type: "string", default: "1" },
      seeders: { type: "string", default: SEEDER_NAMES.join(",") },
    },
  });
  const sizeMib = positiveInteger(values["size-mib"], "--size-mib");
  const runs = positiveInteger(values.runs, "--runs");
  const chosenSeeders = parseNames(values.seeders, SEEDER_NAMES, "--seeders");
  // generous: a transfer slower than 5 MiB/s has a problem worth a failed row
  const timeoutSec = Math.max(120, Math.ceil(sizeMib / 5));

  const workspace = await BenchWorkspace.open("bench-seed-");
  const { workDir, cleanups } = workspace;
  try {
    const dataDir = `${workDir}/seed`;
    const { sourceSha256, tracker, torrent } = await makeBenchPayload(
      workspace,
      dataDir,
      PAYLOAD_NAME,
      sizeMib,
    );

    const results = new Map<string, RunResult[]>();
    const record = (seeder: SeederName, leecher: LeecherName, r: RunResult) => {
      const key = rowKey(seeder, leecher);
      results.set(key, [...results.get(key) ?? [], r]);
    };
    // Every seeder runs from the start and the runs alternate between them, so
    // that neither always goes first; an idle seeder costs nothing.
    const running = new Map<SeederName, Seeder>();
    for (const seederName of chosenSeeders) {
      log(`starting the ${seederName} seeder`);
      try {
        const seeder = await seeders[seederName]({
          torrent,
          dataDir,
          workDir,
          lifetimeSec: timeoutSec * (runs + 1) * chosenSeeders.length *
              LEECHER_NAMES.length + 300,
        });
        running.set(seederName, seeder);
        cleanups.push(seeder.stop);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`  failed to start: ${message}`);
        for (const leecher of LEECHER_NAMES) {
          record(seederName, leecher, { ok: false, error: message });
        }
      }
    }
    const transfer = (
      seeder: Seeder,
      leecher: LeecherName,
      saveDir: string,
    ) => {
      // aria2c learns of the seeder only through the tracker
      tracker.peers.splice(0, tracker.peers.length, {
        host: "127.0.0.1",
        port: seeder.port,
      });
      return measureTransfer({
        command: leecherCommands[leecher](
          torrent,
          `127.0.0.1:${seeder.port}`,
          saveDir,
          timeoutSec,
        ),
        name: `${leecher} leecher`,
        seeder,
        saveDir,
        sourceSha256,
        sizeBytes: sizeMib * MIB,
        timeoutSec,
        cleanups,
      });
    };

    // One unmeasured run of each pair first, as in bench/download.ts: the
    // first GiB of page-cache writes after a fresh payload is several times
    // slower on this VM, and a seeder maps the payload on its first pass.
    for (const [seederName, seeder] of running) {
      for (const leecher of LEECHER_NAMES) {
        log(
          `warm-up: ${seederName} seeder → ${leecher} leecher (not measured)`,
        );
        const saveDir = `${workDir}/warm-up-${seederName}-${leecher}`;
        const warmUp = await transfer(seeder, leecher, saveDir);
        if (workspace.interrupted) return;
        if (!warmUp.ok) log(`  warm-up failed: ${warmUp.error}`);
      }
    }
    for (let run = 1; run <= runs; run++) {
      for (const [seederName, seeder] of running) {
        for (const leecher of LEECHER_NAMES) {
          log(`run ${run}/${runs}: ${seederName} seeder → ${leecher} leecher`);
          const saveDir = `${workDir}/${seederName}-${leecher}-${run}`;
          const result = await transfer(seeder, leecher, saveDir);
          if (workspace.interrupted) return;
          log(
            result.ok
              ? `  ${JSON.stringify(result.measurement)}`
              : `  failed: ${result.error}`,
          );
          record(seederName, leecher, result);
        }
      }
    }
    console.log(table(results, chosenSeeders, sizeMib, runs));
  } finally {
    await workspace.close();
  }
}

/** Starts `main.ts seed` and resolves once it says it is seeding. */
async function startOurSeeder(context: SeederContext): Promise<Seeder> {
  const process = ExternalProcess.spawn({
    name: "our seeder",
    cmd: Deno.execPath(),
    args: [
      ...clientArgv([]).slice(1),
      "seed",
      context.torrent,
      "--dir",
      context.dataDir,
      "--port",
      String(freePort()),
      ...LOOPBACK_ONLY,
    ],
    // not the repository: a developer's ./config.json must not change the figures
    cwd: context.workDir,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    lifetimeSec: context.lifetimeSec,
  });
  try {
    // checking a 1 GiB payload from the page cache takes a few seconds
    const [, port] = await process.waitForLine(
      /seeding .* on port (\d+)/,
      120_000,
    );
    const pid = childPid(process);
    return {
      port: Number(port),
      process,
      pid,
      stop: () => stopWithSigint(process, pid),
    };
  } catch (error) {
    await process.stop();
    throw error;
  }
}

/** SIGINT is our client's orderly stop (exit code 130); a hang or another code is logged. */
async function stopWithSigint(
  process: ExternalProcess,
  pid: number,
): Promise<void> {
  try {
    Deno.kill(pid, "SIGINT");
  } catch { /* exited already: the status below says how */ }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => {
    timer = setTimeout(() => resolve("hung"), SEEDER_STOP_GRACE_MS);
  });
  const status = await Promise.race([process.exited, hung]);
  clearTimeout(timer);
  if (status === "hung") {
    log(
      `  our seeder ignored SIGINT for ${SEEDER_STOP_GRACE_MS} ms: killing it`,
    );
    await process.stop();
  } else if (status.code !== 130) {
    log(`  our seeder stopped with ${describeStatus(status)}, not code 130`);
  }
}

async function measureTransfer(run: {
  command: string[];
  name: string;
  seeder: Seeder;
  saveDir: string;
  sourceSha256: string;
  sizeBytes: number;
  timeoutSec: number;
  cleanups: CleanupStack;
}): Promise<RunResult> {
  const { saveDir } = run;
  await Deno.mkdir(saveDir, { recursive: true });
  await absorbFirstTouch(`${saveDir}.scratch`, run.sizeBytes);
  const seederTicksBefore = cpuTicks(run.seeder.pid);
  if (seederTicksBefore === undefined) {
    // fail at once: without a seeder the leecher would wait for its timeout
    return { ok: false, error: run.seeder.process.error("has exited").message };
  }
  const measured = ExternalProcess.spawn({
    name: run.name,
    cmd: DEBIAN_PYTHON,
    args: [MEASURE_SCRIPT, ...run.command],
    cwd: REPO,
    lifetimeSec: run.timeoutSec + 10,
  });
  const forget = run.cleanups.push(async () => {
    await measured.stop();
    await removeTree(saveDir);
  });
  try {
    const status = await measured.exited;
    const seederTicksAfter = cpuTicks(run.seeder.pid);
    if (seederTicksAfter === undefined) {
      return {
        ok: false,
        error: run.seeder.process.error("exited during the run").message,
      };
    }
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
    return {
      ok: true,
      measurement: {
        ...JSON.parse(line),
        seeder_cpu_s: (seederTicksAfter - seederTicksBefore) /
          CLOCK_TICKS_PER_SECOND,
      },
    };
  } finally {
    forget();
    await measured.stop();
    await removeTree(saveDir);
  }
}

function table(
  results: Map<string, RunResult[]>,
  seederNames: SeederName[],
  sizeMib: number,
  runs: number,
): string {
  const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const lines = [
    `Upload of ${sizeMib} MiB (1 MiB pieces) to one leecher at a time on ` +
    `127.0.0.1; median of ${runs} run(s). Leecher CPU and RSS are the ` +
    `leecher's; seeder CPU is the seeder's user + system time during the run.`,
    "",
    row([
      "seeder",
      "leecher",
      "wall s",
      "MiB/s",
      "leecher CPU s",
      "leecher peak RSS MiB",
      "seeder CPU s",
      "ours ÷ libtorrent seeder (MiB/s)",
      "runs: wall s",
    ]),
    row(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---"]),
  ];
  const failures: string[] = [];
  for (const seeder of seederNames) {
    for (const leecher of LEECHER_NAMES) {
      const runResults = results.get(rowKey(seeder, leecher)) ?? [];
      for (const result of runResults) {
        if (!result.ok) {
          failures.push(`- ${seeder} → ${leecher}: ${result.error}`);
        }
      }
      const runWalls = runResults.map((r) =>
        r.ok ? r.measurement.wall_s.toFixed(2) : "failed"
      ).join(", ");
      const m = medianOf(runResults);
      if (!m) {
        lines.push(
          row([seeder, leecher, "–", "–", "–", "–", "–", "–", runWalls]),
        );
        continue;
      }
      const reference = medianOf(
        results.get(rowKey("libtorrent", leecher)) ?? [],
      );
      lines.push(row([
        seeder,
        leecher,
        m.wall_s.toFixed(2),
        (sizeMib / m.wall_s).toFixed(0),
        m.cpu_s.toFixed(2),
        m.max_rss_mib.toFixed(0),
        m.seeder_cpu_s.toFixed(2),
        // equal sizes, so the ratio of speeds is the inverse ratio of wall times
        seeder === "ours" && reference
          ? (reference.wall_s / m.wall_s).toFixed(2)
          : "–",
        runWalls,
      ]));
    }
  }
  lines.push(
    "",
    "libtorrent 2.0 memory-maps the files it writes, so its peak RSS " +
      "counts the payload's cached pages.",
  );
  if (failures.length > 0) lines.push("", "Failures:", ...failures);
  return lines.join("\n");
}

function rowKey(seeder: SeederName, leecher: LeecherName): string {
  return `${seeder}/${leecher}`;
}

function medianOf(runResults: RunResult[]): Measurement | undefined {
  const measured = runResults.flatMap((r) => r.ok ? [r.measurement] : []);
  if (measured.length === 0) return undefined;
  const medianField = (field: keyof Measurement) =>
    median(measured.map((m) => m[field]));
  return {
    wall_s: medianField("wall_s"),
    cpu_s: medianField("cpu_s"),
    max_rss_mib: medianField("max_rss_mib"),
    seeder_cpu_s: medianField("seeder_cpu_s"),
  };
}

/**
 * The pid of the program an ExternalProcess runs: its recorded pid is the
 * `timeout` wrapper's, whose only child is the program.
 */
function childPid(process: ExternalProcess): number {
  const children = Deno.readTextFileSync(
    `/proc/${process.pid}/task/${process.pid}/children`,
  ).trim().split(" ");
  if (children.length !== 1 || children[0] === "") {
    throw new Error(`${process.name} (pid ${process.pid}) has no single child`);
  }
  return Number(children[0]);
}

/**
 * User + system CPU time of a process, all its threads, in clock ticks
 * (/proc/PID/stat); undefined once it has exited.
 */
function cpuTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  // fields after the command name, which is in parentheses and may hold spaces
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // field 3, state: Z is exited but not yet reaped by its parent
  if (fields[0] === "Z") return undefined;
  // utime and stime are fields 14 and 15 of the whole line; the slice starts at field 3
  return Number(fields[11]) + Number(fields[12]);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
