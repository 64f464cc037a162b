// One torrent: wires discovery (trackers, --peer, incoming, DHT, PEX, LSD) -> swarm ->
// connections -> picker -> storage on the way down, storage -> connections
// under the choker on the way up, and keeps the numbers the progress view
// shows. It owns its timers, connections and store, and releases them all
// in stop().

import type { Config } from "./config.ts";
import type { Metainfo } from "./metainfo/metainfo.ts";
import { clientName } from "./peer/client_name.ts";
import { PeerConnection, type PeerOwner } from "./peer/connection.ts";
import {
  type CloseCause,
  InternalErrors,
  PeerViolation,
} from "./peer/faults.ts";
import type { OpenedPeer } from "./peer/handshake_io.ts";
import type { ActivePiece } from "./pieces/active_piece.ts";
import type { Bitfield } from "./pieces/bitfield.ts";
import { Download } from "./pieces/download.ts";
import { PieceGeometry } from "./pieces/geometry.ts";
import { PiecePicker } from "./pieces/picker.ts";
import { saveResume } from "./storage/resume.ts";
import type { PieceStore } from "./storage/store.ts";
import type { Bandwidth } from "./swarm/bandwidth.ts";
import { Choker } from "./swarm/choker.ts";
import { RateMeter } from "./swarm/rate_meter.ts";
import { PeerExchange, type PexView } from "./swarm/pex.ts";
import { Admission, type NewConnection } from "./swarm/admission.ts";
import { type PeerRecord, Swarm } from "./swarm/swarm.ts";
import { Announcer } from "./tracker/announcer.ts";
import type { PeerAddress } from "./tracker/types.ts";
import type { HandedOverPeer } from "./metadata/metadata_peer.ts";
import type { TakenOverStream } from "./peer/prior_state.ts";
import { allowedFastSet } from "./wire/allowed_fast.ts";
import {
  encodeExtensionHandshake,
  type ExtensionName,
} from "./wire/extension.ts";
import { hasFlag, reservedWith } from "./wire/handshake.ts";
import {
  type DhtService,
  type LocalDiscoveryService,
  PeerSources,
} from "./discovery/peer_sources.ts";
import { VERSION } from "./version.ts";

export interface TorrentOptions {
  config: Config;
  peerId: Uint8Array;
  resumeFile: string;
  /** The session's global caps, shared by every connection. */
  download: Bandwidth;
  upload: Bandwidth;
  /** The session's DHT node and local discovery; unused for a private torrent (BEP 27). */
  dht: DhtService | null;
  lsd: LocalDiscoveryService | null;
  log: (line: string) => void;
}

export interface TorrentStats {
  piecesDone: number;
  pieceCount: number;
  bytesDone: number;
  totalBytes: number;
  downloadRate: number;
  uploadRate: number;
  peers: number;
  knownPeers: number;
  /** Payload bytes received but not taken: duplicates, unrequested or cancelled blocks. */
  wastedBytes: number;
  /** Failures of our own code while handling peers (bugs, each logged with its stack). */
  internalErrors: number;
}

const TICK_MS = 1000;
/** BEP 3 caps a request at 128 KiB in practice (libtorrent refuses larger ones too). */
const MAX_REQUEST = 128 * 1024;
/** Requests of a peer we queue at most (our BEP 10 `reqq`). */
const UPLOAD_QUEUE = 500;

export class Torrent implements PeerOwner {
  readonly geometry: PieceGeometry;
  readonly picker: PiecePicker;
  readonly swarm: Swarm;
  readonly connections: Set<PeerConnection>;
  /** Resolves when every piece is verified, rejects on a disk error. */
  readonly finished: Promise<void>;
  readonly download: Download<PeerConnection>;
  /** Payload bytes sent this run. */
  uploaded = 0;
  /** Failures of our own code while handling peers (bugs, each logged with its stack). */
  readonly internalErrors: InternalErrors;
  private admission: Admission<PeerConnection>;
  private choker: Choker<PeerConnection>;
  private pex: PeerExchange<PeerConnection>;
  private announcer: Announcer | null = null;
  private peerSources: PeerSources | null = null;
  private extensionHandshake: Uint8Array | null = null;
  /** BEP 27: a private torrent uses its trackers only: no DHT, PEX or LSD. */
  private readonly publicSwarm: boolean;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastTick = performance.now();
  private lastResumeSave = performance.now();
  private resumeDirty = false;
  private rateDown = new RateMeter();
  private rateUp = new RateMeter();
  private stopped = false;
  private settle!: { resolve: () => void; reject: (e: unknown) => void };

  constructor(
    readonly meta: Metainfo,
    readonly store: PieceStore,
    have: Bitfield,
    private options: TorrentOptions,
  ) {
    const c = options.config;
    this.geometry = new PieceGeometry(
      meta.pieceCount,
      meta.pieceLength,
      meta.totalLength,
    );
    const maxActive = Math.max(
      2,
      Math.floor((c.maxPieceMemoryMiB * 2 ** 20) / meta.pieceLength),
    );
    this.picker = new PiecePicker(this.geometry, have, maxActive);
    this.swarm = new Swarm({
      maxPeers: c.maxPeers,
      maxHalfOpen: c.maxHalfOpen,
      reconnectBaseMs: c.reconnectBaseSeconds * 1000,
      dial: (record) => this.admission.dial(record),
    });
    this.choker = new Choker(c.uploadSlots);
    this.internalErrors = new InternalErrors(options.log);
    this.publicSwarm = !meta.private;
    this.pex = new PeerExchange(this.publicSwarm && c.pex);
    const reserved = reservedWith(
      this.dht ? ["fast", "extension", "dht"] : ["fast", "extension"],
    );
    this.admission = new Admission({
      swarm: this.swarm,
      handshake: { reserved, infoHash: meta.infoHash, peerId: options.peerId },
      connectTimeoutMs: c.connectTimeoutSeconds * 1000,
      start: (opened, record, dialled, takenOver) =>
        this.startConnection(opened, record, dialled, takenOver),
      currentRate: (peer) => peer.rate,
      internalErrors: this.internalErrors,
      log: options.log,
    });
    this.connections = this.admission.connections;
    this.download = new Download({
      picker: this.picker,
      pieceHashes: meta.pieceHashes,
      peers: this.connections,
      store: (piece) => this.storePiece(piece),
      chargeFailure: (num) => {
        const record = this.admission.recordOf(num);
        return record ? ++record.rating.failedPieces : 0;
      },
      ban: (ban) => this.admission.ban(ban.num, ban.reason),
      completed: () => this.onComplete(),
      log: options.log,
    });
    this.finished = new Promise((resolve, reject) =>
      this.settle = { resolve, reject }
    );
    // A caller that only awaits stop() must not see an unhandled rejection.
    this.finished.catch(() => {});
  }

  /** The DHT node, when this torrent may use it. */
  private get dht(): DhtService | null {
    return this.publicSwarm ? this.options.dht : null;
  }

  get have(): Bitfield {
    return this.picker.have;
  }

  get complete(): boolean {
    return this.have.complete;
  }

  /** Payload bytes taken into pieces this run. */
  get downloaded(): number {
    return this.download.downloaded;
  }

  /** Payload bytes received and not taken (libtorrent's redundant bytes). */
  get wasted(): number {
    return this.download.wasted;
  }

  /**
   * Starts trackers, dialing and the choker; `listenPort` is told to
   * trackers. A torrent that is complete already resolves `finished` at once
   * and seeds.
   */
  start(extraPeers: PeerAddress[], listenPort: number): void {
    const c = this.options.config;
    const extensions: ExtensionName[] = ["ut_metadata"];
    if (this.pex.enabled) extensions.push("ut_pex");
    this.extensionHandshake = encodeExtensionHandshake({
      extensions,
      listenPort,
      client: `btclient ${VERSION}`,
      maxRequests: UPLOAD_QUEUE,
      metadataSize: this.meta.infoBytes.length,
    });
    this.addPeers(extraPeers, "command line");
    if (this.meta.trackers.length > 0) {
      this.announcer = new Announcer(this.meta.trackers, {
        infoHash: this.meta.infoHash,
        peerId: this.options.peerId,
        port: listenPort,
        numWant: c.numWant,
        timeoutMs: c.trackerTimeoutSeconds * 1000,
        udpMaxRetries: c.udpTrackerRetries,
        minReannounceSeconds: c.minReannounceSeconds,
        stats: () => ({
          uploaded: this.uploaded,
          downloaded: this.downloaded,
          left: this.download.bytesLeft,
        }),
        onPeers: (peers, source) => this.addPeers(peers, source),
        log: this.options.log,
      });
      this.announcer.start();
    }
    if (this.publicSwarm && (this.options.dht || this.options.lsd)) {
      this.peerSources = new PeerSources({
        infoHash: this.meta.infoHash,
        infoHashHex: this.meta.infoHashHex,
        dht: this.options.dht,
        lsd: this.options.lsd,
        announcePort: listenPort,
        onPeers: (peers, source) => this.addPeers(peers, source),
        log: this.options.log,
      });
      this.peerSources.start();
    }
    this.timer = setInterval(() => {
      // A bug of ours in one tick is reported, and the next tick runs.
      try {
        this.tick();
      } catch (e) {
        this.internalErrors.report("in the torrent's tick", e);
      }
    }, TICK_MS);
    Deno.unrefTimer(this.timer as unknown as number);
    if (this.complete) this.settle.resolve();
  }

  /** Trackers and the DHT are told `port` from now on (a port mapping made or moved). */
  setAnnouncePort(port: number): void {
    this.announcer?.setPort(port);
    this.peerSources?.setAnnouncePort(port);
  }

  addPeers(peers: PeerAddress[], source: string): void {
    if (this.stopped) return;
    this.swarm.add(peers, source);
    this.swarm.dialSome(performance.now());
  }

  /** Takes over a connection whose handshake the listener read. */
  acceptIncoming(
    opened: OpenedPeer,
    host: string,
    port: number,
  ): Promise<void> {
    return this.admission.accept(opened, host, port);
  }

  /** Takes over a live connection from a magnet link's metadata fetch. */
  adoptHandedOver(peer: HandedOverPeer): void {
    this.admission.adopt(peer.opened, peer.host, peer.port, peer.source, peer);
  }

  /** Addresses that sent us data, most first (complete once stop() has closed the peers). */
  sources(): { address: string; bytes: number }[] {
    return [...this.swarm.peers.values()]
      .filter((p) => p.rating.downloaded > 0)
      .sort((a, b) => b.rating.downloaded - a.rating.downloaded)
      .map((p) => ({ address: p.key, bytes: p.rating.downloaded }));
  }

  stats(): TorrentStats {
    return {
      piecesDone: this.have.count,
      pieceCount: this.meta.pieceCount,
      bytesDone: this.meta.totalLength - this.download.bytesLeft,
      totalBytes: this.meta.totalLength,
      downloadRate: this.rateDown.rate,
      uploadRate: this.rateUp.rate,
      peers: this.connections.size,
      knownPeers: this.swarm.peers.size,
      wastedBytes: this.wasted,
      internalErrors: this.internalErrors.count,
    };
  }

  /** Closes peers, saves state, tells trackers "stopped" (bounded), closes files. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.admission.stop();
    clearInterval(this.timer);
    for (const peer of [...this.connections]) peer.close("shutting down");
    await this.admission.drained();
    try {
      this.persist();
    } catch (e) {
      this.options.log(
        `could not save resume data: ${e instanceof Error ? e.message : e}`,
      );
    }
    this.store.close();
    this.peerSources?.stop();
    await this.announcer?.stop(3000);
  }

  // --- PeerOwner: downloading (pieces/download.ts decides) ---

  peerHasChanged(peer: PeerConnection, index: number): void {
    this.download.peerHas(peer, index);
  }

  blockArrived(
    peer: PeerConnection,
    index: number,
    begin: number,
    data: Uint8Array,
  ): void {
    const violation = this.download.blockArrived(peer, index, begin, data);
    if (violation) throw new PeerViolation(violation);
  }

  blockRejected(
    peer: PeerConnection,
    index: number,
    begin: number,
    length: number,
  ): void {
    this.download.blockRejected(peer, index, begin, length);
  }

  fillPipeline(peer: PeerConnection): void {
    this.download.fill(peer);
  }

  requestsLost(_peer: PeerConnection, blockIds: Iterable<number>): void {
    this.download.requestsLost(blockIds);
  }

  // --- PeerOwner: uploading ---

  refuseRequest(index: number, begin: number, length: number): string | null {
    if (index >= this.meta.pieceCount) return `piece ${index} does not exist`;
    if (length === 0 || length > MAX_REQUEST) {
      return `request of ${length} bytes`;
    }
    if (begin + length > this.geometry.pieceSize(index)) {
      return `request past the end of piece ${index}`;
    }
    if (!this.have.has(index)) return `piece ${index} is not verified here`;
    return null;
  }

  readBlock(index: number, begin: number, out: Uint8Array): boolean {
    try {
      return this.store.readBlock(index, begin, out);
    } catch (e) {
      this.options.log(
        `cannot serve piece ${index}: ${e instanceof Error ? e.message : e}`,
      );
      return false;
    }
  }

  blockServed(length: number): void {
    this.uploaded += length;
  }

  peerInterested(peer: PeerConnection): void {
    this.choker.interested(peer, this.connections);
  }

  pexReceived(peer: PeerConnection, added: PeerAddress[]): void {
    if (this.stopped) return;
    const taken = this.pex.received(peer, added, performance.now());
    if (taken.length === 0) return;
    const fresh = this.swarm.add(taken, "pex");
    if (fresh > 0) {
      this.options.log(`PEX: ${peer.address} told us of ${fresh} new peers`);
      this.swarm.dialSome(performance.now());
    }
  }

  dhtNodeLearned(peer: PeerConnection, port: number): void {
    this.dht?.addNode(peer.host, port);
  }

  internalError(peer: PeerConnection, error: unknown): void {
    this.internalErrors.report(`with peer ${peer.address}`, error);
  }

  closed(peer: PeerConnection, reason: string, cause: CloseCause): void {
    const figures = {
      downloaded: peer.downloaded,
      uploaded: peer.uploaded,
      peakRate: peer.peakRate,
      rttMs: peer.rttMs,
      snubs: peer.snubCount,
    };
    if (!this.admission.closed(peer, reason, cause, figures)) return;
    this.download.peerGone(peer);
    this.choker.removed(peer, this.connections);
    this.pex.forget(peer);
    // Requests the peer held can go to others at once.
    if (!this.stopped) this.download.fillAll();
  }

  // --- helpers ---

  /** Makes the connection of a peer admission let in. */
  private startConnection(
    opened: OpenedPeer,
    record: PeerRecord,
    dialled: boolean,
    takenOver?: TakenOverStream,
  ): NewConnection<PeerConnection> {
    const c = this.options.config;
    const peer = new PeerConnection(
      opened.conn,
      record.host,
      record.port,
      opened.remote.peerId,
      this.meta.pieceCount,
      this,
      {
        maxRequests: c.maxRequestsPerPeer,
        pipelineSeconds: c.pipelineSeconds,
        fast: hasFlag(opened.remote.reserved, "fast"),
        listenPortKnown: dialled,
        download: this.options.download,
        upload: this.options.upload,
        extensionHandshake: hasFlag(opened.remote.reserved, "extension")
          ? this.extensionHandshake
          : null,
        pex: this.pex.enabled,
        dhtPort: this.dht && hasFlag(opened.remote.reserved, "dht")
          ? this.dht.port
          : 0,
        metadata: this.meta.infoBytes,
      },
    );
    record.client = clientName(opened.remote.peerId);
    const offered = allowedFastSet(
      record.host,
      this.meta.infoHash,
      this.meta.pieceCount,
    )
      .filter((i) => this.have.has(i));
    return {
      connection: peer,
      run: () => peer.run(opened.leftover, this.have, offered, takenOver),
    };
  }

  /** Writes a verified piece; a disk error stops the torrent. */
  private storePiece(piece: ActivePiece): boolean {
    try {
      this.store.writePiece(piece.index, piece.buffer);
    } catch (e) {
      this.fail(e);
      return false;
    }
    this.resumeDirty = true;
    return true;
  }

  private onComplete(): void {
    try {
      this.persist();
    } catch (e) {
      return this.fail(e);
    }
    this.announcer?.completed();
    this.settle.resolve();
  }

  private fail(error: unknown): void {
    this.settle.reject(error);
  }

  /** Records the verified pieces (resume.ts says when the data is synced). */
  private persist(): void {
    saveResume(this.store, this.options.resumeFile, this.have);
    this.resumeDirty = false;
    this.lastResumeSave = performance.now();
  }

  private tick(): void {
    const now = performance.now();
    const seconds = Math.max(0.001, (now - this.lastTick) / 1000);
    this.lastTick = now;
    const c = this.options.config;
    for (const peer of [...this.connections]) {
      const reason = peer.tick(now, seconds, c.snubSeconds, c.peerIdleSeconds);
      if (reason) peer.close(reason);
      else this.download.tick(peer);
    }
    this.rateDown.sample(this.downloaded, seconds);
    this.rateUp.sample(this.uploaded, seconds);
    this.choker.tick(this.connections, this.complete, now);
    this.swarm.dialSome(now);
    if (this.swarm.shortOfPeers(now)) {
      this.announcer?.needPeers();
      this.peerSources?.needPeers();
    }
    for (const m of this.pex.due(this.connections, pexView, now)) {
      m.peer.sendPex(m.added, m.dropped);
    }
    if (
      this.resumeDirty && now - this.lastResumeSave > c.resumeSaveSeconds * 1000
    ) {
      try {
        this.persist();
      } catch (e) {
        this.fail(e);
      }
    }
  }
}

function pexView(peer: PeerConnection): PexView {
  return {
    listenAddress: peer.listenAddress,
    seed: peer.has.complete,
    reachable: peer.options.listenPortKnown,
    speaksPex: (peer.extensions?.messages.get("ut_pex") ?? 0) > 0,
  };
}
