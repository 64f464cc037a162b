// One peer connection after the handshake (BEP 3, BEP 6 fast extension,
// BEP 10 extension messages: ut_metadata served, ut_pex relayed):
// reads into one fixed buffer and parses in place (WireReader), keeps the
// choke/interest state and the peer's pieces, keeps a pipeline of block
// requests whose depth follows the peer's rate, and serves the peer's
// requests from disk while we unchoke it. What to request, what a block
// means and where served data comes from are the owner's business.

import { Bitfield } from "../pieces/bitfield.ts";
import { BLOCK_SIZE } from "../pieces/geometry.ts";
import type { BlockRequest } from "../pieces/picker.ts";
import type { Bandwidth } from "../swarm/bandwidth.ts";
import { BencodeError } from "../bencode/types.ts";
import type { PeerAddress } from "../tracker/types.ts";
import { type CloseCause, isProtocolError, PeerViolation } from "./faults.ts";
import { writeAll } from "./handshake_io.ts";
import type { PriorPeerState, TakenOverStream } from "./prior_state.ts";
import {
  EXTENDED_HANDSHAKE_ID,
  type ExtensionHandshake,
  LOCAL_EXTENSION_IDS,
  mergeExtensionHandshake,
  parseExtensionHandshake,
} from "../wire/extension.ts";
import { MessageId, OutBuffer } from "../wire/messages.ts";
import {
  encodeMetadataData,
  encodeMetadataReject,
  metadataPieceCount,
  parseMetadataMessage,
} from "../wire/ut_metadata.ts";
import { encodePex, parsePex, type PexEntry } from "../wire/ut_pex.ts";
import { type WireHandler, WireReader } from "../wire/reader.ts";
import { UploadQueue } from "./upload_queue.ts";

/** What a connection reports to, and asks of, its torrent. */
export interface PeerOwner {
  /** The peer's piece set changed: a bitfield (index -1) or one `have`. */
  peerHasChanged(peer: PeerConnection, index: number): void;
  /**
   * A block arrived. The owner calls blockTaken() when it takes the block
   * into a piece; otherwise it is wasted. Throws PeerViolation when the
   * block was never asked for.
   */
  blockArrived(
    peer: PeerConnection,
    index: number,
    begin: number,
    data: Uint8Array,
  ): void;
  /** BEP 6: the peer refused one of our requests. */
  blockRejected(
    peer: PeerConnection,
    index: number,
    begin: number,
    length: number,
  ): void;
  /** The peer may take more requests: ask the picker and send them. */
  fillPipeline(peer: PeerConnection): void;
  /** Outstanding requests were dropped (choke, snub): give them back. */
  requestsLost(peer: PeerConnection, blockIds: Iterable<number>): void;
  /** Why a request of the peer cannot be served, or null when it can. */
  refuseRequest(index: number, begin: number, length: number): string | null;
  /** Reads a verified block into `out`; false on a disk error. */
  readBlock(index: number, begin: number, out: Uint8Array): boolean;
  /** A block went into the send buffer (upload accounting). */
  blockServed(length: number): void;
  /** The peer turned interested in us (the choker may unchoke it at once). */
  peerInterested(peer: PeerConnection): void;
  /** BEP 11: addresses the peer says it is connected to. */
  pexReceived(peer: PeerConnection, added: PeerAddress[]): void;
  /** BEP 5: the peer runs a DHT node on this UDP port. */
  dhtNodeLearned(peer: PeerConnection, port: number): void;
  /** Our own code failed while handling the peer (a bug, not the peer's fault). */
  internalError(peer: PeerConnection, error: unknown): void;
  closed(peer: PeerConnection, reason: string, cause: CloseCause): void;
}

export interface ConnectionOptions {
  maxRequests: number;
  /** Seconds of the peer's rate to keep in flight as requests. */
  pipelineSeconds: number;
  /** BEP 6 was advertised by both sides. */
  fast: boolean;
  /** We dialled the peer, so its port is the one it listens on. */
  listenPortKnown: boolean;
  download: Bandwidth;
  upload: Bandwidth;
  /** Our BEP 10 handshake, when the peer speaks BEP 10. */
  extensionHandshake: Uint8Array | null;
  /** BEP 11: we offered ut_pex, so the peer's lists are taken. */
  pex: boolean;
  /** BEP 5: our DHT port, sent when the peer runs a DHT too; 0 for none. */
  dhtPort: number;
  /** The info dictionary, served through ut_metadata (BEP 9). */
  metadata: Uint8Array;
}

const MIN_PIPELINE = 4;
/** Largest payload besides a bitfield: a 128 KiB block plus its header. */
const MAX_MESSAGE = 128 * 1024 + 9;
const READ_BUFFER = 256 * 1024;
/** Served blocks queued for the socket at most; more waits for the writes. */
const SEND_WATERMARK = 512 * 1024;
/** Times one connection is sent each piece of our info dictionary at most. */
const METADATA_SENDS_PER_PIECE = 2;
/** One request in this many is timed for the round-trip estimate. */
const RTT_SAMPLE_EVERY = 16;

let nextPeerNumber = 0;

export class PeerConnection implements WireHandler {
  /** A small integer naming this connection (block attribution). */
  readonly num = nextPeerNumber++;
  readonly has: Bitfield;
  /** BEP 6: pieces the peer lets us fetch while it chokes us. */
  readonly fastPieces: Bitfield;
  readonly outstanding = new Set<number>();
  readonly uploads = new UploadQueue();
  amInterested = false;
  amChoking = true;
  peerChoking = true;
  peerInterested = false;
  /** Payload bytes taken from (downloaded) and sent to (uploaded) this peer. */
  downloaded = 0;
  uploaded = 0;
  /** Payload bytes a second received, and sent, over the last tick. */
  rate = 0;
  uploadRate = 0;
  peakRate = 0;
  /** Smoothed request round trip in ms (0 until measured). */
  rttMs = 0;
  pipelineTarget = MIN_PIPELINE;
  snubbed = false;
  snubCount = 0;
  lastReceiveAt = performance.now();
  lastSendAt = performance.now();
  lastBlockAt = performance.now();
  /** When we last unchoked the peer, it last asked for a block, and we last sent it one. */
  unchokedAt = 0;
  lastRequestAt = 0;
  lastServedAt = 0;
  closedReason: string | null = null;
  /** The peer's BEP 10 handshake, once received. */
  extensions: ExtensionHandshake | null = null;

  private reader: WireReader;
  private out = new OutBuffer();
  private writing = false;
  private gotFirstMessage = false;
  private bytesThisTick = 0;
  private uploadedThisTick = 0;
  private measured = false;
  private requestsSent = 0;
  private rttProbes = new Map<number, number>();
  private uploadTimer: ReturnType<typeof setTimeout> | undefined;
  private metadataServed = 0;
  private gotDhtPort = false;
  /** BEP 6: pieces we let this peer fetch while we choke it. */
  private offeredFast = new Set<number>();

  constructor(
    readonly conn: Deno.TcpConn,
    readonly host: string,
    readonly port: number,
    readonly peerId: Uint8Array,
    pieceCount: number,
    private owner: PeerOwner,
    readonly options: ConnectionOptions,
  ) {
    this.has = new Bitfield(pieceCount);
    this.fastPieces = new Bitfield(pieceCount);
    this.reader = new WireReader(this, {
      maxMessageLength: Math.max(MAX_MESSAGE, 1 + Math.ceil(pieceCount / 8)),
      bufferSize: READ_BUFFER,
    });
  }

  get address(): string {
    return this.host.includes(":")
      ? `[${this.host}]:${this.port}`
      : `${this.host}:${this.port}`;
  }

  get fast(): boolean {
    return this.options.fast;
  }

  /**
   * Reads until the connection closes; never throws. A connection taken
   * over from a metadata fetch has greeted the peer already: what it said
   * then is replayed, and reading goes on where the fetch stopped.
   */
  async run(
    leftover: Uint8Array,
    ours: Bitfield,
    allowedFast: number[],
    takenOver?: TakenOverStream,
  ): Promise<void> {
    try {
      const prior = takenOver?.prior;
      this.greet(ours, allowedFast, prior);
      if (prior) {
        this.replay(prior);
        this.afterInput();
        const rest = await takenOver!.rest;
        if (rest === null) return this.close("peer closed the connection");
        leftover = rest;
      }
      if (leftover.length > 0) this.accept(leftover);
      while (this.closedReason === null) {
        let n: number | null;
        try {
          n = await this.conn.read(this.reader.space());
        } catch (e) {
          // A reset, or our own close() ending the read: the connection is over.
          return this.close(`read failed: ${errorText(e)}`);
        }
        if (n === null) return this.close("peer closed the connection");
        this.lastReceiveAt = performance.now();
        this.reader.commit(n);
        this.afterInput();
        const download = this.options.download;
        if (download.limited) {
          // Reading less is what slows the sender: TCP flow control does the rest.
          download.charge(n);
          const wait = download.waitMs(0);
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
      }
    } catch (e) {
      this.fail(e);
    }
  }

  /** Our first messages: pieces, extended handshake, DHT port, allowed-fast set. */
  private greet(
    ours: Bitfield,
    allowedFast: number[],
    prior: PriorPeerState | undefined,
  ): void {
    if (prior) this.greetAgain(prior, ours);
    // BEP 6: have-all / have-none replace the bitfield when both sides speak it.
    else if (this.fast && ours.complete) this.out.simple(MessageId.HaveAll);
    else if (this.fast && ours.count === 0) this.out.simple(MessageId.HaveNone);
    else if (ours.count > 0) this.out.bitfield(ours.bytes);
    // A second extended handshake (BEP 10 allows updates) now gives metadata_size.
    if (this.options.extensionHandshake) {
      this.out.extended(EXTENDED_HANDSHAKE_ID, this.options.extensionHandshake);
    }
    if (this.options.dhtPort > 0 && !prior?.sentDhtPort) {
      this.out.dhtPort(this.options.dhtPort);
    }
    if (this.fast) {
      for (const i of allowedFast) {
        this.offeredFast.add(i);
        this.out.have(i, MessageId.AllowedFast);
      }
    }
    this.flush();
  }

  /**
   * Ends the connection over an exception from handling it: a protocol
   * error is the peer's fault; anything else is a bug of ours, reported to
   * the owner (even on a connection already closed) and not held against
   * the peer.
   */
  private fail(e: unknown): void {
    if (isProtocolError(e)) return this.close(e.message, "violation");
    this.owner.internalError(this, e);
    this.close(`internal error: ${errorText(e)}`, "internal");
  }

  /** Sends requests the owner picked. */
  sendRequests(requests: BlockRequest[]): void {
    const now = performance.now();
    for (const r of requests) {
      this.out.blockMessage(MessageId.Request, r.piece, r.begin, r.length);
      if (
        ++this.requestsSent % RTT_SAMPLE_EVERY === 0 && this.rttProbes.size < 64
      ) {
        this.rttProbes.set(probeKey(r.piece, r.begin), now);
      }
    }
    this.flush();
  }

  sendCancel(
    blockId: number,
    piece: number,
    begin: number,
    length: number,
  ): void {
    if (!this.outstanding.delete(blockId)) return;
    this.out.blockMessage(MessageId.Cancel, piece, begin, length);
    this.flush();
  }

  /** BEP 11: one peer-exchange message; the caller keeps the limits. */
  sendPex(added: PexEntry[], dropped: PeerAddress[]): void {
    const id = this.extensions?.messages.get("ut_pex") ?? 0;
    if (id === 0) return;
    this.out.extended(id, encodePex(added, dropped));
    this.flush();
  }

  /** The address the peer accepts connections on, if known. */
  get listenAddress(): PeerAddress | null {
    return this.options.listenPortKnown
      ? { host: this.host, port: this.port }
      : this.extensions?.listenPort
      ? { host: this.host, port: this.extensions.listenPort }
      : null;
  }

  sendHave(index: number): void {
    this.out.have(index);
    this.flush();
  }

  setInterested(interested: boolean): void {
    if (interested === this.amInterested) return;
    this.amInterested = interested;
    this.out.simple(
      interested ? MessageId.Interested : MessageId.NotInterested,
    );
    this.flush();
  }

  /** The choker's decision. Choking drops (BEP 3) or rejects (BEP 6) queued requests. */
  setChoking(choking: boolean): void {
    if (choking === this.amChoking || this.closedReason !== null) return;
    this.amChoking = choking;
    if (!choking) this.unchokedAt = performance.now();
    this.out.simple(choking ? MessageId.Choke : MessageId.Unchoke);
    if (choking) {
      for (const r of this.uploads.clear()) {
        if (this.fast) {
          this.out.blockMessage(MessageId.Reject, r.index, r.begin, r.length);
        }
      }
    }
    this.flush();
  }

  /** Room left in the request pipeline (allowed-fast pieces count while choked). */
  get pipelineRoom(): number {
    if (!this.amInterested || this.closedReason !== null) return 0;
    if (this.peerChoking && this.fastPieces.count === 0) return 0;
    // The peer's `reqq` caps the slow start too, not only the measured depth.
    const depth = Math.min(this.pipelineTarget, this.maxRequests);
    return Math.max(0, depth - this.outstanding.size);
  }

  /**
   * Once a second: measure rates, size the pipeline, send keep-alives and
   * detect a snubbing or silent peer. Returns a reason to drop it, or null.
   */
  tick(
    now: number,
    tickSeconds: number,
    snubSeconds: number,
    idleSeconds: number,
  ): string | null {
    this.rate = this.bytesThisTick / tickSeconds;
    this.uploadRate = this.uploadedThisTick / tickSeconds;
    this.peakRate = Math.max(this.peakRate, this.rate);
    if (this.bytesThisTick > 0) this.measured = true;
    this.bytesThisTick = 0;
    this.uploadedThisTick = 0;
    if (this.measured) {
      const wanted = Math.ceil(
        (this.rate * this.options.pipelineSeconds) / BLOCK_SIZE,
      );
      this.pipelineTarget = clamp(wanted, MIN_PIPELINE, this.maxRequests);
    }
    if (now - this.lastReceiveAt > idleSeconds * 1000) {
      return `peer sent nothing for ${idleSeconds} s`;
    }
    if (
      !this.snubbed && this.outstanding.size > 0 &&
      now - this.lastBlockAt > snubSeconds * 1000
    ) {
      // Snubbed: its requests go to other peers and it keeps one probe.
      this.snubbed = true;
      this.snubCount++;
      this.pipelineTarget = 1;
      this.giveBackRequests();
    }
    if (now - this.lastSendAt > 60_000) {
      this.out.keepAlive();
      this.flush();
    }
    return null;
  }

  close(reason: string, cause: CloseCause = "ended"): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    clearTimeout(this.uploadTimer);
    try {
      this.conn.close();
    } catch { /* the socket may already be gone */ }
    this.owner.closed(this, reason, cause);
  }

  // --- WireHandler: called by the reader for each whole message ---

  keepAlive(): void {}

  choke(): void {
    this.firstMessage();
    this.peerChoking = true;
    // BEP 3: a choke discards pending requests. Under BEP 6 the peer rejects
    // them one by one instead, but handing them to other peers now is faster.
    this.giveBackRequests();
  }

  unchoke(): void {
    this.firstMessage();
    this.peerChoking = false;
  }

  interested(): void {
    this.firstMessage();
    if (this.peerInterested) return;
    this.peerInterested = true;
    this.owner.peerInterested(this);
  }

  notInterested(): void {
    this.firstMessage();
    this.peerInterested = false;
  }

  have(index: number): void {
    this.firstMessage();
    if (index >= this.has.size) {
      throw new PeerViolation(`have for piece ${index} out of range`);
    }
    if (this.has.has(index)) return;
    this.has.set(index);
    this.owner.peerHasChanged(this, index);
  }

  bitfield(bits: Uint8Array): void {
    const field = Bitfield.fromWire(bits, this.has.size);
    if (!field) {
      throw new PeerViolation(
        `bitfield of ${bits.length} bytes does not fit ${this.has.size} pieces`,
      );
    }
    this.bitfieldFrom(field);
  }

  haveAll(): void {
    this.requireFast("have all");
    this.bitfieldFrom(Bitfield.full(this.has.size));
  }

  haveNone(): void {
    this.requireFast("have none");
    this.bitfieldFrom(new Bitfield(this.has.size));
  }

  request(index: number, begin: number, length: number): void {
    this.firstMessage();
    const refusal = this.amChoking && !this.mayFetchWhileChoked(index)
      ? "choked"
      : this.owner.refuseRequest(index, begin, length);
    if (refusal !== null) {
      // Asking while choked is normal in a race with our choke; asking for
      // what cannot exist is not.
      if (refusal !== "choked") this.uploads.refused();
      if (this.fast) {
        this.out.blockMessage(MessageId.Reject, index, begin, length);
      }
    } else if (this.uploads.add({ index, begin, length })) {
      this.lastRequestAt = performance.now();
    } else if (this.fast) {
      this.out.blockMessage(MessageId.Reject, index, begin, length);
    }
    if (this.uploads.flooding) {
      throw new PeerViolation(
        `sent ${this.uploads.badRequests} requests that could not be served`,
      );
    }
  }

  piece(index: number, begin: number, block: Uint8Array): void {
    this.firstMessage();
    if (this.rttProbes.size > 0) {
      const sentAt = this.rttProbes.get(probeKey(index, begin));
      if (sentAt !== undefined) {
        this.rttProbes.delete(probeKey(index, begin));
        const sample = performance.now() - sentAt;
        this.rttMs = this.rttMs === 0
          ? sample
          : this.rttMs * 0.8 + sample * 0.2;
      }
    }
    this.owner.blockArrived(this, index, begin, block);
  }

  /**
   * The owner took one of this peer's blocks into a piece: only such
   * payload counts as downloaded from it, for its rate and its rating
   * (libtorrent counts the rest as redundant bytes).
   */
  blockTaken(length: number): void {
    this.lastBlockAt = performance.now();
    this.bytesThisTick += length;
    this.downloaded += length;
    if (!this.measured && this.pipelineTarget < this.maxRequests) {
      // Slow start until the first rate sample: one more request per block.
      this.pipelineTarget++;
    }
    if (this.snubbed) {
      this.snubbed = false;
      this.pipelineTarget = MIN_PIPELINE;
    }
  }

  /** Requests of the peer waiting to be served. */
  get uploadsQueued(): number {
    return this.uploads.pending.length;
  }

  /** When the peer last used its upload slot: unchoked, asked for a block, or was sent one. */
  get slotUsedAt(): number {
    return Math.max(this.unchokedAt, this.lastRequestAt, this.lastServedAt);
  }

  cancel(index: number, begin: number, length: number): void {
    this.firstMessage();
    // BEP 6: even a cancelled request gets exactly one answer.
    if (this.uploads.cancel(index, begin, length) && this.fast) {
      this.out.blockMessage(MessageId.Reject, index, begin, length);
    }
  }

  dhtPort(port: number): void {
    // Not a "first message": clients send it before or after the bitfield.
    // One per connection: each one costs a DHT ping.
    if (port === 0 || this.gotDhtPort) return;
    this.gotDhtPort = true;
    this.owner.dhtNodeLearned(this, port);
  }

  suggest(): void {
    // BEP 6: advisory only; rarest-first serves the swarm better than one peer's cache.
    this.requireFast("suggest piece");
    this.firstMessage();
  }

  reject(index: number, begin: number, length: number): void {
    this.requireFast("reject request");
    this.firstMessage();
    this.owner.blockRejected(this, index, begin, length);
  }

  allowedFast(index: number): void {
    this.requireFast("allowed fast");
    this.firstMessage();
    // BEP 6: an index we cannot use is ignored, not an error.
    if (index < this.fastPieces.size) this.fastPieces.set(index);
  }

  extended(id: number, payload: Uint8Array): void {
    // BEP 10 handshakes often come before the bitfield, so they do not count
    // as the first message.
    if (id === EXTENDED_HANDSHAKE_ID) {
      try {
        // BEP 10: a later handshake updates only the keys it carries.
        this.extensions = mergeExtensionHandshake(
          this.extensions,
          parseExtensionHandshake(payload),
        );
      } catch (e) {
        // A handshake we cannot read leaves the peer without extensions; its
        // BEP 3 messages still work.
        if (!(e instanceof BencodeError)) throw e;
      }
      return;
    }
    if (id === LOCAL_EXTENSION_IDS.ut_metadata) {
      return this.metadataMessage(payload);
    }
    if (id === LOCAL_EXTENSION_IDS.ut_pex && this.options.pex) {
      // What is taken of it is the owner's rule (swarm/pex.ts).
      this.owner.pexReceived(this, parsePex(payload).added);
    }
  }

  // --- helpers ---

  /** Our pieces, to a peer that saw only an extended handshake (and a have-none) from us. */
  private greetAgain(prior: PriorPeerState, ours: Bitfield): void {
    if (ours.count === 0) return;
    if (!prior.sentHaveNone) return this.out.bitfield(ours.bytes);
    for (let i = 0; i < ours.size; i++) if (ours.has(i)) this.out.have(i);
  }

  /** What the peer said during the metadata fetch, as if it said it now. */
  private replay(prior: PriorPeerState): void {
    if (prior.extensions) this.extensions = prior.extensions;
    if (prior.bitfield) this.bitfield(prior.bitfield);
    else if (prior.haveAll) this.haveAll();
    else if (prior.haveNone) this.haveNone();
    for (const index of prior.haves) this.have(index);
    for (const index of prior.allowedFast) this.allowedFast(index);
    if (prior.unchoked) this.unchoke();
    if (prior.interested) this.interested();
  }

  /** Requests the peer keeps queued at most: ours, or its `reqq` if lower. */
  private get maxRequests(): number {
    const reqq = this.extensions?.maxRequests;
    return reqq
      ? Math.min(reqq, this.options.maxRequests)
      : this.options.maxRequests;
  }

  /**
   * BEP 9: serves pieces of our info dictionary, each at most a few times
   * per connection and only while the send buffer has room; anything more
   * is rejected and counted like an unservable request (a flood drops the
   * peer). Data and rejects are never asked for here, so they are ignored.
   */
  private metadataMessage(payload: Uint8Array): void {
    const message = parseMetadataMessage(payload);
    const id = this.extensions?.messages.get("ut_metadata") ?? 0;
    if (message.type !== "request" || id === 0) return;
    const metadata = this.options.metadata;
    const pieces = metadataPieceCount(metadata.length);
    const serve = message.piece < pieces &&
      this.metadataServed < pieces * METADATA_SENDS_PER_PIECE &&
      this.out.length < SEND_WATERMARK;
    if (serve) {
      this.metadataServed++;
      this.out.extended(id, encodeMetadataData(message.piece, metadata));
    } else {
      this.uploads.refused();
      this.out.extended(id, encodeMetadataReject(message.piece));
    }
    this.flush();
    if (this.uploads.flooding) {
      throw new PeerViolation(
        `sent ${this.uploads.badRequests} requests that could not be served`,
      );
    }
  }

  /** BEP 6: fast-extension messages without the extension close the connection. */
  private requireFast(what: string): void {
    if (!this.fast) {
      throw new PeerViolation(`sent ${what} without the fast extension`);
    }
  }

  /** BEP 6: an offered allowed-fast piece, to a peer still starting (at most k pieces). */
  private mayFetchWhileChoked(index: number): boolean {
    return this.offeredFast.has(index) &&
      this.has.count <= this.offeredFast.size;
  }

  private bitfieldFrom(field: Bitfield): void {
    if (this.gotFirstMessage) {
      // BEP 3 allows a bitfield only first, but aria2 sends one again after
      // its first pieces: take it as a batch of haves (a peer never loses pieces).
      for (let i = 0; i < field.size; i++) if (field.has(i)) this.have(i);
      return;
    }
    this.firstMessage();
    for (let i = 0; i < field.size; i++) if (field.has(i)) this.has.set(i);
    this.owner.peerHasChanged(this, -1);
  }

  private firstMessage(): void {
    this.gotFirstMessage = true;
  }

  private accept(bytes: Uint8Array): void {
    this.reader.feed(bytes);
    this.afterInput();
  }

  private afterInput(): void {
    // Top up in batches of an eighth of the pipeline: a few requests after
    // every read would cost a write syscall (ours and the peer's read) each.
    if (this.pipelineRoom >= Math.max(1, this.pipelineTarget >> 3)) {
      this.owner.fillPipeline(this);
    }
    this.serveUploads();
    this.flush();
  }

  /** Moves queued requests into the send buffer, within the watermark and the upload cap. */
  private serveUploads(): void {
    const queue = this.uploads.pending;
    const upload = this.options.upload;
    while (
      queue.length > 0 && this.out.length < SEND_WATERMARK &&
      this.closedReason === null
    ) {
      const next = queue[0];
      if (!upload.allows(next.length)) {
        if (this.uploadTimer === undefined) {
          this.uploadTimer = setTimeout(() => {
            this.uploadTimer = undefined;
            try {
              this.serveUploads();
              this.flush();
            } catch (e) {
              this.fail(e);
            }
          }, Math.max(1, upload.waitMs(next.length)));
        }
        return;
      }
      queue.shift();
      const block = this.out.pieceSlot(next.index, next.begin, next.length);
      if (!this.owner.readBlock(next.index, next.begin, block)) {
        this.out.dropLast(13 + next.length);
        if (this.fast) {
          this.out.blockMessage(
            MessageId.Reject,
            next.index,
            next.begin,
            next.length,
          );
        }
        continue;
      }
      upload.charge(next.length);
      this.lastServedAt = performance.now();
      this.uploaded += next.length;
      this.uploadedThisTick += next.length;
      this.owner.blockServed(next.length);
    }
  }

  private giveBackRequests(): void {
    if (this.outstanding.size === 0) return;
    const lost = [...this.outstanding];
    this.outstanding.clear();
    this.owner.requestsLost(this, lost);
  }

  private flush(): void {
    if (this.writing || this.out.length === 0 || this.closedReason !== null) {
      return;
    }
    this.writing = true;
    this.writeLoop().catch((e) => this.fail(e));
  }

  private async writeLoop(): Promise<void> {
    while (this.out.length > 0 && this.closedReason === null) {
      try {
        await writeAll(this.conn, this.out.take());
      } catch (e) {
        this.writing = false;
        return this.close(`write failed: ${errorText(e)}`);
      }
      this.lastSendAt = performance.now();
      // Room in the send buffer again: serve more of the peer's requests.
      this.serveUploads();
    }
    this.writing = false;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function probeKey(piece: number, begin: number): number {
  return piece * 65536 + begin / BLOCK_SIZE;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
