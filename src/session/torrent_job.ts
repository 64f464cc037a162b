// One torrent's run inside the engine: read and check it, download what is
// missing, say it completed, seed to the goal, stop, and sum it up.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Config } from "../config.ts";
import {
  type Metainfo,
  parseMetainfo,
  TorrentFileError,
} from "../metainfo/metainfo.ts";
import { Bitfield } from "../pieces/bitfield.ts";
import type { Session } from "../session.ts";
import type { HandedOverPeer } from "../metadata/metadata_peer.ts";
import { loadOrCheck, resumePath, saveResume } from "../storage/resume.ts";
import { PieceStore } from "../storage/store.ts";
import type { Bandwidth } from "../swarm/bandwidth.ts";
import { Torrent } from "../torrent.ts";
import type { PeerAddress } from "../net/address.ts";
import { makePeerId } from "../version.ts";
import type { AnnouncePort } from "./announce_port.ts";
import type {
  EngineEvent,
  HaltReason,
  TorrentRef,
  TorrentSummary,
} from "./events.ts";

export interface JobContext {
  session: Session;
  listenPort: number;
  /** The port trackers and the DHT are told: the router's mapped port once port mapping worked, else listenPort. */
  announcePort: AnnouncePort;
  peers: PeerAddress[];
  download: Bandwidth;
  upload: Bandwidth;
  /** This torrent's share of the session's peer budget. */
  maxPeers: number;
  /** Live connections a magnet link's metadata fetch hands over. */
  handedOver?: HandedOverPeer[];
  /** The `seed` command: seed even without a goal, until stopped. */
  seedCommand: boolean;
  /**
   * Called once the data is complete and the torrent would seed: gives up
   * its download slot and says whether a seeding slot is free.
   */
  enterSeeding: () => boolean;
  stop: Promise<HaltReason>;
  emit: (event: EngineEvent) => void;
}

export class TorrentJob {
  /** The running torrent, while there is one (for progress and reports). */
  torrent: Torrent | null = null;
  /** The pieces were found by hashing, so no resume record vouches for them yet. */
  private checkedByHashing = false;
  /** check() has run: `have` says what is on disk. */
  checked = false;

  private constructor(
    readonly file: string,
    readonly meta: Metainfo,
    private store: PieceStore,
    private have: Bitfield,
    private config: Config,
  ) {}

  /** Reads and validates the torrent file; touches nothing on disk. */
  static open(file: string, config: Config): TorrentJob {
    return TorrentJob.fromMetainfo(
      file,
      parseMetainfo(readTorrentFile(file)),
      config,
    );
  }

  /** A job for a torrent already parsed (a magnet link's fetched metadata). */
  static fromMetainfo(
    file: string,
    meta: Metainfo,
    config: Config,
  ): TorrentJob {
    const store = new PieceStore(meta, path.resolve(config.downloadDir));
    return new TorrentJob(
      file,
      meta,
      store,
      new Bitfield(meta.pieceCount),
      config,
    );
  }

  /** Creates the files and finds which pieces are on disk (a resume file spares the hashing). */
  async check(emit: (event: EngineEvent) => void): Promise<void> {
    const meta = this.meta;
    const dir = path.resolve(this.config.downloadDir);
    this.store.prepare();
    const start = await loadOrCheck(
      this.store,
      resumePath(dir, meta),
      (done, total) => {
        emit({
          type: "status",
          text: `${meta.name}: checking existing data: ${done}/${total} pieces`,
        });
      },
    );
    this.have = start.have;
    this.checkedByHashing = !start.fromResume;
    this.checked = true;
    emit({
      type: "checked",
      torrent: this.ref,
      totalBytes: meta.totalLength,
      pieces: meta.pieceCount,
      verified: start.have.count,
      fromResume: start.fromResume,
      dir,
    });
  }

  get ref(): TorrentRef {
    return { name: this.meta.name, infoHash: this.meta.infoHashHex };
  }

  /** The files this torrent writes. */
  get paths(): string[] {
    return this.store.paths;
  }

  get willSeed(): boolean {
    return this.config.seedRatio > 0 || this.config.seedMinutes > 0;
  }

  /** Whether every piece is verified on disk. */
  get complete(): boolean {
    return this.have.complete;
  }

  /** Whether the job has anything to do on the network. */
  needsNetwork(seedCommand: boolean): boolean {
    return !this.have.complete || seedCommand || this.willSeed;
  }

  /** The summary of a job that had nothing to do. */
  finishOffline(): TorrentSummary {
    // Record what the check found, so the next run does not hash it again.
    if (this.checkedByHashing) {
      saveResume(
        this.store,
        resumePath(path.resolve(this.config.downloadDir), this.meta),
        this.have,
      );
    }
    this.store.close();
    return this.summary(this.have.complete ? "complete" : "partial", 0, 0, 0);
  }

  async run(ctx: JobContext): Promise<TorrentSummary> {
    const log = (text: string) => ctx.emit({ type: "log", text });
    const began = performance.now();
    const dir = path.resolve(this.config.downloadDir);
    const completeAtStart = this.have.complete;
    const torrent = new Torrent(this.meta, this.store, this.have, {
      config: { ...this.config, maxPeers: ctx.maxPeers },
      peerId: makePeerId(),
      resumeFile: resumePath(dir, this.meta),
      download: ctx.download,
      upload: ctx.upload,
      dht: ctx.session.dht,
      lsd: ctx.session.lsd,
      log,
      onEvent: (event) => ctx.emit({ ...event, torrent: this.ref }),
    });
    this.torrent = torrent;
    ctx.session.add(torrent);
    torrent.start(ctx.peers, ctx.announcePort.value);
    const unfollow = ctx.announcePort.follow((port) =>
      torrent.setAnnouncePort(port)
    );
    const handedOver = ctx.handedOver ?? [];
    ctx.emit({
      type: "started",
      torrent: this.ref,
      handedOver: handedOver.length,
    });
    for (const peer of handedOver) torrent.adoptHandedOver(peer);
    let stoppedBy: HaltReason | null = null;
    let failure: string | undefined;
    try {
      const first = await Promise.race([
        torrent.finished.then(() => null),
        ctx.stop,
      ]);
      stoppedBy = first;
      if (first === null && !completeAtStart) {
        ctx.emit({
          type: "complete",
          torrent: this.ref,
          path: path.join(dir, this.meta.name),
        });
      }
      if (
        first === null && (ctx.seedCommand || this.willSeed) &&
        !ctx.enterSeeding()
      ) {
        ctx.emit({
          type: "notSeeding",
          torrent: this.ref,
          why: "as many torrents as maxActiveSeeds allows are seeding",
        });
      } else if (first === null && (ctx.seedCommand || this.willSeed)) {
        ctx.emit({
          type: "seeding",
          torrent: this.ref,
          port: ctx.listenPort,
          goal: this.describeGoal(),
        });
        const goal = seedGoal(torrent, this.config);
        stoppedBy = await Promise.race([goal.reached, ctx.stop]);
        goal.cancel();
      }
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
      ctx.emit({ type: "error", torrent: this.ref, message: failure });
    } finally {
      unfollow();
      await torrent.stop();
      ctx.session.remove(torrent);
    }
    const seconds = (performance.now() - began) / 1000;
    // Complete means the data: seeding cut short does not make a download partial.
    const result = failure !== undefined
      ? "failed"
      : torrent.complete
      ? "complete"
      : "partial";
    const summary = this.summary(
      result,
      torrent.downloaded,
      torrent.uploaded,
      seconds,
    );
    if (failure !== undefined) summary.error = failure;
    const { wastedBytes, internalErrors } = torrent.stats();
    ctx.emit({
      type: "stopped",
      torrent: this.ref,
      summary,
      sources: torrent.sources(),
      piecesDone: torrent.have.count,
      pieceCount: this.meta.pieceCount,
      stoppedBy,
      wastedBytes,
      internalErrors,
    });
    return summary;
  }

  private describeGoal(): string {
    const goals = [];
    if (this.config.seedRatio > 0) goals.push(`ratio ${this.config.seedRatio}`);
    if (this.config.seedMinutes > 0) {
      goals.push(`${this.config.seedMinutes} min`);
    }
    return goals.length > 0 ? ` until ${goals.join(" or ")}` : " until stopped";
  }

  /** This torrent's summary with the given outcome and traffic. */
  summary(
    result: TorrentSummary["result"],
    down: number,
    up: number,
    seconds: number,
  ): TorrentSummary {
    return {
      name: this.meta.name,
      infoHash: this.meta.infoHashHex,
      file: this.file,
      result,
      bytesDown: down,
      bytesUp: up,
      seconds: Math.round(seconds * 1000) / 1000,
    };
  }
}

/** `reached` resolves once the seeding goal is met; never when there is none (seed until stopped). */
function seedGoal(
  torrent: Torrent,
  config: Config,
): { reached: Promise<null>; cancel: () => void } {
  let timer: ReturnType<typeof setInterval> | undefined;
  const reached = new Promise<null>((resolve) => {
    const since = performance.now();
    timer = setInterval(() => {
      const ratio = torrent.uploaded / torrent.meta.totalLength;
      const minutes = (performance.now() - since) / 60_000;
      if (
        (config.seedRatio > 0 && ratio >= config.seedRatio) ||
        (config.seedMinutes > 0 && minutes >= config.seedMinutes)
      ) resolve(null);
    }, 500);
  });
  return { reached, cancel: () => clearInterval(timer) };
}

function readTorrentFile(file: string): Uint8Array {
  let raw: Uint8Array;
  try {
    raw = fs.readFileSync(file);
  } catch (e) {
    throw new TorrentFileError(
      `cannot read ${file}: ${
        e instanceof Error ? e.message.split("\n")[0] : e
      }`,
    );
  }
  if (raw.length === 0) throw new TorrentFileError(`${file} is empty`);
  return raw;
}
