// The trackerless peer sources of one torrent: periodic DHT lookups (BEP 5)
// that also announce our port, and Local Service Discovery (BEP 14). A
// private torrent (BEP 27) never gets one: it uses its trackers only.

import type { PeerAddress } from "../net/address.ts";

/** What a torrent needs of the session's DHT node. */
export interface DhtService {
  readonly port: number;
  addNode(host: string, port: number): void;
  lookup(
    infoHash: Uint8Array,
    onPeers: (peers: PeerAddress[]) => void,
    announcePort?: number,
  ): Promise<unknown>;
}

/** What a torrent needs of the session's local discovery. */
export interface LocalDiscoveryService {
  add(infoHashHex: string): void;
  remove(infoHashHex: string): void;
}

export interface PeerSourcesOptions {
  infoHash: Uint8Array;
  infoHashHex: string;
  dht: DhtService | null;
  lsd: LocalDiscoveryService | null;
  /** Port to announce on the DHT; 0 to look up without announcing (no metadata yet). */
  announcePort: number;
  onPeers: (peers: PeerAddress[], source: string) => void;
  log: (line: string) => void;
}

/** BEP 5 peers expire from a node's store after 30 min; libtorrent re-announces every 15. */
const REANNOUNCE_MS = 15 * 60_000;
/** The earliest next lookup when short of peers. */
const MIN_LOOKUP_GAP_MS = 60_000;

export class PeerSources {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lookingUp: Promise<void> | null = null;
  private lastLookupAt = -Infinity;
  private stopped = false;
  private announcePort: number;
  /** The port changed while a lookup was announcing the old one. */
  private portChanged = false;

  constructor(private options: PeerSourcesOptions) {
    this.announcePort = options.announcePort;
  }

  start(): void {
    this.options.lsd?.add(this.options.infoHashHex);
    if (this.options.dht) this.lookup();
  }

  /** Asks the DHT again soon when the swarm is short of peers. */
  needPeers(): void {
    if (
      this.options.dht && !this.lookingUp &&
      performance.now() - this.lastLookupAt > MIN_LOOKUP_GAP_MS
    ) {
      this.lookup();
    }
  }

  /** Announces `port` on the DHT from now on (a port mapping made or moved), at once. */
  setAnnouncePort(port: number): void {
    if (port === this.announcePort) return;
    this.announcePort = port;
    if (!this.options.dht || this.stopped) return;
    if (this.lookingUp) this.portChanged = true;
    else this.lookup();
  }

  /**
   * Stops the schedule. A lookup in flight is not awaited (it can take a
   * minute): the DHT node ends it when it closes, and its peers find a
   * stopped torrent.
   */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.options.lsd?.remove(this.options.infoHashHex);
  }

  private lookup(): void {
    const { dht, infoHash, onPeers, log } = this.options;
    const announcePort = this.announcePort;
    if (!dht || this.stopped) return;
    clearTimeout(this.timer);
    this.lastLookupAt = performance.now();
    this.lookingUp = dht.lookup(
      infoHash,
      (peers) => onPeers(peers, "dht"),
      announcePort > 0 ? announcePort : undefined,
    ).then(
      () => {},
      (e) => log(`DHT lookup failed: ${e instanceof Error ? e.message : e}`),
    ).finally(() => {
      this.lookingUp = null;
      if (this.portChanged && !this.stopped) {
        this.portChanged = false;
        this.lookup();
      } else if (!this.stopped) {
        this.timer = setTimeout(() => this.lookup(), REANNOUNCE_MS);
        Deno.unrefTimer(this.timer as unknown as number);
      }
    });
  }
}
