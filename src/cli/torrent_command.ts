// `download` and `seed`: check what is on disk, fetch the rest from trackers'
// and --peer peers while uploading to whoever asks, then seed until the goal
// (download: none by default, it exits; seed: until stopped when no goal is
// set), and stop cleanly on a signal.

import * as fs from "node:fs";
import * as path from "node:path";
import {
  applyOverrides,
  type Config,
  ConfigError,
  DEFAULT_CONFIG,
  parseConfig,
} from "../config.ts";
import { parseMetainfo, TorrentFileError } from "../metainfo/metainfo.ts";
import { Session } from "../session.ts";
import { loadOrCheck, resumePath } from "../storage/resume.ts";
import { PieceStore } from "../storage/store.ts";
import { Bandwidth } from "../swarm/bandwidth.ts";
import { formatPeerReport, peerReportRows } from "../swarm/peer_report.ts";
import { Torrent } from "../torrent.ts";
import { makePeerId } from "../version.ts";
import type { TorrentArgs } from "./args.ts";
import { formatBytes, formatDuration, formatRate } from "./format.ts";
import { ProgressView } from "./progress.ts";

export const ExitCode = {
  Complete: 0,
  Failure: 1,
  BadInput: 2,
  Interrupted: 130,
  Terminated: 143,
} as const;

type Outcome = "done" | "SIGINT" | "SIGTERM";

export async function runTorrentCommand(args: TorrentArgs): Promise<number> {
  const config = loadConfig(args);
  const meta = parseMetainfo(readTorrentFile(args.torrent));
  const view = ProgressView.detect(args.quiet, config.logIntervalSeconds);
  const log = (line: string) => view.log(line);
  const dir = path.resolve(config.downloadDir);

  const store = new PieceStore(meta, dir);
  store.prepare();
  const start = await loadOrCheck(
    store,
    resumePath(dir, meta),
    (done, total) => {
      view.status(`checking existing data: ${done}/${total} pieces`);
    },
  );
  log(
    `${meta.name}: ${
      formatBytes(meta.totalLength)
    } in ${meta.pieceCount} pieces, ` +
      `${start.have.count} already verified${
        start.fromResume ? " (resume file)" : ""
      }, ` +
      `saving to ${dir}`,
  );

  const session = new Session(config.connectTimeoutSeconds * 1000, log);
  const torrent = new Torrent(meta, store, start.have, {
    config,
    peerId: makePeerId(),
    resumeFile: resumePath(dir, meta),
    download: new Bandwidth(config.downloadLimit),
    upload: new Bandwidth(config.uploadLimit),
    log,
  });
  const willSeed = args.command === "seed" || config.seedRatio > 0 ||
    config.seedMinutes > 0;
  // A download that is complete and will not seed needs no port and no peers.
  if (start.have.complete && !willSeed) {
    log(`complete: ${meta.name} was already verified on disk`);
    store.close();
    return ExitCode.Complete;
  }
  const listenPort = session.listen(config.listenPort);
  session.add(torrent);

  const began = performance.now();
  const signalled = waitForSignal();
  torrent.start(args.peers, listenPort);
  view.follow(() => torrent.stats());
  let outcome: Outcome;
  try {
    outcome = await Promise.race([
      torrent.finished.then(() => "done" as const),
      signalled.promise,
    ]);
    if (outcome === "done" && willSeed) {
      log(`seeding ${meta.name} on port ${listenPort}${describeGoal(config)}`);
      outcome = await Promise.race([
        seedGoalReached(torrent, config),
        signalled.promise,
      ]);
    }
  } catch (e) {
    view.stop();
    await shutdown(torrent, session, signalled.remove);
    throw e;
  }
  view.stop(torrent.stats());
  await shutdown(torrent, session, signalled.remove);
  report(
    torrent,
    meta.pieceCount,
    outcome,
    (performance.now() - began) / 1000,
    log,
  );
  if (args.peerReport) writePeerReport(args.peerReport, torrent, log);
  if (outcome === "SIGINT") return ExitCode.Interrupted;
  if (outcome === "SIGTERM") return ExitCode.Terminated;
  return ExitCode.Complete;
}

/** Resolves once the seeding goal is met; never when there is none (seed until stopped). */
function seedGoalReached(torrent: Torrent, config: Config): Promise<"done"> {
  return new Promise((resolve) => {
    const since = performance.now();
    const check = () => {
      const ratio = torrent.uploaded / torrent.meta.totalLength;
      const minutes = (performance.now() - since) / 60_000;
      if (
        (config.seedRatio > 0 && ratio >= config.seedRatio) ||
        (config.seedMinutes > 0 && minutes >= config.seedMinutes)
      ) {
        clearInterval(timer);
        resolve("done");
      }
    };
    const timer = setInterval(check, 1000);
    Deno.unrefTimer(timer as unknown as number);
    torrent.finished.finally(check);
  });
}

function describeGoal(config: Config): string {
  const goals = [];
  if (config.seedRatio > 0) goals.push(`ratio ${config.seedRatio}`);
  if (config.seedMinutes > 0) goals.push(`${config.seedMinutes} min`);
  return goals.length > 0 ? ` until ${goals.join(" or ")}` : " until stopped";
}

function report(
  torrent: Torrent,
  pieceCount: number,
  outcome: Outcome,
  seconds: number,
  log: (l: string) => void,
) {
  const sources = torrent.sources();
  if (sources.length > 0) {
    const shown = sources.slice(0, 8).map((s) =>
      `${s.address} ${formatBytes(s.bytes)}`
    );
    if (sources.length > 8) shown.push(`and ${sources.length - 8} more`);
    log(`received from: ${shown.join(", ")}`);
  }
  const traffic =
    `${formatBytes(torrent.downloaded)} down, ${
      formatBytes(torrent.uploaded)
    } up in ` +
    `${formatDuration(seconds)} (${
      formatRate(torrent.downloaded / Math.max(seconds, 0.001))
    } down)`;
  if (torrent.complete) {
    log(
      `complete: ${torrent.meta.name}, ${traffic}${
        outcome === "done" ? "" : `; stopped by ${outcome}`
      }`,
    );
  } else {
    log(
      `stopped at ${torrent.have.count}/${pieceCount} pieces, ${traffic}; the next run resumes from there`,
    );
  }
}

function writePeerReport(
  file: string,
  torrent: Torrent,
  log: (l: string) => void,
): void {
  const rows = peerReportRows(torrent.swarm.peers.values());
  const format = file.toLowerCase().endsWith(".csv") ? "csv" : "json";
  try {
    fs.writeFileSync(file, formatPeerReport(rows, format));
    log(`peer report: ${rows.length} peers written to ${file}`);
  } catch (e) {
    log(`could not write the peer report ${file}: ${errorText(e)}`);
  }
}

async function shutdown(
  torrent: Torrent,
  session: Session,
  removeSignals: () => void,
): Promise<void> {
  await torrent.stop();
  await session.close();
  removeSignals();
}

function loadConfig(args: TorrentArgs): Config {
  let config: Config = { ...DEFAULT_CONFIG };
  const file = args.config ??
    (fs.existsSync("config.json") ? "config.json" : undefined);
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read config ${file}: ${errorText(e)}`);
    }
    config = parseConfig(text, file);
  }
  return applyOverrides(config, args.overrides, "command line");
}

function readTorrentFile(file: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new TorrentFileError(`cannot read ${file}: ${errorText(e)}`);
  }
  if (raw.length === 0) throw new TorrentFileError(`${file} is empty`);
  return raw;
}

function waitForSignal() {
  let resolve!: (s: "SIGINT" | "SIGTERM") => void;
  const promise = new Promise<"SIGINT" | "SIGTERM">((r) => resolve = r);
  const onInt = () => resolve("SIGINT");
  const onTerm = () => resolve("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  return {
    promise,
    remove: () => {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
    },
  };
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message.split("\n")[0];
  return String(e);
}
