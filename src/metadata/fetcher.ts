// Fetches a magnet link's info dictionary from peers (BEP 9 over BEP 10): it
// dials the addresses that discovery yields, keeps the connections that
// offer ut_metadata, and asks one source at a time for the missing pieces.
// A dictionary that fails its SHA-1 check is blamed on its sender (banned
// when it was the only one) and fetched again from someone else.

import type { PeerAddress } from "../tracker/types.ts";
import { dialPeer } from "../peer/handshake_io.ts";
import { type PeerRecord, Swarm } from "../swarm/swarm.ts";
import { type Handshake, hasFlag } from "../wire/handshake.ts";
import { MetadataAssembly } from "./assembly.ts";
import { MetadataPeer, type MetadataPeerOwner } from "./metadata_peer.ts";

export interface MetadataFetchOptions {
  handshake: Handshake;
  /** Our extended handshake payload (no metadata_size: we have none yet). */
  extensionHandshake: Uint8Array;
  maxPeers: number;
  maxHalfOpen: number;
  reconnectBaseMs: number;
  connectTimeoutMs: number;
  log: (line: string) => void;
}

/** A source that leaves requests unanswered this long is replaced. */
const PIECE_TIMEOUT_MS = 10_000;
/** Pieces asked of one source at once. */
const REQUESTS_IN_FLIGHT = 16;
const TICK_MS = 1000;
/** A peer that rejected us is asked again no sooner than this. */
const RETRY_RELUCTANT_MS = 5000;

export class MetadataFetcher implements MetadataPeerOwner {
  readonly swarm: Swarm;
  /** Resolves with the verified info dictionary. */
  readonly done: Promise<Uint8Array>;
  private peers = new Set<MetadataPeer>();
  private records = new Map<MetadataPeer, PeerRecord>();
  /** Peers that sent part of a dictionary that failed its check. */
  private suspects = new Set<MetadataPeer>();
  /** Peers that rejected or ignored our requests, and when: asked again only when no one else can be, and not at once. */
  private reluctant = new Map<MetadataPeer, number>();
  private assembly: MetadataAssembly | null = null;
  private source: MetadataPeer | null = null;
  private tasks = new Set<Promise<void>>();
  private timer: ReturnType<typeof setInterval>;
  private stopped = false;
  private resolve!: (info: Uint8Array) => void;

  constructor(private options: MetadataFetchOptions) {
    this.swarm = new Swarm({
      maxPeers: options.maxPeers,
      maxHalfOpen: options.maxHalfOpen,
      reconnectBaseMs: options.reconnectBaseMs,
      dial: (record) => this.dial(record),
    });
    this.done = new Promise((resolve) => this.resolve = resolve);
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  get infoHash(): Uint8Array {
    return this.options.handshake.infoHash;
  }

  /** Connected peers. */
  get connected(): number {
    return this.peers.size;
  }

  addPeers(peers: PeerAddress[], source: string): void {
    if (this.stopped) return;
    this.swarm.add(peers, source);
    this.swarm.dialSome(performance.now());
  }

  /** Closes every connection; pending dials end on their own timeouts. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const peer of [...this.peers]) peer.close("metadata fetch is over");
    await Promise.allSettled([...this.tasks]);
  }

  // --- MetadataPeerOwner ---

  extensionsKnown(peer: MetadataPeer): void {
    if (!peer.supportsMetadata) {
      return peer.close(
        "peer does not offer the info dictionary (ut_metadata)",
      );
    }
    this.schedule();
  }

  metadataPiece(
    peer: MetadataPeer,
    piece: number,
    totalSize: number,
    data: Uint8Array,
  ): void {
    const assembly = this.assembly;
    if (!assembly || this.stopped) return;
    const result = assembly.receive(piece, totalSize, data, peer.num);
    if (result === "ignored") {
      if (
        totalSize !== assembly.size ||
        data.length !== assembly.pieceLength(piece)
      ) {
        return peer.close(
          `sent metadata piece ${piece} of ${data.length} bytes (total ${totalSize}), not of the announced size`,
          true,
        );
      }
      return;
    }
    if (result === "complete") {
      this.resolve(assembly.bytes.slice());
      return;
    }
    if (result === "corrupt") {
      this.blame(assembly);
      this.assembly = null;
      this.source = null;
    }
    this.schedule();
  }

  metadataRejected(peer: MetadataPeer): void {
    this.reluctant.set(peer, performance.now());
    if (this.source === peer) this.source = null;
    this.schedule();
  }

  pexPeers(_peer: MetadataPeer, added: PeerAddress[]): void {
    this.addPeers(added.slice(0, 200), "pex");
  }

  closed(peer: MetadataPeer, reason: string, violation: boolean): void {
    if (!this.peers.delete(peer)) return;
    this.suspects.delete(peer);
    this.reluctant.delete(peer);
    const record = this.records.get(peer);
    this.records.delete(peer);
    if (record) {
      this.swarm.disconnected(record, performance.now(), violation, false);
    }
    if (violation) this.options.log(`dropped peer ${record?.key}: ${reason}`);
    if (this.source === peer) {
      this.source = null;
      if (!this.stopped) this.schedule();
    }
  }

  // --- helpers ---

  private async dial(record: PeerRecord): Promise<void> {
    if (this.stopped) return;
    try {
      const opened = await dialPeer(
        record.host,
        record.port,
        this.options.handshake,
        this.options.connectTimeoutMs,
      );
      if (this.stopped) return opened.conn.close();
      const reserved = opened.remote.reserved;
      if (!hasFlag(reserved, "extension")) {
        // No BEP 10: this peer cannot give us the dictionary.
        opened.conn.close();
        this.swarm.connectedTo(record.host, record.port, record.source);
        this.swarm.disconnected(record, performance.now(), false, false);
        return;
      }
      this.swarm.connectedTo(record.host, record.port, record.source);
      const peer = new MetadataPeer(
        opened.conn,
        record.host,
        record.port,
        this,
      );
      this.peers.add(peer);
      this.records.set(peer, record);
      const task = peer.run(
        opened.leftover,
        this.options.extensionHandshake,
        hasFlag(reserved, "fast"),
      );
      this.tasks.add(task);
      task.finally(() => this.tasks.delete(task));
    } catch {
      this.swarm.dialFailed(record, performance.now());
    }
  }

  /** Picks a source when there is none, and keeps its requests topped up. */
  private schedule(): void {
    if (this.stopped) return;
    if (!this.source) this.source = this.pickSource();
    const source = this.source;
    if (!source) return;
    if (!this.assembly) {
      this.assembly = new MetadataAssembly(
        this.infoHash,
        source.remote!.metadataSize!,
      );
    }
    for (const piece of this.assembly.missing()) {
      if (source.asked.size >= REQUESTS_IN_FLIGHT) break;
      if (!source.asked.has(piece)) source.requestPiece(piece);
    }
  }

  /** The best peer to ask: one that agrees on the size, never blamed, never reluctant if avoidable. */
  private pickSource(): MetadataPeer | null {
    const size = this.assembly?.size;
    const now = performance.now();
    const able = [...this.peers].filter((p) =>
      p.supportsMetadata && p.closedReason === null &&
      (size === undefined || p.remote!.metadataSize === size) &&
      now - (this.reluctant.get(p) ?? -Infinity) > RETRY_RELUCTANT_MS
    );
    const ranked = [
      ...able.filter((p) => !this.suspects.has(p) && !this.reluctant.has(p)),
      ...able.filter((p) => !this.suspects.has(p) && this.reluctant.has(p)),
      ...able.filter((p) => this.suspects.has(p)),
    ];
    if (ranked.length > 0) {
      this.reluctant.delete(ranked[0]);
      return ranked[0];
    }
    // Nobody agrees on the size: start over with whatever size a peer offers.
    const sizes = new Set(
      [...this.peers].map((p) => p.remote?.metadataSize).filter((n) => n),
    );
    if (this.assembly && !sizes.has(this.assembly.size) && sizes.size > 0) {
      this.assembly = null;
      return this.pickSource();
    }
    return null;
  }

  /** A dictionary failed its check: its lone sender is banned, several senders become suspects. */
  private blame(assembly: MetadataAssembly): void {
    const senders = [...this.peers].filter((p) => assembly.senders.has(p.num));
    if (senders.length === 1) {
      const [liar] = senders;
      const record = this.records.get(liar);
      if (record) this.swarm.ban(record);
      this.options.log(
        `banned ${
          record?.key ?? liar.host
        }: sent an info dictionary that does not match the info-hash`,
      );
      liar.close("sent a wrong info dictionary", true);
    } else {
      this.options.log(
        "the info dictionary failed its check; fetching it again from one peer at a time",
      );
      for (const p of senders) this.suspects.add(p);
    }
    assembly.reset();
  }

  private tick(): void {
    const now = performance.now();
    const source = this.source;
    if (
      source && source.asked.size > 0 &&
      now - source.askedAt > PIECE_TIMEOUT_MS
    ) {
      // A silent source loses its turn; its unanswered pieces go to the next.
      source.asked.clear();
      this.reluctant.set(source, now);
      this.source = null;
      this.schedule();
    }
    if (!this.source) this.schedule();
    this.swarm.dialSome(now);
  }
}
