// What the engine tells its front end, like libtorrent's alerts: typed
// events for everything a front end shows or acts on, and `log` for the
// free-text lines of the layers below (trackers, peers, the DHT, port
// mapping), which a front end prints as they are.

import type { SwarmEvent } from "../swarm/events.ts";

export interface TorrentRef {
  name: string;
  /** 40 hex digits. */
  infoHash: string;
}

/** Why the whole run ends early: a signal, or --max-minutes. */
export type StopReason = "SIGINT" | "SIGTERM" | "time";

/** Why one torrent's run ended early: the run's reason, or the engine's pause() or remove(). */
export type HaltReason = StopReason | "paused" | "removed";

export interface TorrentSummary {
  name: string;
  infoHash: string;
  file: string;
  /** complete: verified on disk (and seeded to the goal); partial: stopped first; failed: a disk error; invalid: a bad torrent file. */
  result: "complete" | "partial" | "failed" | "invalid";
  bytesDown: number;
  bytesUp: number;
  seconds: number;
  error?: string;
}

export type EngineEvent =
  | { type: "log"; text: string }
  /** A ban, a protocol drop or a failed piece in one torrent's swarm. */
  | (SwarmEvent & { torrent: TorrentRef })
  /** A transient progress line (the data check), redrawn in place on a terminal. */
  | { type: "status"; text: string }
  /** An input left out of the run (batch mode goes on without it). */
  | { type: "skipped"; file: string; reason: string }
  | {
    type: "checked";
    torrent: TorrentRef;
    totalBytes: number;
    pieces: number;
    verified: number;
    fromResume: boolean;
    dir: string;
  }
  /** Complete on disk and nothing to do on the network. */
  | { type: "alreadyComplete"; torrent: TorrentRef }
  | { type: "metadataFetching"; torrent: TorrentRef }
  | {
    type: "metadata";
    torrent: TorrentRef;
    bytes: number;
    savedAs: string;
    /** Why it could not be saved (the download goes on). */
    saveError?: string;
  }
  | { type: "started"; torrent: TorrentRef; handedOver: number }
  /** Every piece verified in this run: the completion hook's moment. */
  | { type: "complete"; torrent: TorrentRef; path: string }
  | { type: "seeding"; torrent: TorrentRef; port: number; goal: string }
  | { type: "notSeeding"; torrent: TorrentRef; why: string }
  /** The router forwards our TCP port (again, after a move or a restart). */
  | {
    type: "portMapped";
    externalAddress: string;
    externalPort: number;
    internalPort: number;
    method: "pcp" | "natpmp" | "upnp";
    gateway: string;
    lifetimeSeconds: number;
  }
  | { type: "announcePort"; port: number }
  | {
    type: "stopped";
    torrent: TorrentRef;
    summary: TorrentSummary;
    /** Who sent how much, most first. */
    sources: { address: string; bytes: number }[];
    piecesDone: number;
    pieceCount: number;
    stoppedBy: HaltReason | null;
    wastedBytes: number;
    internalErrors: number;
  }
  | { type: "error"; torrent?: TorrentRef; message: string };
