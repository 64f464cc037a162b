// `download` and `seed`: one torrent, or (download with no torrent) every
// .torrent file in torrentsDir. One session: one listen port, one pair of
// global rate caps, one peer budget shared by the torrents downloading at
// once (maxActiveDownloads), and up to maxActiveSeeds torrents seeding. The download folder is locked for the run; SIGINT,
// SIGTERM and --max-minutes stop every torrent cleanly, saving state.

import * as fs from "node:fs";
import * as path from "node:path";
import {
  isMagnet,
  MagnetError,
  type MagnetLink,
  parseMagnet,
  readMagnetFile,
} from "../metainfo/magnet.ts";
import { TorrentFileError } from "../metainfo/metainfo.ts";
import { PortMapper, type PortMapperOptions } from "../nat/port_mapper.ts";
import { Session } from "../session.ts";
import { Bandwidth } from "../swarm/bandwidth.ts";
import {
  formatPeerReport,
  type PeerReportRow,
  peerReportRows,
} from "../swarm/peer_report.ts";
import type { TorrentStats } from "../torrent.ts";
import { AnnouncePort } from "./announce_port.ts";
import { Slots } from "./slots.ts";
import type { TorrentArgs } from "./args.ts";
import { loadConfig } from "./config_file.ts";
import { FolderLock } from "./folder_lock.ts";
import { formatBytes, formatDuration } from "./format.ts";
import { type FetchedMagnet, MagnetJob } from "./magnet_job.ts";
import { ProgressView } from "./progress.ts";
import {
  type JobContext,
  type JobSummary,
  type StopReason,
  TorrentJob,
} from "./torrent_job.ts";

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
  // Torrent files are read before the lock, so a bad one changes nothing on disk.
  const jobs: TorrentJob[] = [];
  const magnets: MagnetJob[] = [];
  const invalid: JobSummary[] = [];
  for (const file of files) {
    try {
      const job = await openInput(file, config, files, log);
      if (job instanceof MagnetJob) magnets.push(job);
      else if (job) jobs.push(job);
    } catch (e) {
      // A bad file stops a single download; in batch mode the others go on.
      const bad = e instanceof TorrentFileError || e instanceof MagnetError;
      if (!bad || args.torrent !== undefined) throw e;
      log(`skipping ${file}: ${e.message}`);
      invalid.push(invalidSummary(file, e.message));
    }
  }
  refuseSharedFiles(jobs, invalid, log);
  dropDuplicateMagnets(magnets, jobs, log);
  const lock = await FolderLock.acquire(path.resolve(config.downloadDir));
  try {
    for (const job of jobs) await job.check((l) => view.status(l), log);
    return await runAll(jobs, magnets, invalid, args, config, view, log);
  } finally {
    lock.release();
  }
}

async function runAll(
  jobs: TorrentJob[],
  magnets: MagnetJob[],
  invalid: JobSummary[],
  args: TorrentArgs,
  config: ReturnType<typeof loadConfig>["config"],
  view: ProgressView,
  log: (line: string) => void,
): Promise<number> {
  const summaries: JobSummary[] = [...invalid];
  const reportRows: PeerReportRow[] = [];
  const seedCommand = args.command === "seed";
  const online = jobs.filter((j) => j.needsNetwork(seedCommand));
  for (const job of jobs) {
    if (!online.includes(job)) {
      log(`complete: ${job.meta.name} was already verified on disk`);
      summaries.push(job.finishOffline());
    }
  }

  const stop = stopSignals(config.maxMinutes);
  let stoppedBy: StopReason | null = null;
  stop.promise.then((reason) => stoppedBy = reason);
  const hooks: Promise<void>[] = [];
  const session = new Session(config.connectTimeoutSeconds * 1000, log);
  let mapper: PortMapper | null = null;
  try {
    if (online.length + magnets.length > 0) {
      const listenPort = session.listen(config.listenPort);
      // BEP 27: private torrents never use them, so a run of only those starts neither.
      const anyPublic = magnets.length > 0 ||
        online.some((j) => !j.meta.private);
      await session.startDiscovery({
        dht: config.dht && anyPublic,
        dhtBootstrap: config.dhtBootstrap,
        lsd: config.lsd && anyPublic,
        stateDir: path.join(path.resolve(config.downloadDir), ".btclient"),
      }, listenPort);
      // Nothing waits for the mapping: peers are dialled and trackers told
      // the listen port now, and told again once the router's port is known.
      const announcePort = new AnnouncePort(listenPort);
      if (config.portMapping !== "off") {
        mapper = PortMapper.start({
          method: config.portMapping as PortMapperOptions["method"],
          gateway: config.gateway,
          tcpPort: listenPort,
          udpPort: session.dht?.port,
          leaseSeconds: config.portMappingLeaseSeconds,
          log,
          onExternalPort: (mapped) => {
            if (mapped.externalPort !== announcePort.value) {
              log(
                `port mapping: trackers and the DHT are told port ${mapped.externalPort} from now on`,
              );
            }
            announcePort.set(mapped.externalPort);
          },
        });
      }
      const download = new Bandwidth(config.downloadLimit);
      const upload = new Bandwidth(config.uploadLimit);
      // Complete torrents seed at once (maxActiveSeeds of them); the others
      // download maxActiveDownloads at a time and then seed, if a seeding
      // slot is free, giving their download slot to the next in line.
      const seeds = online.filter((j) => j.complete);
      const queue: (TorrentJob | MagnetJob)[] = [
        ...online.filter((j) => !j.complete),
        ...magnets,
      ];
      const downloadSlots = new Slots(config.maxActiveDownloads);
      const seedSlots = new Slots(config.maxActiveSeeds);
      // The peer budget, shared evenly by the torrents downloading at once;
      // a seeding torrent may have as many peers as a download.
      const maxPeers = Math.max(
        1,
        Math.floor(
          config.maxPeers /
            Math.max(1, Math.min(config.maxActiveDownloads, queue.length)),
        ),
      );
      const running = new Set<TorrentJob>();
      view.follow(() => totalStats([...running]));
      // Files the torrents of this run write: a fetched magnet may not share them.
      const claimed = new Set(jobs.flatMap((j) => j.paths));
      const runJob = async (
        next: TorrentJob | MagnetJob,
        downloading: boolean,
      ): Promise<void> => {
        let held: Slots | null = downloading ? downloadSlots : null;
        try {
          await runOne(next, () => {
            held?.release();
            held = seedSlots.tryTake() ? seedSlots : null;
            return held !== null;
          });
        } finally {
          held?.release();
        }
      };
      const runOne = async (
        next: TorrentJob | MagnetJob,
        enterSeeding: () => boolean,
      ): Promise<void> => {
        let job = next;
        if (stoppedBy !== null) {
          summaries.push(
            job instanceof MagnetJob
              ? magnetSummary(job, "partial")
              : job.finishOffline(),
          );
          return;
        }
        const ctx: JobContext = {
          session,
          listenPort,
          announcePort,
          peers: args.peers,
          download,
          upload,
          maxPeers,
          seedCommand,
          enterSeeding,
          log,
          stop: stop.promise,
        };
        if (job instanceof MagnetJob) {
          const magnet = job;
          const fetched = await fetchMetadata(magnet, ctx, log);
          if ("result" in fetched) {
            summaries.push(fetched);
            return;
          }
          const clash = fetched.job.paths.find((p) => claimed.has(p));
          if (clash !== undefined) {
            for (const peer of fetched.handedOver) peer.opened.conn.close();
            const why =
              `${job.file} would write ${clash}, as another torrent of this run does`;
            log(`skipping ${why}`);
            summaries.push(magnetSummary(job, "invalid", why));
            return;
          }
          job = fetched.job;
          for (const p of job.paths) claimed.add(p);
          try {
            await job.check((l) => view.status(l), log);
          } catch (e) {
            for (const peer of fetched.handedOver) peer.opened.conn.close();
            const why = e instanceof Error ? e.message : String(e);
            log(`${job.meta.name}: ${why}`);
            summaries.push(magnetSummary(magnet, "failed", why));
            return;
          }
          ctx.peers = [...args.peers, ...fetched.peers];
          ctx.handedOver = fetched.handedOver;
        }
        running.add(job);
        summaries.push(await job.run(ctx, hooks));
        running.delete(job);
        if (job.torrent) {
          reportRows.push(...peerReportRows(job.torrent.swarm.peers.values()));
        }
      };
      const runs = seeds.map((job) => runJob(job, false));
      for (const job of queue) {
        await downloadSlots.take();
        runs.push(runJob(job, true));
      }
      await Promise.all(runs);
      view.stop();
    }
  } finally {
    try {
      await mapper?.close();
    } catch (e) {
      // A port mapping problem must not keep the session from closing.
      log(
        `port mapping: closing failed: ${e instanceof Error ? e.message : e}`,
      );
    }
    await session.close();
    stop.dispose();
    await Promise.allSettled(hooks);
  }
  if (summaries.length > 1) { for (const s of summaries) report(s, log); }
  else if (summaries[0]?.result === "complete") report(summaries[0], log);
  if (args.peerReport) writePeerReport(args.peerReport, reportRows, log);
  if (args.json) { for (const s of summaries) console.log(JSON.stringify(s)); }
  if (stoppedBy === "SIGINT") return ExitCode.Interrupted;
  if (stoppedBy === "SIGTERM") return ExitCode.Terminated;
  if (summaries.some((s) => s.result === "failed")) return ExitCode.Failure;
  if (summaries.some((s) => s.result === "invalid")) return ExitCode.BadInput;
  if (summaries.some((s) => s.result === "partial")) return ExitCode.Partial;
  return ExitCode.Complete;
}

/**
 * A .torrent file, a magnet link or a .magnet file. A magnet whose metadata
 * was saved by an earlier run opens that .torrent instead; in batch mode one
 * whose saved .torrent is in the list anyway is left out (null).
 */
async function openInput(
  input: string,
  config: ReturnType<typeof loadConfig>["config"],
  batch: string[],
  log: (line: string) => void,
): Promise<TorrentJob | MagnetJob | null> {
  let link: MagnetLink;
  if (isMagnet(input)) link = parseMagnet(input);
  else if (input.toLowerCase().endsWith(".magnet")) {
    link = await readMagnetFile(input);
  } else return TorrentJob.open(input, config);
  const saved = MagnetJob.savedTorrentPath(config, link.infoHashHex);
  if (batch.includes(saved)) return null;
  if (fs.existsSync(saved)) {
    const name = link.name ?? link.infoHashHex;
    try {
      const job = TorrentJob.open(saved, config);
      if (job.meta.infoHashHex === link.infoHashHex) {
        log(`${name}: using the metadata saved in ${saved}`);
        return job;
      }
      log(`${name}: ${saved} is another torrent; fetching the metadata again`);
    } catch (e) {
      if (!(e instanceof TorrentFileError)) throw e;
      log(
        `${name}: ${saved} is unusable (${e.message}); fetching the metadata again`,
      );
    }
  }
  return new MagnetJob(input, link, config);
}

/** Runs a magnet link's metadata fetch; a summary when it ends there. */
async function fetchMetadata(
  job: MagnetJob,
  ctx: JobContext,
  log: (line: string) => void,
): Promise<FetchedMagnet | JobSummary> {
  try {
    const fetched = await job.fetch(ctx);
    if (typeof fetched === "string") {
      log(
        `${job.name}: stopped by ${
          fetched === "time" ? "--max-minutes" : fetched
        } before the metadata arrived`,
      );
      return magnetSummary(job, "partial");
    }
    return fetched;
  } catch (e) {
    if (!(e instanceof TorrentFileError)) throw e;
    log(
      `${job.name}: the fetched metadata is not a usable torrent: ${e.message}`,
    );
    return magnetSummary(job, "invalid", e.message);
  }
}

function magnetSummary(
  job: MagnetJob,
  result: JobSummary["result"],
  error?: string,
): JobSummary {
  return {
    name: job.name,
    infoHash: job.link.infoHashHex,
    file: job.file,
    result,
    bytesDown: 0,
    bytesUp: 0,
    seconds: 0,
    ...(error !== undefined ? { error } : {}),
  };
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

/** A magnet link for a torrent that is also given as a .torrent would download it twice at once: the .torrent wins. */
function dropDuplicateMagnets(
  magnets: MagnetJob[],
  jobs: TorrentJob[],
  log: (line: string) => void,
): void {
  const known = new Set(jobs.map((j) => j.meta.infoHashHex));
  for (const magnet of [...magnets]) {
    if (known.has(magnet.link.infoHashHex)) {
      log(`skipping ${magnet.file}: the same torrent is in this run already`);
      magnets.splice(magnets.indexOf(magnet), 1);
    }
    known.add(magnet.link.infoHashHex);
  }
}

/** Two torrents that would write the same file would corrupt each other: the later one is skipped. */
function refuseSharedFiles(
  jobs: TorrentJob[],
  invalid: JobSummary[],
  log: (line: string) => void,
): void {
  const owners = new Map<string, TorrentJob>();
  for (const job of [...jobs]) {
    const clash = job.paths.map((p) => owners.get(p)).find((o) =>
      o !== undefined
    );
    if (clash) {
      const why = `${job.file} would write the same files as ${clash.file}`;
      log(`skipping ${why}`);
      invalid.push(invalidSummary(job.file, why));
      jobs.splice(jobs.indexOf(job), 1);
      continue;
    }
    for (const p of job.paths) owners.set(p, job);
  }
}

function invalidSummary(file: string, error: string): JobSummary {
  return {
    name: path.basename(file),
    infoHash: "",
    file,
    result: "invalid",
    bytesDown: 0,
    bytesUp: 0,
    seconds: 0,
    error,
  };
}

function totalStats(jobs: TorrentJob[]): TorrentStats {
  const total: TorrentStats = {
    piecesDone: 0,
    pieceCount: 0,
    bytesDone: 0,
    totalBytes: 0,
    downloadRate: 0,
    uploadRate: 0,
    peers: 0,
    knownPeers: 0,
    wastedBytes: 0,
    internalErrors: 0,
  };
  for (const job of jobs) {
    const s = job.torrent?.stats();
    if (!s) continue;
    for (const key of Object.keys(total) as (keyof TorrentStats)[]) {
      total[key] += s[key];
    }
  }
  return total;
}

function report(s: JobSummary, log: (line: string) => void): void {
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
