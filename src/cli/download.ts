// `download <file.torrent>`: check what is on disk, fetch the rest from
// trackers' and --peer peers, show progress, stop cleanly on a signal.

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
import { Torrent } from "../torrent.ts";
import { makePeerId } from "../version.ts";
import type { DownloadArgs } from "./args.ts";
import { formatBytes, formatDuration, formatRate } from "./format.ts";
import { ProgressView } from "./progress.ts";

export const ExitCode = {
  Complete: 0,
  Failure: 1,
  BadInput: 2,
  Interrupted: 130,
  Terminated: 143,
} as const;

export async function download(args: DownloadArgs): Promise<number> {
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
    log,
  });
  // A complete torrent needs no port (seeding comes with the upload work).
  const listenPort = start.have.complete
    ? 0
    : session.listen(config.listenPort);
  session.add(torrent);

  const began = performance.now();
  const signalled = waitForSignal();
  torrent.start(args.peers, listenPort);
  view.follow(() => torrent.stats());
  let code: number;
  try {
    const outcome = await Promise.race([
      torrent.finished.then(() => "complete" as const),
      signalled.promise,
    ]);
    code = outcome === "complete"
      ? ExitCode.Complete
      : outcome === "SIGINT"
      ? ExitCode.Interrupted
      : ExitCode.Terminated;
  } catch (e) {
    view.stop();
    await shutdown(torrent, session, signalled.remove);
    throw e;
  }
  view.stop(torrent.stats());
  await shutdown(torrent, session, signalled.remove);
  const seconds = (performance.now() - began) / 1000;
  const sources = torrent.sources();
  if (sources.length > 0) {
    const shown = sources.slice(0, 8).map((s) =>
      `${s.address} ${formatBytes(s.bytes)}`
    );
    if (sources.length > 8) shown.push(`and ${sources.length - 8} more`);
    log(`received from: ${shown.join(", ")}`);
  }
  if (code === ExitCode.Complete) {
    log(
      `complete: ${meta.name}, ${
        formatBytes(torrent.downloaded)
      } downloaded in ` +
        `${formatDuration(seconds)} (${
          formatRate(torrent.downloaded / Math.max(seconds, 0.001))
        })`,
    );
  } else {
    log(
      `stopped at ${torrent.have.count}/${meta.pieceCount} pieces; the next run resumes from there`,
    );
  }
  return code;
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

function loadConfig(args: DownloadArgs): Config {
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
  const flags: Record<string, unknown> = {};
  if (args.dir !== undefined) flags.downloadDir = args.dir;
  if (args.port !== undefined) flags.listenPort = args.port;
  return applyOverrides(config, flags, "command line");
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
