// `deno task bench [--size-mib 1024] [--runs 1] [--clients ours,libtorrent,aria2]`
//
// Downloads one random single-file payload (1 MiB pieces) from a libtorrent seeder on
// 127.0.0.1 with our client, libtorrent's own leecher and aria2c, each run measured the same
// way (bench/measure.py: wall time, CPU of the process tree, peak RSS), each into a fresh
// folder that is verified against the source's sha256 and deleted. Prints a Markdown table of
// the medians.

import { parseArgs } from "node:util";
import { aria2LeecherArgs } from "../tests/helpers/aria2.ts";
import { startFakeTracker } from "../tests/helpers/fake_tracker.ts";
import {
  libtorrentLeecherArgs,
  startLibtorrentSeeder,
} from "../tests/helpers/libtorrent.ts";
import { DEBIAN_PYTHON, makeTorrent } from "../tests/helpers/mktorrent.ts";
import { makeSingleFile, sha256File } from "../tests/helpers/payload.ts";
import { describeStatus, ExternalProcess } from "../tests/helpers/process.ts";

const MIB = 1024 * 1024;
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
  ours: (swarm, saveDir) => [
    Deno.execPath(),
    "run",
    "-A",
    "--no-prompt",
    `${REPO}main.ts`,
    "download",
    swarm.torrent,
    "--dir",
    saveDir,
    "--peer",
    swarm.seederAddress,
    "--quiet",
  ],
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
    },
  });
  const sizeMib = positiveInteger(values["size-mib"], "--size-mib");
  const runs = positiveInteger(values.runs, "--runs");
  const clients = values.clients.split(",").map((name) => {
    if (!(CLIENT_NAMES as readonly string[]).includes(name)) {
      throw new Error(
        `--clients: unknown client "${name}" (known: ${
          CLIENT_NAMES.join(", ")
        })`,
      );
    }
    return name as ClientName;
  });
  // generous: a client slower than 5 MiB/s has a problem worth a failed row
  const timeoutSec = Math.max(120, Math.ceil(sizeMib / 5));

  const workDir = await Deno.makeTempDir({ prefix: "bench-download-" });
  const cleanups = new CleanupStack();
  cleanups.push(() => removeTree(workDir));
  let interrupted = false;
  const onInterrupt = () => {
    interrupted = true;
    log("interrupted: stopping the clients and deleting the temp dir");
    cleanups.run().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    log(`making a ${sizeMib} MiB payload in ${workDir}`);
    await Deno.mkdir(`${workDir}/seed`);
    const payload = await makeSingleFile(
      `${workDir}/seed`,
      PAYLOAD_NAME,
      sizeMib * MIB,
    );
    const sourceSha256 = await sha256File(payload);
    // Flush the new payload now, so its writeback does not slow whichever
    // client happens to run first.
    await new Deno.Command("sync").output();
    const tracker = await startFakeTracker();
    cleanups.push(tracker.stop);
    const torrent = await makeTorrent(payload, `${workDir}/payload.torrent`, {
      announce: [tracker.url],
      pieceLengthLog2: 20,
    });
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
      if (interrupted) return;
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
        if (interrupted) return;
        log(
          result.ok
            ? `  ${JSON.stringify(result.measurement)}`
            : `  failed: ${result.error}`,
        );
        results.get(client)!.push(result);
      }
    }
    console.log(table(results, sizeMib, runs));
  } finally {
    await cleanups.run();
    Deno.removeSignalListener("SIGINT", onInterrupt);
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

/** Undo steps run newest first, at the end or on Ctrl-C (children live in their own
 * process groups, so the terminal's SIGINT does not reach them). */
class CleanupStack {
  #steps: Array<() => Promise<void>> = [];

  /** Adds a step; the returned function drops it again once it has been done inline. */
  push(step: () => Promise<void>): () => void {
    this.#steps.push(step);
    return () => {
      this.#steps = this.#steps.filter((s) => s !== step);
    };
  }

  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      await step().catch((error) => console.error(`cleanup: ${error}`));
    }
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

/**
 * Writes and deletes a file of the payload's size before a measured run. On
 * this VM the first GiB of page-cache writes after memory was freed a while
 * (e.g. after aria2c's 7 s run) costs 1.7-2.0 s against 0.25-0.29 s next time,
 * measured with plain dd, whichever program writes: without this, the client
 * that runs after aria2c pays it.
 */
async function absorbFirstTouch(path: string, size: number): Promise<void> {
  const chunk = new Uint8Array(MIB);
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    for (let done = 0; done < size; done += chunk.length) {
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
    }
  } finally {
    file.close();
  }
  await removeTree(path);
}

/**
 * Removes a folder tree (an interrupt may have removed it already), then
 * lets the kernel finish with it: freeing a just-written GiB costs the next
 * writer about a second of system time, which is not that client's doing.
 */
async function removeTree(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await new Deno.Command("sync").output();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${flag}: expected a positive integer, got "${text}"`);
  }
  return value;
}

function log(message: string): void {
  console.error(message);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
