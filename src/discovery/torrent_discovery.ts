// Where one torrent's addresses come from besides --peer and incoming
// connections: its trackers (BEP 3, BEP 12 tiers, BEP 15), and for a public
// torrent the DHT (BEP 5) and local discovery (BEP 14). BEP 27: a private
// torrent uses its trackers only.

import type { Config } from "../config.ts";
import type { Metainfo } from "../metainfo/metainfo.ts";
import { Announcer } from "../tracker/announcer.ts";
import type { PeerAddress } from "../net/address.ts";
import {
  type DhtService,
  type LocalDiscoveryService,
  PeerSources,
} from "./peer_sources.ts";

/** What discovery takes of the torrent's options. */
export interface DiscoveryContext {
  config: Config;
  peerId: Uint8Array;
  /** The session's DHT node and local discovery, if running. */
  dht: DhtService | null;
  lsd: LocalDiscoveryService | null;
  log: (line: string) => void;
}

/** What trackers are told we moved and have left. */
export type TransferStats = () => {
  uploaded: number;
  downloaded: number;
  left: number;
};

/** Time trackers get to hear our "stopped" at the end. */
const STOPPED_ANNOUNCE_MS = 3000;

export class TorrentDiscovery {
  private announcer: Announcer | null = null;
  private sources: PeerSources | null = null;

  constructor(
    private meta: Metainfo,
    private context: DiscoveryContext,
    private stats: TransferStats,
    private onPeers: (peers: PeerAddress[], source: string) => void,
  ) {}

  /** Starts announcing `port` to the trackers and the DHT. */
  start(port: number): void {
    const { meta, onPeers } = this;
    const { config: c, log } = this.context;
    if (meta.trackers.length > 0) {
      this.announcer = new Announcer(meta.trackers, {
        infoHash: meta.infoHash,
        peerId: this.context.peerId,
        port,
        numWant: c.numWant,
        timeoutMs: c.trackerTimeoutSeconds * 1000,
        udpMaxRetries: c.udpTrackerRetries,
        minReannounceSeconds: c.minReannounceSeconds,
        stats: this.stats,
        onPeers,
        log,
      });
      this.announcer.start();
    }
    const dht = meta.private ? null : this.context.dht;
    const lsd = meta.private ? null : this.context.lsd;
    if (dht || lsd) {
      this.sources = new PeerSources({
        infoHash: meta.infoHash,
        infoHashHex: meta.infoHashHex,
        dht,
        lsd,
        announcePort: port,
        onPeers,
        log,
      });
      this.sources.start();
    }
  }

  /** Trackers and the DHT are told `port` from now on (a port mapping made or moved). */
  setPort(port: number): void {
    this.announcer?.setPort(port);
    this.sources?.setAnnouncePort(port);
  }

  /** A dial's outcome: the tracker that named the peer tries the next when all its peers fail. */
  peerDialled(peer: PeerAddress, reached: boolean): void {
    this.announcer?.peerDialled(peer, reached);
  }

  /** The swarm is short of peers: ask again soon. */
  needPeers(): void {
    this.announcer?.needPeers();
    this.sources?.needPeers();
  }

  /** Every piece is verified: trackers hear "completed". */
  completed(): void {
    this.announcer?.completed();
  }

  /** Stops lookups and tells trackers "stopped" (bounded). */
  async stop(): Promise<void> {
    this.sources?.stop();
    await this.announcer?.stop(STOPPED_ANNOUNCE_MS);
  }
}
