// One torrent: wires discovery (trackers, --peer) -> swarm -> connections ->
// picker -> storage, and keeps the numbers the progress view shows. It owns
// its timers, connections and store, and releases them all in stop().

import type { Config } from "./config.ts";
import type { Metainfo } from "./metainfo/metainfo.ts";
import {
  PeerConnection,
  type PeerOwner,
  PeerViolation,
} from "./peer/connection.ts";
import {
  dialPeer,
  type OpenedPeer,
  sameBytes,
  writeAll,
} from "./peer/handshake_io.ts";
import type { ActivePiece } from "./pieces/active_piece.ts";
import type { Bitfield } from "./pieces/bitfield.ts";
import { PieceGeometry } from "./pieces/geometry.ts";
import { type BlockRequest, PiecePicker } from "./pieces/picker.ts";
import { saveResume } from "./storage/resume.ts";
import type { PieceStore } from "./storage/store.ts";
import { type PeerRecord, Swarm } from "./swarm/swarm.ts";
import { Announcer } from "./tracker/announcer.ts";
import type { PeerAddress } from "./tracker/types.ts";
import { encodeHandshake, type Handshake } from "./wire/handshake.ts";

export interface TorrentOptions {
  config: Config;
  peerId: Uint8Array;
  resumeFile: string;
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
}

const TICK_MS = 1000;
/** A peer whose blocks were in this many failed pieces is dropped as a violator. */
const MAX_HASH_FAILURES = 2;

export class Torrent implements PeerOwner {
  readonly geometry: PieceGeometry;
  readonly picker: PiecePicker;
  readonly swarm: Swarm;
  readonly connections = new Set<PeerConnection>();
  /** Resolves when every piece is verified, rejects on a disk error. */
  readonly finished: Promise<void>;
  /** Payload bytes received this run, wasted ones included. */
  downloaded = 0;
  uploaded = 0;
  wasted = 0;
  /** Bytes of the pieces not yet verified. */
  private bytesLeft: number;
  private records = new Map<PeerConnection, PeerRecord>();
  private hashFailures = new Map<number, number>();
  private announcer: Announcer | null = null;
  private handshake: Handshake;
  private tasks = new Set<Promise<void>>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastTick = performance.now();
  private lastResumeSave = performance.now();
  private resumeDirty = false;
  private rateDown = 0;
  private rateUp = 0;
  private tickDown = 0;
  private stopped = false;
  private settle!: { resolve: () => void; reject: (e: unknown) => void };
  private requests: BlockRequest[] = [];

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
    this.bytesLeft = 0;
    for (let i = 0; i < meta.pieceCount; i++) {
      if (!have.has(i)) this.bytesLeft += this.geometry.pieceSize(i);
    }
    this.swarm = new Swarm({
      maxPeers: c.maxPeers,
      maxHalfOpen: c.maxHalfOpen,
      reconnectBaseMs: c.reconnectBaseSeconds * 1000,
      dial: (record) => this.dial(record),
    });
    this.handshake = {
      reserved: new Uint8Array(8),
      infoHash: meta.infoHash,
      peerId: options.peerId,
    };
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

  /**
   * Starts trackers and dialing; `listenPort` is told to trackers. A complete
   * torrent resolves `finished` at once.
   */
  start(extraPeers: PeerAddress[], listenPort: number): void {
    if (this.complete) return this.settle.resolve();
    this.addPeers(extraPeers, "command line");
    const c = this.options.config;
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
          left: this.bytesLeft,
        }),
        onPeers: (peers, source) => this.addPeers(peers, source),
        log: this.options.log,
      });
      this.announcer.start();
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
    Deno.unrefTimer(this.timer as unknown as number);
  }

  addPeers(peers: PeerAddress[], source: string): void {
    if (this.stopped) return;
    this.swarm.add(peers, source);
    this.swarm.dialSome(performance.now());
  }

  /** Takes over a connection whose handshake the listener read. */
  async acceptIncoming(
    opened: OpenedPeer,
    host: string,
    port: number,
  ): Promise<void> {
    if (this.stopped || this.complete || !this.swarm.hasRoom) {
      opened.conn.close();
      return;
    }
    try {
      await writeAll(opened.conn, encodeHandshake(this.handshake));
    } catch {
      opened.conn.close();
      return;
    }
    const record = this.swarm.connectedTo(host, port, "incoming");
    // An incoming peer's port is ephemeral: it cannot be dialled back.
    record.excluded = true;
    this.adopt(opened, record);
  }

  /** Addresses that sent us data, most first (complete once stop() has closed the peers). */
  sources(): { address: string; bytes: number }[] {
    return [...this.swarm.peers.values()]
      .filter((p) => p.downloaded > 0)
      .sort((a, b) => b.downloaded - a.downloaded)
      .map((p) => ({ address: p.key, bytes: p.downloaded }));
  }

  stats(): TorrentStats {
    return {
      piecesDone: this.have.count,
      pieceCount: this.meta.pieceCount,
      bytesDone: this.meta.totalLength - this.bytesLeft,
      totalBytes: this.meta.totalLength,
      downloadRate: this.rateDown,
      uploadRate: this.rateUp,
      peers: this.connections.size,
      knownPeers: this.swarm.peers.size,
    };
  }

  /** Closes peers, saves state, tells trackers "stopped" (bounded), closes files. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    for (const peer of [...this.connections]) peer.close("shutting down");
    await Promise.allSettled([...this.tasks]);
    try {
      this.persist();
    } catch (e) {
      this.options.log(
        `could not save resume data: ${e instanceof Error ? e.message : e}`,
      );
    }
    this.store.close();
    await this.announcer?.stop(3000);
  }

  // --- PeerOwner ---

  peerHasChanged(peer: PeerConnection, index: number): void {
    if (index < 0) this.picker.addPeer(peer.has);
    else this.picker.peerHas(index);
    if (!peer.amInterested && !this.complete) {
      const wanted = index < 0
        ? this.picker.interesting(peer.has)
        : !this.have.has(index);
      if (wanted) peer.setInterested(true);
    }
  }

  blockArrived(
    peer: PeerConnection,
    index: number,
    begin: number,
    data: Uint8Array,
  ): void {
    const block = this.geometry.blockAt(index, begin, data.length);
    if (block < 0) {
      throw new PeerViolation(
        `sent block ${index}:${begin}+${data.length}, which does not exist`,
      );
    }
    const id = this.geometry.blockId(index, block);
    const wasRequested = peer.outstanding.delete(id);
    this.downloaded += data.length;
    this.tickDown += data.length;
    const piece = this.picker.active.get(index);
    if (!piece) {
      // A late answer to a cancelled request is normal; data nobody asked for is not.
      if (wasRequested || this.have.has(index)) {
        this.wasted += data.length;
        return;
      }
      throw new PeerViolation(`sent piece ${index}, which was never requested`);
    }
    if (!piece.receive(block, data, peer.num)) {
      this.wasted += data.length;
      return;
    }
    if (piece.requesters[block] > (wasRequested ? 1 : 0)) {
      this.cancelElsewhere(peer, piece, block, id);
    }
    if (piece.complete) this.finishPiece(piece);
  }

  blockRejected(
    peer: PeerConnection,
    index: number,
    begin: number,
    length: number,
  ): void {
    const block = this.geometry.blockAt(index, begin, length);
    if (block < 0) return;
    const id = this.geometry.blockId(index, block);
    if (peer.outstanding.delete(id)) this.picker.release(id);
  }

  fillPipeline(peer: PeerConnection): void {
    const room = peer.pipelineRoom;
    if (room === 0 || this.complete) return;
    this.requests.length = 0;
    this.picker.pick(peer, room, this.requests);
    if (this.requests.length > 0) peer.sendRequests(this.requests);
  }

  requestsLost(_peer: PeerConnection, blockIds: Iterable<number>): void {
    for (const id of blockIds) this.picker.release(id);
  }

  closed(peer: PeerConnection, reason: string, violation: boolean): void {
    if (!this.connections.delete(peer)) return;
    this.picker.removePeer(peer.has);
    this.requestsLost(peer, peer.outstanding);
    peer.outstanding.clear();
    const record = this.records.get(peer);
    this.records.delete(peer);
    if (record) {
      record.downloaded += peer.downloaded;
      this.swarm.disconnected(
        record,
        performance.now(),
        violation,
        peer.downloaded > 0,
      );
    }
    if (violation) this.options.log(`dropped peer ${peer.address}: ${reason}`);
    // Requests the peer held can go to others at once.
    if (!this.stopped) {
      for (const other of this.connections) this.fillPipeline(other);
    }
  }

  // --- helpers ---

  private async dial(record: PeerRecord): Promise<void> {
    if (this.stopped) return;
    try {
      const opened = await dialPeer(
        record.host,
        record.port,
        this.handshake,
        this.options.config.connectTimeoutSeconds * 1000,
      );
      if (this.stopped || !this.swarm.hasRoom) {
        opened.conn.close();
        return;
      }
      this.swarm.connectedTo(record.host, record.port, record.source);
      this.adopt(opened, record);
    } catch {
      this.swarm.dialFailed(record, performance.now());
    }
  }

  private adopt(opened: OpenedPeer, record: PeerRecord): void {
    if (sameBytes(opened.remote.peerId, this.options.peerId)) {
      // We dialled ourselves (a tracker returned our own address).
      record.excluded = true;
      this.swarm.disconnected(record, performance.now(), false, false);
      opened.conn.close();
      return;
    }
    const c = this.options.config;
    const peer = new PeerConnection(
      opened.conn,
      record.host,
      record.port,
      opened.remote.peerId,
      this.meta.pieceCount,
      this,
      { maxRequests: c.maxRequestsPerPeer, pipelineSeconds: c.pipelineSeconds },
    );
    this.connections.add(peer);
    this.records.set(peer, record);
    const task = peer.run(opened.leftover, this.have);
    this.tasks.add(task);
    task.finally(() => this.tasks.delete(task));
  }

  private cancelElsewhere(
    from: PeerConnection,
    piece: ActivePiece,
    block: number,
    id: number,
  ): void {
    const begin = block * 16384;
    const length = this.geometry.blockSize(piece.index, block);
    for (const other of this.connections) {
      if (other !== from) other.sendCancel(id, piece.index, begin, length);
    }
  }

  private finishPiece(piece: ActivePiece): void {
    const index = piece.index;
    if (
      !piece.verify(this.meta.pieceHashes.subarray(index * 20, index * 20 + 20))
    ) {
      this.options.log(
        `piece ${index} failed its hash check; fetching it again`,
      );
      this.wasted += piece.size;
      this.blameSenders(piece);
      this.picker.failed(piece);
      return;
    }
    try {
      this.store.writePiece(index, piece.buffer);
    } catch (e) {
      return this.fail(e);
    }
    this.picker.completed(piece);
    this.bytesLeft -= piece.size;
    this.resumeDirty = true;
    for (const peer of this.connections) {
      if (!peer.has.has(index)) peer.sendHave(index);
    }
    if (this.complete) this.onComplete();
  }

  /** Peers whose blocks were in failed pieces too often are dropped. */
  private blameSenders(piece: ActivePiece): void {
    const senders = new Set(piece.senders);
    for (const peer of [...this.connections]) {
      if (!senders.has(peer.num)) continue;
      const count = (this.hashFailures.get(peer.num) ?? 0) + 1;
      this.hashFailures.set(peer.num, count);
      if (count >= MAX_HASH_FAILURES) {
        peer.close(
          `sent data for ${count} pieces that failed their hash`,
          true,
        );
      }
    }
  }

  private onComplete(): void {
    for (const peer of this.connections) peer.setInterested(false);
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
    // A smoothed rate keeps the ETA from jumping with every tick.
    this.rateDown = this.rateDown * 0.6 + (this.tickDown / seconds) * 0.4;
    this.tickDown = 0;
    const c = this.options.config;
    for (const peer of [...this.connections]) {
      const reason = peer.tick(now, seconds, c.snubSeconds, c.peerIdleSeconds);
      if (reason) {
        peer.close(reason);
        continue;
      }
      if (peer.amInterested && !this.picker.interesting(peer.has)) {
        peer.setInterested(false);
      }
      this.fillPipeline(peer);
    }
    this.swarm.dialSome(now);
    if (this.announcer && this.swarm.shortOfPeers(now)) {
      this.announcer.needPeers();
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
