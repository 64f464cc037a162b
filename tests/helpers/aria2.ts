// aria2c as a seeder or leecher on 127.0.0.1.
//
// aria2c has no option to dial a given peer: it finds peers only through trackers (DHT, LPD
// and PEX are off here). So the torrent's announce URL, or the `tracker` option (which
// replaces the torrent's trackers), must name a local HTTP tracker that knows the other peer,
// e.g. tests/helpers/fake_tracker.ts or opentracker. aria2c ignores udp:// trackers while
// its DHT is off.

import { freePort } from "./ports.ts";
import { ExternalProcess } from "./process.ts";

export interface Aria2SeederOptions {
  torrent: string;
  /** The folder holding the payload (aria2c's --dir). */
  dataDir: string;
  /** Listen port; a free one unless given (aria2c cannot bind port 0). */
  port?: number;
  /** Announce URL used instead of the torrent's own trackers. */
  tracker?: string;
  lifetimeSec?: number;
  /** Upload cap in bytes a second (none unless given). */
  uploadLimit?: number;
}

export interface Aria2Seeder {
  port: number;
  process: ExternalProcess;
  stop(): Promise<void>;
}

/** Starts seeding; resolves once aria2c has hash-checked the files and is listening. */
export async function startAria2Seeder(
  options: Aria2SeederOptions,
): Promise<Aria2Seeder> {
  // aria2c runs the --on-bt-download-complete command (without a shell) once its hash check
  // finds the files complete; the hook's stdout is aria2c's, where we wait for its line.
  const hookDir = await Deno.makeTempDir({ prefix: "aria2-hook-" });
  const hook = `${hookDir}/ready.sh`;
  const script = '#!/bin/sh\necho "ARIA2 HASH CHECK COMPLETE $1"\n';
  await Deno.writeTextFile(hook, script, { mode: 0o755 });
  const port = options.port ?? freePort();
  const process = ExternalProcess.spawn({
    name: "aria2c seeder",
    cmd: "aria2c",
    args: [
      ...commonArgs({ dir: options.dataDir, port, tracker: options.tracker }),
      "--check-integrity=true",
      `--max-overall-upload-limit=${options.uploadLimit ?? 0}`,
      "--seed-ratio=0.0",
      `--on-bt-download-complete=${hook}`,
      "--bt-enable-hook-after-hash-check=true",
      options.torrent,
    ],
    lifetimeSec: options.lifetimeSec ?? 300,
  });
  const stop = async () => {
    await process.stop();
    await Deno.remove(hookDir, { recursive: true });
  };
  try {
    // aria2c opens its listen socket after the hash check, so the hook follows at once
    // when the files are complete; without it, aria2c is downloading instead of seeding.
    await process.waitForLine(
      new RegExp(`listening on TCP port ${port}$`),
      120_000,
    );
    const hashChecked = await process
      .waitForLine(/^ARIA2 HASH CHECK COMPLETE /, 5_000)
      .then(() => true, () => false);
    if (!hashChecked) {
      throw process.error(
        `is not seeding: the files in ${options.dataDir} are missing or incomplete`,
      );
    }
    return { port, process, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface Aria2LeecherOptions {
  torrent: string;
  saveDir: string;
  timeoutSec: number;
  /** Announce URL used instead of the torrent's own trackers; it must list the seeder. */
  tracker?: string;
  port?: number;
}

/** Downloads to saveDir (aria2c exits when done); resolves with the wall time it took. */
export async function runAria2Leecher(
  options: Aria2LeecherOptions,
): Promise<{ seconds: number }> {
  const started = performance.now();
  const process = ExternalProcess.spawn({
    name: "aria2c leecher",
    cmd: "aria2c",
    args: aria2LeecherArgs(options),
    lifetimeSec: options.timeoutSec,
  });
  try {
    await process.succeeded();
    return { seconds: (performance.now() - started) / 1000 };
  } finally {
    await process.stop();
  }
}

/** Arguments for `aria2c` that run a leecher: for callers that spawn it themselves. */
export function aria2LeecherArgs(options: Aria2LeecherOptions): string[] {
  return [
    ...commonArgs({
      dir: options.saveDir,
      port: options.port ?? freePort(),
      tracker: options.tracker,
    }),
    "--seed-time=0",
    // The default (prealloc) first writes the whole file with zeros, which would dominate
    // a benchmark; "none" writes pieces where they fall, as the other clients do.
    "--file-allocation=none",
    options.torrent,
  ];
}

function commonArgs(
  options: { dir: string; port: number; tracker?: string },
): string[] {
  const args = [
    `--dir=${options.dir}`,
    `--listen-port=${options.port}`,
    // binds the listen socket and outgoing connections to loopback
    "--interface=127.0.0.1",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--disable-ipv6=true",
    "--no-conf=true",
    "--summary-interval=0",
    "--show-console-readout=false",
    "--enable-color=false",
  ];
  if (options.tracker) {
    // '*' drops the torrent's trackers; --bt-tracker URLs are added after that filter
    args.push("--bt-exclude-tracker=*", `--bt-tracker=${options.tracker}`);
  }
  return args;
}
