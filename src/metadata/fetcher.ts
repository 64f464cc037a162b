// Fetches a magnet link's info dictionary from peers (BEP 9 over BEP 10): it
// dials the addresses that discovery yields (and takes peers that dial us),
// keeps the connections that speak BEP 10, and asks one source at a time for
// the missing pieces. A dictionary that fails its SHA-1 check is blamed on its
// sender (banned when it was the only one) and fetched again from someone
// else. Once it is verified, the live connections are handed to the torrent.
// Who may connect is swarm/admission.ts's rule, the torrent's too; what is
// taken of ut_pex is swarm/pex.ts's.

import type { SwarmEvent } from "../swarm/events.ts";
import type { PeerAddress } from "../net/address.ts";
import { type CloseCause, InternalErrors } from "../peer/faults.ts";
import type { OpenedPeer } from "../peer/handshake_io.ts";
import { Admission, type NewConnection } from "../swarm/admission.ts";
import { PeerExchange } from "../swarm/pex.ts";
import type { PeerRecord, Swarm } from "../swarm/swarm.ts";
import { type Handshake, hasFlag } from "../wire/handshake.ts";
import { dictionaryFailed } from "../pieces/ban_rules.ts";
import { MetadataAssembly } from "./assembly.ts";
import {
  type HandedOverPeer,
  MetadataPeer,
  type MetadataPeerOwner,
} from "./metadata_peer.ts";

export interface MetadataFetchOptions {
  handshake: Handshake;
  /** Our extended handshake payload (no metadata_size: we have none yet). */
  extensionHandshake: Uint8Array;
  /** BEP 11: take the peers' ut_pex lists (swarm/pex.ts keeps the limits). */
  pex: boolean;
  /** BEP 5: our DHT port, told to peers that run a DHT; 0 for none. */
  dhtPort: number;
  /** A DHT node a peer named in its `port` message. */
  onDhtNode: (host: string, port: number) => void;
  maxPeers: number;
  maxHalfOpen: number;
  reconnectBaseMs: number;
  connectTimeoutMs: number;
  log: (line: string) => void;
  /** Bans and protocol drops, for the engine's events. */
  onEvent: (event: SwarmEvent) => void;
}

/** A source that delivers nothing for this long loses its turn. */
const PIECE_TIMEOUT_MS = 10_000;
/** A source that trickles (a piece just often enough) loses its turn after this, if another peer can be asked. */
const MAX_TURN_MS = 60_000;
/** A peer that sets the BEP 10 bit must send its extended handshake within this. */
const EXTENSION_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Pieces asked of one source at once. */
const REQUESTS_IN_FLIGHT = 16;
const TICK_MS = 1000;
/** A peer that rejected us is asked again no sooner than this. */
const RETRY_RELUCTANT_MS = 5000;

export class MetadataFetcher implements MetadataPeerOwner {
  readonly swarm: Swarm;
  /** Resolves with the verified info dictionary. */
  readonly done: Promise<Uint8Array>;
  private admission: Admission<MetadataPeer>;
  private peers: Set<MetadataPeer>;
  /** Peers that sent part of a dictionary that failed its check. */
  private suspects = new Set<MetadataPeer>();
  /** Peers that rejected or ignored our requests, and when: asked again only when no one else can be, and not at once. */
  private reluctant = new Map<MetadataPeer, number>();
  private pex: PeerExchange<MetadataPeer>;
  private assembly: MetadataAssembly | null = null;
  private source: MetadataPeer | null = null;
  private turnStartedAt = 0;
  private timer: ReturnType<typeof setInterval>;
  private stopped = false;
  private resolve!: (info: Uint8Array) => void;
  readonly internalErrors: InternalErrors;

  constructor(private options: MetadataFetchOptions) {
    this.internalErrors = new InternalErrors(options.log);
    this.pex = new PeerExchange(options.pex);
    this.admission = new Admission({
      limits: {
        maxPeers: options.maxPeers,
        maxHalfOpen: options.maxHalfOpen,
        reconnectBaseMs: options.reconnectBaseMs,
      },
      handshake: options.handshake,
      connectTimeoutMs: options.connectTimeoutMs,
      start: (opened, record) => this.startConnection(opened, record),
      internalErrors: this.internalErrors,
      onEvent: options.onEvent,
      log: options.log,
    });
    this.swarm = this.admission.swarm;
    this.peers = this.admission.connections;
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

  /** Takes over a connection whose handshake the session's listener read. */
  acceptIncoming(
    opened: OpenedPeer,
    host: string,
    port: number,
  ): Promise<void> {
    return this.admission.accept(opened, host, port);
  }

  /**
   * Ends the fetch: stops dialing and hands every live connection over (at
   * its next message boundary), or closes them all when `keep` says no.
   */
  async stop(
    keep: (source: string) => boolean = () => false,
  ): Promise<HandedOverPeer[]> {
    if (this.stopped) return [];
    this.stopped = true;
    this.admission.stop();
    clearInterval(this.timer);
    const handed: HandedOverPeer[] = [];
    for (const peer of [...this.peers]) {
      const source = this.admission.recordOf(peer.num)?.source ?? "";
      if (!keep(source)) {
        peer.close("metadata fetch is over");
        continue;
      }
      const given = await peer.handOver(source);
      if (given) {
        handed.push(given);
        // Its read loop now ends only with its next read: not ours to await.
        this.admission.handedOver(peer);
      }
    }
    await this.admission.drained();
    return handed;
  }

  // --- MetadataPeerOwner ---

  extensionsKnown(): void {
    // A peer without ut_metadata stays for the download that follows.
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
          "violation",
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

  pexPeers(peer: MetadataPeer, added: PeerAddress[]): void {
    const taken = this.pex.received(peer, added, performance.now());
    if (taken.length > 0) this.addPeers(taken, "pex");
  }

  dhtNodeLearned(peer: MetadataPeer, port: number): void {
    this.options.onDhtNode(peer.host, port);
  }

  internalError(peer: MetadataPeer, error: unknown): void {
    this.internalErrors.report(
      `with peer ${this.admission.recordOf(peer.num)?.key}`,
      error,
    );
  }

  closed(peer: MetadataPeer, reason: string, cause: CloseCause): void {
    if (!this.admission.closed(peer, reason, cause, null)) return;
    this.suspects.delete(peer);
    this.reluctant.delete(peer);
    this.pex.forget(peer);
    if (this.source === peer) {
      this.source = null;
      if (!this.stopped) this.schedule();
    }
  }

  // --- helpers ---

  /** Keeps a peer that speaks BEP 10; the others cannot give us the dictionary (the torrent may dial them later). */
  private startConnection(
    opened: OpenedPeer,
    record: PeerRecord,
  ): NewConnection<MetadataPeer> | null {
    const reserved = opened.remote.reserved;
    if (!hasFlag(reserved, "extension")) return null;
    const peer = new MetadataPeer(opened, record.host, record.port, this, {
      pex: this.options.pex,
      dhtPort: hasFlag(reserved, "dht") ? this.options.dhtPort : 0,
    });
    return {
      connection: peer,
      run: () =>
        peer.run(this.options.extensionHandshake, hasFlag(reserved, "fast")),
    };
  }

  /** Picks a source when there is none, and keeps its requests topped up. */
  private schedule(): void {
    if (this.stopped) return;
    if (!this.source) {
      this.source = this.pickSource();
      this.turnStartedAt = performance.now();
    }
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

  /**
   * The best peer to ask: one that offers the size being assembled, never
   * blamed, not reluctant if avoidable. When no peer can be asked for that
   * size but one can for another, the attempt starts over with the size most
   * peers announce: one peer with a made-up size cannot stall the fetch.
   */
  private pickSource(): MetadataPeer | null {
    const now = performance.now();
    const askable = [...this.peers].filter((p) =>
      p.supportsMetadata && p.closedReason === null &&
      now - (this.reluctant.get(p) ?? -Infinity) > RETRY_RELUCTANT_MS
    );
    const size = this.assembly?.size;
    const able = size === undefined
      ? askable
      : askable.filter((p) => p.remote!.metadataSize === size);
    const ranked = [
      ...able.filter((p) => !this.suspects.has(p) && !this.reluctant.has(p)),
      ...able.filter((p) => !this.suspects.has(p) && this.reluctant.has(p)),
      ...able.filter((p) => this.suspects.has(p)),
    ];
    if (ranked.length > 0) {
      this.reluctant.delete(ranked[0]);
      return ranked[0];
    }
    if (size === undefined || askable.length === 0) return null;
    const votes = new Map<number, number>();
    for (const p of askable) {
      const s = p.remote!.metadataSize!;
      votes.set(s, (votes.get(s) ?? 0) + 1);
    }
    const [popular] = [...votes].sort((a, b) => b[1] - a[1])[0];
    this.assembly = new MetadataAssembly(this.infoHash, popular);
    return this.pickSource();
  }

  /** A dictionary failed its check: its lone sender is banned, several senders become suspects. */
  private blame(assembly: MetadataAssembly): void {
    const ban = dictionaryFailed(assembly.senders);
    if (ban) {
      this.admission.ban(ban.num, ban.reason);
    } else {
      this.options.log(
        "the info dictionary failed its check; fetching it again from one peer at a time",
      );
      for (const p of this.peers) {
        if (assembly.senders.has(p.num)) this.suspects.add(p);
      }
    }
    assembly.reset();
  }

  private tick(): void {
    const now = performance.now();
    for (const peer of [...this.peers]) {
      if (
        !peer.remote && now - peer.openedAt > EXTENSION_HANDSHAKE_TIMEOUT_MS
      ) {
        peer.close("sent no extended handshake (BEP 10)");
      }
    }
    const source = this.source;
    const others = () =>
      [...this.peers].some((p) => p !== source && p.supportsMetadata);
    if (
      source && source.asked.size > 0 &&
      (now - source.progressAt > PIECE_TIMEOUT_MS ||
        (now - this.turnStartedAt > MAX_TURN_MS && others()))
    ) {
      // A silent or trickling source loses its turn; its unanswered pieces go to the next.
      source.asked.clear();
      this.reluctant.set(source, now);
      this.source = null;
    }
    if (!this.source) this.schedule();
    this.swarm.dialSome(now);
  }
}
