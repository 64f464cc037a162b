// One peer connection after the handshake (BEP 3, BEP 6 fast extension,
// BEP 10 extension messages: ut_metadata served, ut_pex relayed): the socket
// loop over a transport stream, which reads into one fixed buffer and parses
// in place (WireReader), and hands each message to the sans-IO part it
// concerns: the peer's pieces (peer_pieces.ts), our requests
// (request_pipeline.ts), its requests (upload_server.ts), our info
// dictionary (metadata_server.ts). Writes go through write_loop.ts. What to
// request, what a block means and where served data comes from are the
// owner's business; NOTES.md has the hand-over and upload rules.

import type { Bitfield } from "../pieces/bitfield.ts";
import type { BlockRequest } from "../pieces/picker.ts";
import { BencodeError } from "../bencode/types.ts";
import type { PeerStream } from "../net/transport.ts";
import { formatHostPort, type PeerAddress } from "../net/address.ts";
import { type CloseCause, isProtocolError, PeerViolation } from "./faults.ts";
import type { ConnectionOptions, PeerOwner } from "./peer_owner.ts";
import { writeGreeting } from "./greeting.ts";
import { PeerPieces } from "./peer_pieces.ts";
import { replayPrior, type TakenOverStream } from "./prior_state.ts";
import {
  EXTENDED_HANDSHAKE_ID,
  type ExtensionHandshake,
  LOCAL_EXTENSION_IDS,
  mergeExtensionHandshake,
  parseExtensionHandshake,
} from "../wire/extension.ts";
import { MessageId, type OutBuffer } from "../wire/messages.ts";
import { parseMetadataMessage } from "../wire/ut_metadata.ts";
import { encodePex, parsePex, type PexEntry } from "../wire/ut_pex.ts";
import { type WireHandler, WireReader } from "../wire/reader.ts";
import { RequestPipeline } from "./request_pipeline.ts";
import { MetadataServer } from "./metadata_server.ts";
import { UploadServer } from "./upload_server.ts";
import { WriteLoop } from "./write_loop.ts";

export type { ConnectionOptions, PeerOwner } from "./peer_owner.ts";

/** Largest payload besides a bitfield: a 128 KiB block plus its header. */
const MAX_MESSAGE = 128 * 1024 + 9;
const READ_BUFFER = 256 * 1024;

let nextPeerNumber = 0;

export class PeerConnection implements WireHandler {
  /** A small integer naming this connection (block attribution). */
  readonly num = nextPeerNumber++;
  amInterested = false;
  peerChoking = true;
  peerInterested = false;
  lastReceiveAt = performance.now();
  lastSendAt = performance.now();
  closedReason: string | null = null;

  private reader: WireReader;
  private writer: WriteLoop;
  private out: OutBuffer;
  private gotFirstMessage = false;
  private pieces: PeerPieces;
  private pipeline: RequestPipeline;
  private uploads: UploadServer;
  private peerExtensions: ExtensionHandshake | null = null;
  private uploadTimer: ReturnType<typeof setTimeout> | undefined;
  private metadataServer: MetadataServer;
  private gotDhtPort = false;

  constructor(
    readonly conn: PeerStream,
    readonly host: string,
    readonly port: number,
    readonly peerId: Uint8Array,
    pieceCount: number,
    private owner: PeerOwner,
    readonly options: ConnectionOptions,
  ) {
    this.pieces = new PeerPieces(
      pieceCount,
      (index) => owner.peerHasChanged(this, index),
    );
    this.reader = new WireReader(this, {
      maxMessageLength: Math.max(MAX_MESSAGE, 1 + Math.ceil(pieceCount / 8)),
      bufferSize: READ_BUFFER,
    });
    this.writer = new WriteLoop(conn, {
      written: () => this.written(),
      failed: (e) => this.close(`write failed: ${errorText(e)}`),
    });
    this.out = this.writer.out;
    const clock = () => performance.now();
    this.pipeline = new RequestPipeline(options, clock);
    this.uploads = new UploadServer(
      owner,
      options.upload,
      this.out,
      options.fast,
      clock,
    );
    this.metadataServer = new MetadataServer(options.metadata, this.out);
  }

  /** The pieces the peer has. */
  get has(): Bitfield {
    return this.pieces.has;
  }

  /** BEP 6: pieces the peer lets us fetch while it chokes us. */
  get fastPieces(): Bitfield {
    return this.pieces.fastPieces;
  }

  get amChoking(): boolean {
    return this.uploads.amChoking;
  }

  /** Payload bytes sent to this peer, and a second over the last tick. */
  get uploaded(): number {
    return this.uploads.uploaded;
  }

  get uploadRate(): number {
    return this.uploads.rate;
  }

  /** Requests of the peer waiting to be served. */
  get uploadsQueued(): number {
    return this.uploads.queued;
  }

  /** When the peer last used its upload slot: unchoked, asked for a block, or was sent one. */
  get slotUsedAt(): number {
    return this.uploads.slotUsedAt;
  }

  /** The peer's BEP 10 handshake, once received. */
  get extensions(): ExtensionHandshake | null {
    return this.peerExtensions;
  }

  /** Block ids asked of the peer and not yet answered; the picker adds to it. */
  get outstanding(): Set<number> {
    return this.pipeline.outstanding;
  }

  /** Payload bytes taken from this peer, and a second over the last tick. */
  get downloaded(): number {
    return this.pipeline.downloaded;
  }

  get rate(): number {
    return this.pipeline.rate;
  }

  get peakRate(): number {
    return this.pipeline.peakRate;
  }

  /** Smoothed request round trip in ms (0 until measured). */
  get rttMs(): number {
    return this.pipeline.rttMs;
  }

  get snubbed(): boolean {
    return this.pipeline.snubbed;
  }

  get snubCount(): number {
    return this.pipeline.snubCount;
  }

  get address(): string {
    return formatHostPort(this.host, this.port);
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
      writeGreeting(this.out, { ...this.options, ours }, prior);
      if (this.fast) this.uploads.offerFast(allowedFast);
      this.writer.flush();
      if (prior) {
        if (prior.extensions) this.learnExtensions(prior.extensions);
        replayPrior(prior, this);
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
    this.pipeline.send(requests, this.out);
    this.writer.flush();
  }

  sendCancel(
    blockId: number,
    piece: number,
    begin: number,
    length: number,
  ): void {
    if (this.pipeline.cancel(blockId, piece, begin, length, this.out)) {
      this.writer.flush();
    }
  }

  /** BEP 11: one peer-exchange message; the caller keeps the limits. */
  sendPex(added: PexEntry[], dropped: PeerAddress[]): void {
    const id = this.extensions?.messages.get("ut_pex") ?? 0;
    if (id === 0) return;
    this.out.extended(id, encodePex(added, dropped));
    this.writer.flush();
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
    this.writer.flush();
  }

  setInterested(interested: boolean): void {
    if (interested === this.amInterested) return;
    this.amInterested = interested;
    this.out.simple(
      interested ? MessageId.Interested : MessageId.NotInterested,
    );
    this.writer.flush();
  }

  /** The choker's decision. Choking drops (BEP 3) or rejects (BEP 6) queued requests. */
  setChoking(choking: boolean): void {
    if (this.closedReason === null && this.uploads.setChoking(choking)) {
      this.writer.flush();
    }
  }

  /** Room left in the request pipeline (allowed-fast pieces count while choked). */
  get pipelineRoom(): number {
    if (!this.amInterested || this.closedReason !== null) return 0;
    if (this.peerChoking && this.fastPieces.count === 0) return 0;
    return this.pipeline.room;
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
    this.pipeline.measure(tickSeconds);
    this.uploads.measure(tickSeconds);
    if (now - this.lastReceiveAt > idleSeconds * 1000) {
      return `peer sent nothing for ${idleSeconds} s`;
    }
    // Snubbed: its requests go to other peers and it keeps one probe.
    if (this.pipeline.detectSnub(snubSeconds)) this.giveBackRequests();
    if (now - this.lastSendAt > 60_000) {
      this.out.keepAlive();
      this.writer.flush();
    }
    return null;
  }

  close(reason: string, cause: CloseCause = "ended"): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.writer.stop();
    clearTimeout(this.uploadTimer);
    this.conn.close();
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
    this.pieces.have(index);
  }

  bitfield(bits: Uint8Array): void {
    this.pieces.bitfield(bits, this.firstMessage());
  }

  haveAll(): void {
    this.requireFast("have all");
    this.pieces.haveAll(this.firstMessage());
  }

  haveNone(): void {
    this.requireFast("have none");
    this.pieces.haveNone(this.firstMessage());
  }

  request(index: number, begin: number, length: number): void {
    this.firstMessage();
    this.uploads.request(index, begin, length, this.has.count);
  }

  piece(index: number, begin: number, block: Uint8Array): void {
    this.firstMessage();
    this.pipeline.blockArrived(index, begin);
    this.owner.blockArrived(this, index, begin, block);
  }

  /** The owner took one of this peer's blocks into a piece (only that counts as downloaded). */
  blockTaken(length: number): void {
    this.pipeline.blockTaken(length);
  }

  cancel(index: number, begin: number, length: number): void {
    this.firstMessage();
    this.uploads.cancel(index, begin, length);
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
    this.pieces.allowedFast(index);
  }

  extended(id: number, payload: Uint8Array): void {
    // BEP 10 handshakes often come before the bitfield, so they do not count
    // as the first message.
    if (id === EXTENDED_HANDSHAKE_ID) {
      try {
        // BEP 10: a later handshake updates only the keys it carries.
        this.learnExtensions(mergeExtensionHandshake(
          this.extensions,
          parseExtensionHandshake(payload),
        ));
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

  private learnExtensions(extensions: ExtensionHandshake): void {
    this.peerExtensions = extensions;
    this.pipeline.peerQueueLimit = extensions.maxRequests;
  }

  /**
   * BEP 9: a request for our info dictionary is answered (a reject is
   * counted like an unservable block request). Data and rejects are never
   * asked for here, so they are ignored.
   */
  private metadataMessage(payload: Uint8Array): void {
    const message = parseMetadataMessage(payload);
    const id = this.extensions?.messages.get("ut_metadata") ?? 0;
    if (message.type !== "request" || id === 0) return;
    const served = this.metadataServer.answer(message.piece, id);
    this.writer.flush();
    if (!served) this.uploads.refused();
  }

  /** BEP 6: fast-extension messages without the extension close the connection. */
  private requireFast(what: string): void {
    if (!this.fast) {
      throw new PeerViolation(`sent ${what} without the fast extension`);
    }
  }

  /** Marks that a message came (BEP 10 handshakes and DHT ports do not count); true for the first. */
  private firstMessage(): boolean {
    const first = !this.gotFirstMessage;
    this.gotFirstMessage = true;
    return first;
  }

  private accept(bytes: Uint8Array): void {
    this.reader.feed(bytes);
    this.afterInput();
  }

  private afterInput(): void {
    if (this.pipelineRoom > 0 && this.pipeline.wantsMore) {
      this.owner.fillPipeline(this);
    }
    this.serveUploads();
    this.writer.flush();
  }

  /** Serves queued requests; when the upload cap holds them back, again once it allows. */
  private serveUploads(): void {
    if (this.closedReason !== null) return;
    const waitMs = this.uploads.serve();
    if (waitMs > 0 && this.uploadTimer === undefined) {
      this.uploadTimer = setTimeout(() => {
        this.uploadTimer = undefined;
        try {
          this.serveUploads();
          this.writer.flush();
        } catch (e) {
          this.fail(e);
        }
      }, waitMs);
    }
  }

  private giveBackRequests(): void {
    if (this.outstanding.size === 0) return;
    this.owner.requestsLost(this, this.pipeline.takeOutstanding());
  }

  private written(): void {
    this.lastSendAt = performance.now();
    try {
      // Room in the send buffer again: serve more of the peer's requests.
      this.serveUploads();
    } catch (e) {
      this.fail(e);
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
