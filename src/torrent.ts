// One torrent: wires discovery (trackers, --peer, incoming, DHT, PEX, LSD) ->
// swarm and admission -> connections -> download side -> storage on the way
// down, storage -> connections under the choker on the way up, and keeps the
// numbers the progress view shows. The decisions live in the parts it wires:
// swarm/admission.ts (who connects), swarm/pex.ts (BEP 11),
// pieces/download.ts (what to ask, what a block means), pieces/ban_rules.ts
// (who is banned), swarm/upload.ts (who may download from us). It owns its
// timers, connections and store, and releases them all in stop().

import type { SwarmEvent } from "./swarm/events.ts";
import type { Config } from "./config.ts";
import {
  type DhtService,
  type LocalDiscoveryService,
} from "./discovery/peer_sources.ts";
import { TorrentDiscovery } from "./discovery/torrent_discovery.ts";
import type { HandedOverPeer } from "./metadata/metadata_peer.ts";
import type { Metainfo } from "./metainfo/metainfo.ts";
import { clientName } from "./peer/client_name.ts";
import { PeerConnection, type PeerOwner } from "./peer/connection.ts";
import {
  type CloseCause,
  InternalErrors,
  PeerViolation,
} from "./peer/faults.ts";
import type { OpenedPeer } from "./peer/handshake_io.ts";
import type { TakenOverStream } from "./peer/prior_state.ts";
import type { ActivePiece } from "./pieces/active_piece.ts";
import type { Bitfield } from "./pieces/bitfield.ts";
import { Download } from "./pieces/download.ts";
import { PieceGeometry } from "./pieces/geometry.ts";
import { activePiecesWithin, PiecePicker } from "./pieces/picker.ts";
import { saveResume } from "./storage/resume.ts";
import { ResumeSaver } from "./storage/resume_saver.ts";
import type { PieceStore } from "./storage/store.ts";
import { Admission, type NewConnection } from "./swarm/admission.ts";
import type { Bandwidth } from "./swarm/bandwidth.ts";
import { PeerExchange, type PexView } from "./swarm/pex.ts";
import { RateMeter } from "./swarm/rate_meter.ts";
import type { PeerRecord, Swarm } from "./swarm/swarm.ts";
import { Upload } from "./swarm/upload.ts";
import type { PeerAddress } from "./net/address.ts";
import {
  encodeExtensionHandshake,
  type ExtensionName,
} from "./wire/extension.ts";
import { hasFlag, reservedWith } from "./wire/handshake.ts";
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
  /** Bans, protocol drops and failed pieces. */
  onEvent: (event: SwarmEvent) => void;
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
/** Requests of a peer we queue at most (our BEP 10 `reqq`). */
const UPLOAD_QUEUE = 500;

export class Torrent {
  readonly picker: PiecePicker;
  readonly swarm: Swarm;
  readonly connections: Set<PeerConnection>;
  /** Resolves when every piece is verified, rejects on a disk error. */
  readonly finished: Promise<void>;
  /** Failures of our own code while handling peers (bugs, each logged with its stack). */
  readonly internalErrors: InternalErrors;
  private admission: Admission<PeerConnection>;
  private download: Download<PeerConnection>;
  private upload: Upload<PeerConnection>;
  private pex: PeerExchange<PeerConnection>;
  private discovery: TorrentDiscovery;
  /** What every connection reports to: the parts above, one line each. */
  private owner: PeerOwner;
  private extensionHandshake: Uint8Array | null = null;
  /** BEP 27: a private torrent uses its trackers only: no DHT, PEX or LSD. */
  private readonly dht: DhtService | null;
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastTick = performance.now();
  private resume: ResumeSaver;
  private rateDown = new RateMeter();
  private stopped = false;
  private settle!: { resolve: () => void; reject: (e: unknown) => void };

  constructor(
    readonly meta: Metainfo,
    readonly store: PieceStore,
    have: Bitfield,
    private options: TorrentOptions,
  ) {
    const c = options.config;
    this.picker = new PiecePicker(
      new PieceGeometry(meta.pieceCount, meta.pieceLength, meta.totalLength),
      have,
      activePiecesWithin(c.maxPieceMemoryMiB * 2 ** 20, meta.pieceLength),
    );
    this.internalErrors = new InternalErrors(options.log);
    this.dht = meta.private ? null : options.dht;
    this.pex = new PeerExchange(!meta.private && c.pex);
    const reserved = reservedWith(
      this.dht ? ["fast", "extension", "dht"] : ["fast", "extension"],
    );
    this.admission = new Admission({
      limits: {
        maxPeers: c.maxPeers,
        maxHalfOpen: c.maxHalfOpen,
        reconnectBaseMs: c.reconnectBaseSeconds * 1000,
      },
      handshake: { reserved, infoHash: meta.infoHash, peerId: options.peerId },
      connectTimeoutMs: c.connectTimeoutSeconds * 1000,
      start: (opened, record, dialled, takenOver) =>
        this.startConnection(opened, record, dialled, takenOver),
      currentRate: (peer) => peer.rate,
      internalErrors: this.internalErrors,
      dialled: (record, reached) => this.discovery.peerDialled(record, reached),
      onEvent: options.onEvent,
      log: options.log,
    });
    this.swarm = this.admission.swarm;
    this.connections = this.admission.connections;
    this.upload = new Upload(this.connections, {
      slots: c.uploadSlots,
      geometry: this.picker.geometry,
      have,
      infoHash: meta.infoHash,
      read: (index, begin, out) => store.readBlock(index, begin, out),
      log: options.log,
    });
    this.download = new Download({
      picker: this.picker,
      pieceHashes: meta.pieceHashes,
      peers: this.connections,
      store: (piece) => this.storePiece(piece),
      chargeFailure: (num) => this.admission.failedPiece(num),
      ban: (ban) => this.admission.ban(ban.num, ban.reason),
      completed: () => this.onComplete(),
      onEvent: options.onEvent,
    });
    this.discovery = new TorrentDiscovery(
      meta,
      options,
      () => ({
        uploaded: this.uploaded,
        downloaded: this.downloaded,
        left: this.download.bytesLeft,
      }),
      (peers, source) => this.addPeers(peers, source),
    );
    this.resume = new ResumeSaver(
      () => saveResume(store, options.resumeFile, this.have),
      c.resumeSaveSeconds * 1000,
      performance.now(),
    );
    this.owner = this.peerOwner();
    this.finished = new Promise((resolve, reject) =>
      this.settle = { resolve, reject }
    );
    // A caller that only awaits stop() must not see an unhandled rejection.
    this.finished.catch(() => {});
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

  /** Payload bytes sent this run. */
  get uploaded(): number {
    return this.upload.uploaded;
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
    this.discovery.start(listenPort);
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
    this.discovery.setPort(port);
  }

  /** Adds addresses to the swarm and dials what it can; returns how many were new. */
  addPeers(peers: PeerAddress[], source: string): number {
    if (this.stopped) return 0;
    const fresh = this.swarm.add(peers, source);
    this.swarm.dialSome(performance.now());
    return fresh;
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
    return this.swarm.sources();
  }

  stats(): TorrentStats {
    return {
      piecesDone: this.have.count,
      pieceCount: this.meta.pieceCount,
      bytesDone: this.meta.totalLength - this.download.bytesLeft,
      totalBytes: this.meta.totalLength,
      downloadRate: this.rateDown.rate,
      uploadRate: this.upload.rate.rate,
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
      this.resume.saveNow(performance.now());
    } catch (e) {
      this.options.log(
        `could not save resume data: ${e instanceof Error ? e.message : e}`,
      );
    }
    this.store.close();
    await this.discovery.stop();
  }

  /** Which part hears which of a connection's events. */
  private peerOwner(): PeerOwner {
    const { download, upload } = this;
    return {
      peerHasChanged: (peer, index) => download.peerHas(peer, index),
      blockArrived: (peer, index, begin, data) => {
        const violation = download.blockArrived(peer, index, begin, data);
        if (violation) throw new PeerViolation(violation);
      },
      blockRejected: (peer, index, begin, length) =>
        download.blockRejected(peer, index, begin, length),
      fillPipeline: (peer) => download.fill(peer),
      requestsLost: (_peer, blockIds) => download.requestsLost(blockIds),
      refuseRequest: (index, begin, length) =>
        upload.refusal(index, begin, length),
      readBlock: (index, begin, out) => upload.read(index, begin, out),
      blockServed: (length) => upload.served(length),
      peerInterested: (peer) => upload.interested(peer),
      pexReceived: (peer, added) => this.pexReceived(peer, added),
      dhtNodeLearned: (peer, port) => this.dht?.addNode(peer.host, port),
      internalError: (peer, error) =>
        this.internalErrors.report(`with peer ${peer.address}`, error),
      closed: (peer, reason, cause) => this.closed(peer, reason, cause),
    };
  }

  private pexReceived(peer: PeerConnection, added: PeerAddress[]): void {
    const taken = this.pex.received(peer, added, performance.now());
    if (taken.length === 0) return;
    const fresh = this.addPeers(taken, "pex");
    if (fresh > 0) {
      this.options.log(`PEX: ${peer.address} told us of ${fresh} new peers`);
    }
  }

  private closed(peer: PeerConnection, reason: string, cause: CloseCause) {
    const figures = {
      downloaded: peer.downloaded,
      uploaded: peer.uploaded,
      peakRate: peer.peakRate,
      rttMs: peer.rttMs,
      snubs: peer.snubCount,
    };
    if (!this.admission.closed(peer, reason, cause, figures)) return;
    this.download.peerGone(peer);
    this.upload.removed(peer);
    this.pex.forget(peer);
    // Requests the peer held can go to others at once.
    if (!this.stopped) this.download.fillAll();
  }

  /** Makes the connection of a peer admission let in. */
  private startConnection(
    opened: OpenedPeer,
    record: PeerRecord,
    dialled: boolean,
    takenOver?: TakenOverStream,
  ): NewConnection<PeerConnection> {
    const c = this.options.config;
    const reserved = opened.remote.reserved;
    const peer = new PeerConnection(
      opened.conn,
      record.host,
      record.port,
      opened.remote.peerId,
      this.meta.pieceCount,
      this.owner,
      {
        maxRequests: c.maxRequestsPerPeer,
        pipelineSeconds: c.pipelineSeconds,
        fast: hasFlag(reserved, "fast"),
        listenPortKnown: dialled,
        download: this.options.download,
        upload: this.options.upload,
        extensionHandshake: hasFlag(reserved, "extension")
          ? this.extensionHandshake
          : null,
        pex: this.pex.enabled,
        dhtPort: this.dht && hasFlag(reserved, "dht") ? this.dht.port : 0,
        metadata: this.meta.infoBytes,
      },
    );
    record.client = clientName(opened.remote.peerId);
    const offered = this.upload.offeredFast(record.host);
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
      this.settle.reject(e);
      return false;
    }
    this.resume.changed();
    return true;
  }

  private onComplete(): void {
    try {
      this.resume.saveNow(performance.now());
    } catch (e) {
      return this.settle.reject(e);
    }
    this.discovery.completed();
    this.settle.resolve();
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
    this.upload.tick(this.complete, now, seconds);
    this.swarm.dialSome(now);
    if (this.swarm.shortOfPeers(now)) this.discovery.needPeers();
    for (const m of this.pex.due(this.connections, pexView, now)) {
      m.peer.sendPex(m.added, m.dropped);
    }
    try {
      this.resume.tick(now);
    } catch (e) {
      this.settle.reject(e);
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
