// `download` and `seed`: one torrent, or (download with no torrent) every
// .torrent and .magnet file in torrentsDir, run by the engine. This file
// turns the command line and config into engine calls, the engine's events
// into lines, hooks and --json, and the outcome into an exit code. SIGINT,
// SIGTERM and --max-minutes stop the engine cleanly, saving state.

import * as fs from "node:fs";
import * as path from "node:path";
import {
  Engine,
  type EngineEvent,
  formatPeerReport,
  isMagnet,
  type PeerReportRow,
  type StopReason,
  TorrentFileError,
  type TorrentSummary,
} from "../session/mod.ts";
import { ConfigError } from "../config.ts";
import type { TorrentArgs } from "./args.ts";
import { runCompletionHook } from "./completion_hook.ts";
import { EventLog } from "./event_log.ts";
import { loadConfig } from "./config_file.ts";
import { formatBytes, formatDuration } from "./format.ts";
import { ProgressView } from "./progress.ts";
import { renderEvent } from "./render.ts";

export const ExitCode = {
  Complete: 0,
  Failure: 1,
  BadInput: 2,
  Partial: 3,
  Locked: 4,
  Interrupted: 130,
  Terminated: 143,
} as const;

export async function runTorrentCommand(args: TorrentArgs): Promise<number> {
  const { config, source } = loadConfig(args.config, args.overrides);
  const view = ProgressView.detect(args.quiet, config.logIntervalSeconds, {
    toStderr: args.json,
    logFile: config.logFile,
  });
  const log = (line: string) => view.log(line);
  log(`config: ${source}`);
  const files = args.torrent !== undefined
    ? [locateTorrent(args.torrent, config.torrentsDir)]
    : listTorrentFiles(config.torrentsDir);
  if (files.length === 0) {
    log(
      `nothing to do: no .torrent or .magnet files in ${
        path.resolve(config.torrentsDir)
      }`,
    );
    return ExitCode.Complete;
  }
  const hooks: Promise<void>[] = [];
  const eventLog = args.events === undefined ? null : openEventLog(args.events);
  const onEvent = (event: EngineEvent) => {
    eventLog?.write(event);
    if (event.type === "status") view.status(event.text);
    else for (const line of renderEvent(event)) log(line);
    if (event.type === "complete" && config.onComplete !== "") {
      hooks.push(runCompletionHook(config.onComplete, {
        name: event.torrent.name,
        infoHash: event.torrent.infoHash,
        path: event.path,
      }, log));
    }
  };
  const engine = new Engine({
    config,
    peers: args.peers,
    seedCommand: args.command === "seed",
    onEvent,
  });
  // Inputs are read before the engine locks and touches the download
  // folder, so a bad one changes nothing on disk. A bad file stops a single
  // download; in batch mode the others go on.
  for (const file of files) {
    await engine.add(file, {
      skipBadInput: args.torrent === undefined,
      batch: files,
    });
  }
  const stop = stopSignals(config.maxMinutes);
  stop.promise.then((reason) => engine.stop(reason));
  view.follow(() => engine.stats());
  eventLog?.follow(() => engine.stats(), config.logIntervalSeconds * 1000);
  let summaries: TorrentSummary[];
  try {
    summaries = await engine.run();
  } finally {
    view.stop();
    stop.dispose();
    await Promise.allSettled(hooks);
    eventLog?.close();
  }
  if (summaries.length > 1) { for (const s of summaries) report(s, log); }
  else if (summaries[0]?.result === "complete") report(summaries[0], log);
  if (args.peerReport) writePeerReport(args.peerReport, engine.peers(), log);
  if (args.json) { for (const s of summaries) console.log(JSON.stringify(s)); }
  return exitCode(engine.stoppedBy, summaries);
}

function openEventLog(file: string): EventLog {
  try {
    return EventLog.open(file);
  } catch (e) {
    throw new ConfigError(
      `--events ${file}: ${e instanceof Error ? e.message : e}`,
    );
  }
}

function exitCode(
  stoppedBy: StopReason | null,
  summaries: TorrentSummary[],
): number {
  if (stoppedBy === "SIGINT") return ExitCode.Interrupted;
  if (stoppedBy === "SIGTERM") return ExitCode.Terminated;
  if (summaries.some((s) => s.result === "failed")) return ExitCode.Failure;
  if (summaries.some((s) => s.result === "invalid")) return ExitCode.BadInput;
  if (summaries.some((s) => s.result === "partial")) return ExitCode.Partial;
  return ExitCode.Complete;
}

/**
 * A torrent named on the command line is looked for where the user is, then
 * in torrentsDir: `download movie1.torrent` finds torrents/movie1.torrent.
 */
function locateTorrent(input: string, torrentsDir: string): string {
  if (isMagnet(input) || path.isAbsolute(input) || fs.existsSync(input)) {
    return input;
  }
  const inFolder = path.join(torrentsDir, input);
  if (fs.existsSync(inFolder)) return inFolder;
  throw new TorrentFileError(
    `cannot read ${input}: no such file here or in ${
      path.resolve(torrentsDir)
    }`,
  );
}

function listTorrentFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new TorrentFileError(
      `cannot read the torrents folder ${dir}: ${
        e instanceof Error ? e.message : e
      }`,
    );
  }
  return names.filter((n) => n.endsWith(".torrent") || n.endsWith(".magnet"))
    .sort().map((n) => path.join(dir, n));
}

function report(s: TorrentSummary, log: (line: string) => void): void {
  const traffic = `${formatBytes(s.bytesDown)} down, ${
    formatBytes(s.bytesUp)
  } up in ${formatDuration(s.seconds)}`;
  if (s.result === "complete") log(`complete: ${s.name}, ${traffic}`);
  else if (s.result === "partial") {
    log(
      `stopped before completing: ${s.name}, ${traffic}; the next run resumes`,
    );
  } else log(`${s.result}: ${s.name}: ${s.error ?? ""}`);
}

function writePeerReport(
  file: string,
  rows: PeerReportRow[],
  log: (l: string) => void,
): void {
  const format = file.toLowerCase().endsWith(".csv") ? "csv" : "json";
  try {
    fs.writeFileSync(file, formatPeerReport(rows, format));
    log(`peer report: ${rows.length} peers written to ${file}`);
  } catch (e) {
    log(
      `could not write the peer report ${file}: ${
        e instanceof Error ? e.message : e
      }`,
    );
  }
}

/** SIGINT, SIGTERM and the --max-minutes timer, as one promise of why to stop. */
function stopSignals(maxMinutes: number) {
  let resolve!: (reason: StopReason) => void;
  const promise = new Promise<StopReason>((r) => resolve = r);
  const onInt = () => resolve("SIGINT");
  const onTerm = () => resolve("SIGTERM");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  const timer = maxMinutes > 0
    ? setTimeout(() => resolve("time"), maxMinutes * 60_000)
    : undefined;
  return {
    promise,
    dispose: () => {
      clearTimeout(timer);
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
    },
  };
}
