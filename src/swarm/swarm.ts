// The known addresses of one torrent's swarm and when to dial them: within
// the connection and half-open limits, the least-failed first, closed ones
// retried after a backoff that doubles with each failure, misbehaving ones
// not again for a long while.

import type { PeerAddress } from "../tracker/types.ts";

export interface PeerRecord {
  host: string;
  port: number;
  key: string;
  source: string;
  connected: boolean;
  connecting: boolean;
  failures: number;
  violations: number;
  /** Payload bytes received from this address over all its connections. */
  downloaded: number;
  nextDialAt: number;
  /** Never dial again this run (our own address, or a repeat offender). */
  excluded: boolean;
}

export interface SwarmOptions {
  maxPeers: number;
  maxHalfOpen: number;
  reconnectBaseMs: number;
  /** Dials a record; resolves when the attempt (not the connection) ends. */
  dial: (peer: PeerRecord) => Promise<void>;
}

/** A violation keeps a peer away for this long; a third excludes it. */
const VIOLATION_BACKOFF_MS = 10 * 60_000;
const MAX_BACKOFF_MS = 30 * 60_000;
/** Addresses remembered at most; trackers can send thousands. */
const MAX_KNOWN = 2000;

export function addressKey(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

export class Swarm {
  readonly peers = new Map<string, PeerRecord>();
  private halfOpen = 0;
  private connected = 0;

  constructor(private options: SwarmOptions) {}

  get connectedCount(): number {
    return this.connected;
  }

  add(addresses: PeerAddress[], source: string): number {
    let added = 0;
    for (const a of addresses) {
      if (this.peers.size >= MAX_KNOWN) break;
      if (a.port <= 0 || a.port > 65535) continue;
      const key = addressKey(a.host, a.port);
      if (this.peers.has(key)) continue;
      this.peers.set(key, {
        host: a.host,
        port: a.port,
        key,
        source,
        connected: false,
        connecting: false,
        failures: 0,
        violations: 0,
        downloaded: 0,
        nextDialAt: 0,
        excluded: false,
      });
      added++;
    }
    return added;
  }

  /** Never dial this address (it is ourselves). */
  exclude(host: string, port: number): void {
    const record = this.peers.get(addressKey(host, port));
    if (record) record.excluded = true;
  }

  /** Whether a new connection (dialled or accepted) fits the limit. */
  get hasRoom(): boolean {
    return this.connected + this.halfOpen < this.options.maxPeers;
  }

  /** True when fewer peers are connected or dialable than we could use. */
  shortOfPeers(now: number): boolean {
    if (this.connected >= this.options.maxPeers / 2) return false;
    let dialable = 0;
    for (const p of this.peers.values()) if (this.eligible(p, now)) dialable++;
    return this.connected + dialable < this.options.maxPeers;
  }

  /** Starts dials up to the limits. */
  dialSome(now: number): void {
    if (!this.hasRoom || this.halfOpen >= this.options.maxHalfOpen) return;
    const candidates = [...this.peers.values()]
      .filter((p) => this.eligible(p, now))
      .sort((a, b) => a.failures - b.failures);
    for (const p of candidates) {
      if (!this.hasRoom || this.halfOpen >= this.options.maxHalfOpen) return;
      p.connecting = true;
      this.halfOpen++;
      this.options.dial(p).finally(() => {
        p.connecting = false;
        this.halfOpen--;
      });
    }
  }

  /** A connection to the address is up (dialled or accepted). */
  connectedTo(host: string, port: number, source: string): PeerRecord {
    const key = addressKey(host, port);
    let record = this.peers.get(key);
    if (!record) {
      this.add([{ host, port }], source);
      record = this.peers.get(key)!;
    }
    record.connected = true;
    this.connected++;
    return record;
  }

  /** A dial failed before a connection was up. */
  dialFailed(record: PeerRecord, now: number): void {
    record.failures++;
    record.nextDialAt = now + this.backoff(record.failures);
  }

  /** A connection closed; a violation rates the peer down. */
  disconnected(
    record: PeerRecord,
    now: number,
    violation: boolean,
    gotData: boolean,
  ): void {
    if (record.connected) this.connected--;
    record.connected = false;
    if (violation) {
      record.violations++;
      record.nextDialAt = now + VIOLATION_BACKOFF_MS;
      if (record.violations >= 3) record.excluded = true;
      return;
    }
    // A peer that gave us data is worth another try soon; one that did not backs off.
    if (gotData) record.failures = 0;
    else record.failures++;
    record.nextDialAt = now + this.backoff(Math.max(1, record.failures));
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
