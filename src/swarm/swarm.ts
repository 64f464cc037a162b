// The known addresses of one torrent's swarm and when to dial them: within
// the connection and half-open limits, the best-rated first, closed ones
// retried after a backoff that doubles with each failure, misbehaving ones
// kept away, banned ones and those serving another torrent never again this
// run.

import type { CloseCause } from "../peer/faults.ts";
import { formatHostPort, type PeerAddress } from "../net/address.ts";
import { excludedForViolations } from "../pieces/ban_rules.ts";
import {
  type ConnectionFigures,
  foldConnection,
  newRating,
  type PeerRating,
  score,
} from "./rating.ts";

export interface PeerRecord {
  host: string;
  port: number;
  key: string;
  source: string;
  connected: boolean;
  connecting: boolean;
  rating: PeerRating;
  /** The client, decoded from its peer id once connected. */
  client: string;
  nextDialAt: number;
  /** Never dial this address (ourselves, an ephemeral incoming port, a ban). */
  excluded: boolean;
}

export interface SwarmOptions {
  maxPeers: number;
  maxHalfOpen: number;
  reconnectBaseMs: number;
  /** Dials a record; resolves when the attempt (not the connection) ends. */
  dial: (peer: PeerRecord) => Promise<void>;
}

/** A violation keeps a peer away for this long (ban_rules.ts says when it is for good). */
const VIOLATION_BACKOFF_MS = 10 * 60_000;
const MAX_BACKOFF_MS = 30 * 60_000;
/** Addresses remembered at most; trackers can send thousands. */
const MAX_KNOWN = 2000;

export class Swarm {
  readonly peers = new Map<string, PeerRecord>();
  /**
   * Addresses whose handshake named another info-hash: never dialled again
   * this run, even once forgotten and named again by a tracker or PEX.
   */
  private otherTorrent = new Set<string>();
  private halfOpen = 0;
  private connected = 0;

  constructor(private options: SwarmOptions) {}

  add(addresses: PeerAddress[], source: string): number {
    let added = 0;
    for (const a of addresses) {
      if (this.peers.size >= MAX_KNOWN && !this.forgetOneDead()) break;
      if (a.port <= 0 || a.port > 65535) continue;
      const key = formatHostPort(a.host, a.port);
      if (this.peers.has(key) || this.otherTorrent.has(key)) continue;
      this.peers.set(key, {
        host: a.host,
        port: a.port,
        key,
        source,
        connected: false,
        connecting: false,
        rating: newRating(),
        client: "",
        nextDialAt: 0,
        excluded: false,
      });
      added++;
    }
    return added;
  }

  /** Whether a new connection (dialled or accepted) fits the limit. */
  get hasRoom(): boolean {
    return this.connected + this.halfOpen < this.options.maxPeers;
  }

  /** Addresses that sent us data, most first (with the figures of closed connections). */
  sources(): { address: string; bytes: number }[] {
    return [...this.peers.values()]
      .filter((p) => p.rating.downloaded > 0)
      .sort((a, b) => b.rating.downloaded - a.rating.downloaded)
      .map((p) => ({ address: p.key, bytes: p.rating.downloaded }));
  }

  /** True when fewer peers are connected or dialable than we could use. */
  shortOfPeers(now: number): boolean {
    if (this.connected >= this.options.maxPeers / 2) return false;
    let dialable = 0;
    for (const p of this.peers.values()) if (this.eligible(p, now)) dialable++;
    return this.connected + dialable < this.options.maxPeers;
  }

  /** Starts dials up to the limits, best-rated first. */
  dialSome(now: number): void {
    if (!this.hasRoom || this.halfOpen >= this.options.maxHalfOpen) return;
    const candidates = [...this.peers.values()]
      .filter((p) => this.eligible(p, now))
      .sort((a, b) => score(b.rating) - score(a.rating));
    for (const p of candidates) {
      if (!this.hasRoom || this.halfOpen >= this.options.maxHalfOpen) return;
      p.connecting = true;
      this.halfOpen++;
      this.options.dial(p).finally(() => this.attemptOver(p));
    }
  }

  /**
   * Whether a dial's connection fits the limit: the half-open slot its
   * attempt holds is its own.
   */
  hasRoomFor(record: PeerRecord): boolean {
    const own = record.connecting ? 1 : 0;
    return this.connected + this.halfOpen - own < this.options.maxPeers;
  }

  /** A connection to the address is up (dialled or accepted); a dial's half-open slot becomes its connection's. */
  connectedTo(host: string, port: number, source: string): PeerRecord {
    const key = formatHostPort(host, port);
    if (!this.peers.has(key)) this.add([{ host, port }], source);
    const record = this.peers.get(key)!;
    this.attemptOver(record);
    record.connected = true;
    this.connected++;
    return record;
  }

  /** A dial failed before a connection was up. */
  dialFailed(record: PeerRecord, now: number): void {
    record.rating.failures++;
    record.nextDialAt = now + this.backoff(record.rating.failures);
  }

  /**
   * A dial reached a peer of another torrent (libtorrent counts it as a
   * failed peer): it is not dialled again this run.
   */
  servesOtherTorrent(record: PeerRecord): void {
    record.excluded = true;
    if (this.otherTorrent.size >= MAX_KNOWN) {
      const [oldest] = this.otherTorrent;
      this.otherTorrent.delete(oldest);
    }
    this.otherTorrent.add(record.key);
  }

  /**
   * A connection closed; what it did (`figures`, none for a connection that
   * moved no payload) joins the address's rating. A violation keeps the peer
   * away for long; a failure of our own code is not held against it: it is
   * redialled after the first wait.
   */
  disconnected(
    record: PeerRecord,
    now: number,
    cause: CloseCause,
    figures: ConnectionFigures | null,
  ): void {
    if (record.connected) this.connected--;
    record.connected = false;
    if (figures) foldConnection(record.rating, figures);
    if (cause === "violation") {
      record.rating.violations++;
      record.nextDialAt = now + VIOLATION_BACKOFF_MS;
      if (excludedForViolations(record.rating.violations)) {
        record.excluded = true;
      }
      return;
    }
    if (cause === "internal") {
      record.nextDialAt = now + this.options.reconnectBaseMs;
      return;
    }
    // A peer that gave us data is worth another try soon; one that did not backs off.
    if (figures && figures.downloaded > 0) record.rating.failures = 0;
    else record.rating.failures++;
    record.nextDialAt = now + this.backoff(Math.max(1, record.rating.failures));
  }

  /** Bans an address for the rest of the run. */
  ban(record: PeerRecord): void {
    record.rating.banned = true;
    record.excluded = true;
  }

  /**
   * Makes room in a full list by forgetting the oldest address that was
   * never reached (a dial failed, none ever connected): made-up PEX or
   * tracker entries must not crowd out the addresses that work.
   */
  private forgetOneDead(): boolean {
    for (const [key, p] of this.peers) {
      if (
        !p.connected && !p.connecting && p.rating.failures > 0 &&
        p.rating.downloaded === 0 && p.rating.uploaded === 0 && !p.rating.banned
      ) {
        this.peers.delete(key);
        return true;
      }
    }
    return false;
  }

  /** A dial ended (failed, or its connection is up): its half-open slot is free. */
  private attemptOver(p: PeerRecord): void {
    if (!p.connecting) return;
    p.connecting = false;
    this.halfOpen--;
  }

  private eligible(p: PeerRecord, now: number): boolean {
    return !p.connected && !p.connecting && !p.excluded && p.nextDialAt <= now;
  }

  private backoff(failures: number): number {
    return Math.min(
      MAX_BACKOFF_MS,
      this.options.reconnectBaseMs * 2 ** (failures - 1),
    );
  }
}
