// The engine: the torrents and magnet links of one run, their queue and
// active limits (maxActiveDownloads, maxActiveSeeds), the global rate caps
// and the peer budget, the listen socket, port mapping, the DHT and LSD, and
// shutdown. A front end adds inputs, calls run(), and reads typed events
// (events.ts); the download folder is locked while it runs.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../config.ts";
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
import { type PeerReportRow, peerReportRows } from "../swarm/peer_report.ts";
import type { TorrentStats } from "../torrent.ts";
import type { PeerAddress } from "../net/address.ts";
import { AnnouncePort } from "./announce_port.ts";
import type {
  EngineEvent,
  HaltReason,
  StopReason,
  TorrentSummary,
} from "./events.ts";
import { FolderLock } from "./folder_lock.ts";
import { type FetchedMagnet, MagnetJob } from "./magnet_job.ts";
import { Slots } from "./slots.ts";
import { type JobContext, TorrentJob } from "./torrent_job.ts";

export interface EngineOptions {
  config: Config;
  /** Peers to dial for every torrent (--peer). */
  peers: PeerAddress[];
  /** The `seed` command: seed complete torrents even without a goal, until stopped. */
  seedCommand: boolean;
  onEvent: (event: EngineEvent) => void;
}

export class Engine {
  readonly #options: EngineOptions;
  readonly #jobs: TorrentJob[] = [];
  readonly #magnets: MagnetJob[] = [];
  readonly #summaries: TorrentSummary[] = [];
  readonly #reportRows: PeerReportRow[] = [];
  readonly #running = new Set<TorrentJob>();
  readonly #stop = Promise.withResolvers<StopReason>();
  #stoppedBy: StopReason | null = null;
  /** Ends one torrent's run early, by info-hash (hex), while it is queued or running. */
  readonly #halts = new Map<string, (why: "paused" | "removed") => void>();
  /** Paused torrents, to be run again by resume(). */
  readonly #paused = new Map<string, TorrentJob | MagnetJob>();
  readonly #haltedBy = new WeakMap<
    TorrentJob | MagnetJob,
    "paused" | "removed"
  >();
  readonly #haltSignals = new WeakMap<
    TorrentJob | MagnetJob,
    Promise<"paused" | "removed">
  >();
  /** Puts a resumed torrent back in the queue, while the run goes on. */
  #requeue: ((job: TorrentJob | MagnetJob) => void) | null = null;
  /** Wakes the scheduler when a resume or a last remove changes what it waits for. */
  #wake = Promise.withResolvers<void>();

  constructor(options: EngineOptions) {
    this.#options = options;
    this.#stop.promise.then((reason) => this.#stoppedBy = reason);
  }

  /**
   * Reads a .torrent file, a magnet link or a .magnet file; touches nothing
   * on disk. Bad input throws TorrentFileError or MagnetError, unless
   * `skipBadInput` (batch mode): then it is left out with a `skipped`
   * event and an invalid summary, and the others go on. `batch` lists every
   * input of the run: a magnet whose saved .torrent is among them is left
   * out.
   */
  async add(
    input: string,
    opts: { skipBadInput?: boolean; batch?: string[] } = {},
  ): Promise<void> {
    try {
      const job = await this.#open(input, opts.batch ?? []);
      if (job instanceof MagnetJob) this.#magnets.push(job);
      else if (job) this.#jobs.push(job);
    } catch (e) {
      const bad = e instanceof TorrentFileError || e instanceof MagnetError;
      if (!bad || !opts.skipBadInput) throw e;
      this.#skip(input, e.message);
    }
  }

  /** Ends every torrent cleanly (state saved, trackers told); run() then resolves. */
  stop(reason: StopReason): void {
    this.#stop.resolve(reason);
    this.#wake.resolve();
  }

  /**
   * Stops one torrent (by info-hash, hex) and keeps it for resume(): its
   * state is saved and its peers closed, as at a stop. False if it is not
   * queued or running.
   */
  pause(infoHash: string): boolean {
    const halt = this.#halts.get(infoHash.toLowerCase());
    halt?.("paused");
    return halt !== undefined;
  }

  /** Runs a paused torrent again: it checks its data and queues for a download slot. */
  resume(infoHash: string): boolean {
    const key = infoHash.toLowerCase();
    const job = this.#paused.get(key);
    if (!job || !this.#requeue) return false;
    this.#paused.delete(key);
    this.#requeue(job);
    return true;
  }

  /** Stops a torrent (queued, running or paused) for good; the run goes on without it. */
  remove(infoHash: string): boolean {
    const key = infoHash.toLowerCase();
    const paused = this.#paused.get(key);
    if (paused) {
      this.#paused.delete(key);
      this.#summaries.push(partialSummary(paused));
      this.#wake.resolve();
      return true;
    }
    const halt = this.#halts.get(key);
    halt?.("removed");
    return halt !== undefined;
  }

  /** Why the run was stopped, if it was. */
  get stoppedBy(): StopReason | null {
    return this.#stoppedBy;
  }

  /** The totals of the torrents running now. */
  stats(): TorrentStats {
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
    for (const job of this.#running) {
      const s = job.torrent?.stats();
      if (!s) continue;
      for (const key of Object.keys(total) as (keyof TorrentStats)[]) {
        total[key] += s[key];
      }
    }
    return total;
  }

  /** Every peer of the torrents that have ended, with its rating. */
  peers(): PeerReportRow[] {
    return [...this.#reportRows];
  }

  /** Locks the download folder, checks the data, and runs every torrent to its end; one summary each. */
  async run(): Promise<TorrentSummary[]> {
    const { config } = this.#options;
    this.#refuseSharedFiles();
    this.#dropDuplicateMagnets();
    const lock = await FolderLock.acquire(path.resolve(config.downloadDir));
    try {
      for (const job of this.#jobs) await job.check(this.#emit);
      await this.#runAll();
    } finally {
      lock.release();
    }
    return this.#summaries;
  }

  readonly #emit = (event: EngineEvent): void => this.#options.onEvent(event);

  #log(text: string): void {
    this.#emit({ type: "log", text });
  }

  async #runAll(): Promise<void> {
    const { config, seedCommand } = this.#options;
    const online = this.#jobs.filter((j) => j.needsNetwork(seedCommand));
    for (const job of this.#jobs) {
      if (!online.includes(job)) {
        this.#emit({ type: "alreadyComplete", torrent: job.ref });
        this.#summaries.push(job.finishOffline());
      }
    }
    if (online.length + this.#magnets.length === 0) return;
    const log = (text: string) => this.#log(text);
    const session = new Session(config.connectTimeoutSeconds * 1000, log);
    let mapper: PortMapper | null = null;
    try {
      const listenPort = session.listen(config.listenPort);
      // BEP 27: private torrents never use them, so a run of only those starts neither.
      const anyPublic = this.#magnets.length > 0 ||
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
            this.#emit({ type: "portMapped", ...mapped });
            if (mapped.externalPort !== announcePort.value) {
              this.#emit({ type: "announcePort", port: mapped.externalPort });
            }
            announcePort.set(mapped.externalPort);
          },
        });
      }
      await this.#schedule(online, {
        session,
        listenPort,
        announcePort,
        download: new Bandwidth(config.downloadLimit),
        upload: new Bandwidth(config.uploadLimit),
      });
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
    }
  }

  /**
   * Complete torrents seed at once (maxActiveSeeds of them); the others
   * download maxActiveDownloads at a time and then seed, if a seeding slot
   * is free, giving their download slot to the next in line.
   */
  async #schedule(
    online: TorrentJob[],
    shared: Pick<
      JobContext,
      "session" | "listenPort" | "announcePort" | "download" | "upload"
    >,
  ): Promise<void> {
    const { config } = this.#options;
    const seeds = online.filter((j) => j.complete);
    const queue: (TorrentJob | MagnetJob)[] = [
      ...online.filter((j) => !j.complete),
      ...this.#magnets,
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
    // Files the torrents of this run write: a fetched magnet may not share them.
    const claimed = new Set(this.#jobs.flatMap((j) => j.paths));
    const runJob = async (
      next: TorrentJob | MagnetJob,
      downloading: boolean,
    ): Promise<void> => {
      let held: Slots | null = downloading ? downloadSlots : null;
      if (!this.#haltSignals.has(next)) this.#haltable(next);
      const halted = this.#haltSignals.get(next)!;
      const ctx: JobContext = {
        ...shared,
        peers: this.#options.peers,
        maxPeers,
        seedCommand: this.#options.seedCommand,
        enterSeeding: () => {
          held?.release();
          held = seedSlots.tryTake() ? seedSlots : null;
          return held !== null;
        },
        emit: this.#emit,
        stop: Promise.race<HaltReason>([this.#stop.promise, halted]),
      };
      try {
        await this.#runOne(
          next,
          ctx,
          claimed,
          () => this.#haltedBy.get(next) ?? null,
        );
      } finally {
        held?.release();
        this.#halts.delete(jobKey(next));
      }
    };
    const runs = new Set<Promise<void>>();
    const start = (job: TorrentJob | MagnetJob, downloading: boolean) => {
      const run = runJob(job, downloading).finally(() => runs.delete(run));
      runs.add(run);
    };
    for (const job of seeds) start(job, false);
    const queued: (TorrentJob | MagnetJob)[] = [...queue];
    for (const job of queued) this.#haltable(job);
    this.#requeue = (job) => {
      this.#haltable(job);
      queued.push(job);
      this.#wake.resolve();
    };
    // Until nothing runs, waits in the queue or is paused (and the run was not stopped).
    while (true) {
      const next = queued.shift();
      if (next !== undefined) {
        await downloadSlots.take();
        start(next, true);
        continue;
      }
      if (runs.size === 0 && (this.#paused.size === 0 || this.#stoppedBy)) {
        break;
      }
      this.#wake = Promise.withResolvers<void>();
      await Promise.race([...runs, this.#wake.promise]);
    }
    this.#requeue = null;
    for (const job of this.#paused.values()) {
      this.#summaries.push(partialSummary(job));
    }
    this.#paused.clear();
  }

  /** Makes a queued torrent one that pause() and remove() can end. */
  #haltable(job: TorrentJob | MagnetJob): void {
    this.#haltedBy.delete(job);
    const halt = Promise.withResolvers<"paused" | "removed">();
    this.#halts.set(jobKey(job), (why) => {
      this.#haltedBy.set(job, why);
      halt.resolve(why);
    });
    this.#haltSignals.set(job, halt.promise);
  }

  async #runOne(
    next: TorrentJob | MagnetJob,
    ctx: JobContext,
    claimed: Set<string>,
    haltedBy: () => "paused" | "removed" | null,
  ): Promise<void> {
    let job = next;
    const ended = (summary: TorrentSummary) => {
      // A paused torrent has no summary yet: it is kept, to run again.
      if (haltedBy() === "paused" && this.#stoppedBy === null) {
        this.#paused.set(jobKey(next), reopened(job, this.#options.config));
      } else this.#summaries.push(summary);
    };
    if (this.#stoppedBy !== null || haltedBy() !== null) {
      ended(
        job instanceof MagnetJob
          ? magnetSummary(job, "partial")
          : job.finishOffline(),
      );
      return;
    }
    if (job instanceof MagnetJob) {
      const magnet = job;
      const fetched = await this.#fetchMetadata(magnet, ctx);
      if ("result" in fetched) {
        ended(fetched);
        return;
      }
      const clash = fetched.job.paths.find((p) => claimed.has(p));
      if (clash !== undefined) {
        for (const peer of fetched.handedOver) peer.opened.conn.close();
        const why =
          `${job.file} would write ${clash}, as another torrent of this run does`;
        this.#emit({ type: "skipped", file: job.file, reason: why });
        this.#summaries.push(magnetSummary(job, "invalid", why));
        return;
      }
      job = fetched.job;
      for (const p of job.paths) claimed.add(p);
      try {
        await job.check(this.#emit);
      } catch (e) {
        for (const peer of fetched.handedOver) peer.opened.conn.close();
        const why = e instanceof Error ? e.message : String(e);
        this.#emit({ type: "error", torrent: job.ref, message: why });
        this.#summaries.push(magnetSummary(magnet, "failed", why));
        return;
      }
      ctx.peers = [...this.#options.peers, ...fetched.peers];
      ctx.handedOver = fetched.handedOver;
    }
    // A resumed torrent checks its data again: it may have changed meanwhile.
    if (!job.checked) await job.check(this.#emit);
    this.#running.add(job);
    const summary = await job.run(ctx);
    this.#running.delete(job);
    ended(summary);
    if (job.torrent) {
      this.#reportRows.push(
        ...peerReportRows(job.torrent.swarm.peers.values()),
      );
    }
  }

  /**
   * A .torrent file, a magnet link or a .magnet file. A magnet whose metadata
   * was saved by an earlier run opens that .torrent instead; in batch mode one
   * whose saved .torrent is in the list anyway is left out (null).
   */
  async #open(
    input: string,
    batch: string[],
  ): Promise<TorrentJob | MagnetJob | null> {
    const { config } = this.#options;
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
          this.#log(`${name}: using the metadata saved in ${saved}`);
          return job;
        }
        this.#log(
          `${name}: ${saved} is another torrent; fetching the metadata again`,
        );
      } catch (e) {
        if (!(e instanceof TorrentFileError)) throw e;
        this.#log(
          `${name}: ${saved} is unusable (${e.message}); fetching the metadata again`,
        );
      }
    }
    return new MagnetJob(input, link, config);
  }

  /** Runs a magnet link's metadata fetch; a summary when it ends there. */
  async #fetchMetadata(
    job: MagnetJob,
    ctx: JobContext,
  ): Promise<FetchedMagnet | TorrentSummary> {
    try {
      const fetched = await job.fetch(ctx);
      if (typeof fetched === "string") {
        this.#log(
          `${job.name}: stopped by ${
            fetched === "time" ? "--max-minutes" : fetched
          } before the metadata arrived`,
        );
        return magnetSummary(job, "partial");
      }
      return fetched;
    } catch (e) {
      if (!(e instanceof TorrentFileError)) throw e;
      this.#log(
        `${job.name}: the fetched metadata is not a usable torrent: ${e.message}`,
      );
      return magnetSummary(job, "invalid", e.message);
    }
  }

  #skip(file: string, reason: string): void {
    this.#emit({ type: "skipped", file, reason });
    this.#summaries.push({
      name: path.basename(file),
      infoHash: "",
      file,
      result: "invalid",
      bytesDown: 0,
      bytesUp: 0,
      seconds: 0,
      error: reason,
    });
  }

  /** A magnet link for a torrent also given as a .torrent would download it twice at once: the .torrent wins. */
  #dropDuplicateMagnets(): void {
    const known = new Set(this.#jobs.map((j) => j.meta.infoHashHex));
    for (const magnet of [...this.#magnets]) {
      if (known.has(magnet.link.infoHashHex)) {
        this.#emit({
          type: "skipped",
          file: magnet.file,
          reason: "the same torrent is in this run already",
        });
        this.#magnets.splice(this.#magnets.indexOf(magnet), 1);
      }
      known.add(magnet.link.infoHashHex);
    }
  }

  /** Two torrents that would write the same file would corrupt each other: the later one is skipped. */
  #refuseSharedFiles(): void {
    const owners = new Map<string, TorrentJob>();
    for (const job of [...this.#jobs]) {
      const clash = job.paths.map((p) => owners.get(p)).find((o) =>
        o !== undefined
      );
      if (clash) {
        this.#skip(
          job.file,
          `${job.file} would write the same files as ${clash.file}`,
        );
        this.#jobs.splice(this.#jobs.indexOf(job), 1);
        continue;
      }
      for (const p of job.paths) owners.set(p, job);
    }
  }
}

function jobKey(job: TorrentJob | MagnetJob): string {
  return job instanceof MagnetJob ? job.link.infoHashHex : job.meta.infoHashHex;
}

/** A paused job, made anew to run again: its files were closed at the pause. */
function reopened(
  job: TorrentJob | MagnetJob,
  config: Config,
): TorrentJob | MagnetJob {
  return job instanceof MagnetJob
    ? job
    : TorrentJob.fromMetainfo(job.file, job.meta, config);
}

function partialSummary(job: TorrentJob | MagnetJob): TorrentSummary {
  return job instanceof MagnetJob
    ? magnetSummary(job, "partial")
    : job.summary("partial", 0, 0, 0);
}

function magnetSummary(
  job: MagnetJob,
  result: TorrentSummary["result"],
  error?: string,
): TorrentSummary {
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
