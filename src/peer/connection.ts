// One peer connection after the handshake (BEP 3): reads into one fixed
// buffer and parses in place (WireReader), keeps the choke/interest state and
// the peer's pieces, and keeps a pipeline of block requests whose depth
// follows the peer's measured rate. What to request and what a block means
// are the owner's business.

import { Bitfield } from "../pieces/bitfield.ts";
import { BLOCK_SIZE } from "../pieces/geometry.ts";
import type { BlockRequest } from "../pieces/picker.ts";
import { MessageId, OutBuffer } from "../wire/messages.ts";
import { WireError } from "../wire/handshake.ts";
import { type WireHandler, WireReader } from "../wire/reader.ts";

/** What a connection reports to, and asks of, its torrent. */
export interface PeerOwner {
  /** The peer's piece set changed: a bitfield (index -1) or one `have`. */
  peerHasChanged(peer: PeerConnection, index: number): void;
  /** A block arrived; throws PeerViolation when it was never asked for. */
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
  /** Outstanding requests were dropped (choke, reject, snub): give them back. */
  requestsLost(peer: PeerConnection, blockIds: Iterable<number>): void;
  closed(peer: PeerConnection, reason: string, violation: boolean): void;
}

/** A peer broke the protocol; it is dropped and rated down. */
export class PeerViolation extends Error {
  override name = "PeerViolation";
}

export interface ConnectionOptions {
  maxRequests: number;
  /** Seconds of the peer's rate to keep in flight as requests. */
  pipelineSeconds: number;
}

const MIN_PIPELINE = 4;
/** Largest payload besides a bitfield: a 128 KiB block plus its header. */
const MAX_MESSAGE = 128 * 1024 + 9;
const READ_BUFFER = 256 * 1024;

let nextPeerNumber = 0;

export class PeerConnection implements WireHandler {
  /** A small integer naming this connection (block attribution). */
  readonly num = nextPeerNumber++;
  readonly has: Bitfield;
  readonly outstanding = new Set<number>();
  amInterested = false;
  amChoking = true;
  peerChoking = true;
  peerInterested = false;
  /** Payload bytes received from this peer (blocks). */
  downloaded = 0;
  uploaded = 0;
  /** Payload bytes a second, measured over the last tick. */
  rate = 0;
  pipelineTarget = MIN_PIPELINE;
  snubbed = false;
  lastReceiveAt = performance.now();
  lastSendAt = performance.now();
  lastBlockAt = performance.now();
  closedReason: string | null = null;

  private reader: WireReader;
  private out = new OutBuffer();
  private writing = false;
  private gotFirstMessage = false;
  private bytesThisTick = 0;
  private measured = false;

  constructor(
    readonly conn: Deno.TcpConn,
    readonly host: string,
    readonly port: number,
    readonly peerId: Uint8Array,
    pieceCount: number,
    private owner: PeerOwner,
    private options: ConnectionOptions,
  ) {
    this.has = new Bitfield(pieceCount);
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

  /** Reads until the connection closes; never throws. */
  async run(leftover: Uint8Array, ourBitfield: Bitfield): Promise<void> {
    if (ourBitfield.count > 0) this.out.bitfield(ourBitfield.bytes);
    this.flush();
    try {
      if (leftover.length > 0) this.accept(leftover);
      while (this.closedReason === null) {
        const space = this.reader.space();
        const n = await this.conn.read(space);
        if (n === null) return this.close("peer closed the connection");
        this.lastReceiveAt = performance.now();
        this.reader.commit(n);
        this.afterInput();
      }
    } catch (e) {
      if (e instanceof WireError || e instanceof PeerViolation) {
        this.close(e.message, true);
      } else if (this.closedReason === null) {
        this.close(e instanceof Error ? e.message : String(e));
      }
    }
  }

  /** Sends requests the owner picked. */
  sendRequests(requests: BlockRequest[]): void {
    for (const r of requests) {
      this.out.blockMessage(MessageId.Request, r.piece, r.begin, r.length);
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

  /** Room left in the request pipeline. */
  get pipelineRoom(): number {
    if (this.peerChoking || !this.amInterested || this.closedReason !== null) {
      return 0;
    }
    return Math.max(0, this.pipelineTarget - this.outstanding.size);
  }

  /**
   * Once a second: measure the rate, size the pipeline, send keep-alives and
   * detect a snubbing or silent peer. Returns a reason to drop it, or null.
   */
  tick(
    now: number,
    tickSeconds: number,
    snubSeconds: number,
    idleSeconds: number,
  ): string | null {
    this.rate = this.bytesThisTick / tickSeconds;
    if (this.bytesThisTick > 0) this.measured = true;
    this.bytesThisTick = 0;
    if (this.measured) {
      const wanted = Math.ceil(
        (this.rate * this.options.pipelineSeconds) / BLOCK_SIZE,
      );
      this.pipelineTarget = clamp(
        wanted,
        MIN_PIPELINE,
        this.options.maxRequests,
      );
    }
    if (now - this.lastReceiveAt > idleSeconds * 1000) {
      return `peer sent nothing for ${idleSeconds} s`;
    }
    if (
      this.outstanding.size > 0 && now - this.lastBlockAt > snubSeconds * 1000
    ) {
      // Snubbed: its requests go to other peers and it keeps one probe.
      this.snubbed = true;
      this.pipelineTarget = 1;
      this.giveBackRequests();
    }
    if (now - this.lastSendAt > 60_000) {
      this.out.keepAlive();
      this.flush();
    }
    return null;
  }

  close(reason: string, violation = false): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    try {
      this.conn.close();
    } catch { /* the socket may already be gone */ }
    this.owner.closed(this, reason, violation);
  }

  // --- WireHandler: called by the reader for each whole message ---

  keepAlive(): void {}

  choke(): void {
    this.firstMessage();
    this.peerChoking = true;
    // BEP 3: a choke discards every pending request.
    this.giveBackRequests();
  }

  unchoke(): void {
    this.firstMessage();
    this.peerChoking = false;
  }

  interested(): void {
    this.firstMessage();
    this.peerInterested = true;
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
    this.bitfieldFrom(Bitfield.full(this.has.size));
  }

  haveNone(): void {
    this.firstMessage();
  }

  request(): void {
    // We never unchoke in download-only mode, so a request is not served.
    this.firstMessage();
  }

  piece(index: number, begin: number, block: Uint8Array): void {
    this.firstMessage();
    this.lastBlockAt = performance.now();
    this.bytesThisTick += block.length;
    this.downloaded += block.length;
    if (!this.measured && this.pipelineTarget < this.options.maxRequests) {
      // Slow start until the first rate sample: one more request per block.
      this.pipelineTarget++;
    }
    if (this.snubbed) {
      this.snubbed = false;
      this.pipelineTarget = MIN_PIPELINE;
    }
    this.owner.blockArrived(this, index, begin, block);
  }

  cancel(): void {
    this.firstMessage();
  }

  dhtPort(): void {
    this.firstMessage();
  }

  suggest(): void {
    this.firstMessage();
  }

  reject(index: number, begin: number, length: number): void {
    this.firstMessage();
    this.owner.blockRejected(this, index, begin, length);
  }

  allowedFast(): void {
    this.firstMessage();
  }

  extended(): void {
    this.firstMessage();
  }

  // --- helpers ---

  private bitfieldFrom(field: Bitfield): void {
    // BEP 3: a bitfield (or BEP 6 have-all) may only be the first message.
    if (this.gotFirstMessage) {
      throw new PeerViolation("bitfield after the first message");
    }
    this.firstMessage();
    for (let i = 0; i < field.size; i++) if (field.has(i)) this.has.set(i);
    this.owner.peerHasChanged(this, -1);
  }

  private firstMessage(): void {
    this.gotFirstMessage = true;
  }

  private accept(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      const space = this.reader.space();
      const n = Math.min(space.length, bytes.length - off);
      space.set(bytes.subarray(off, off + n));
      this.reader.commit(n);
      off += n;
    }
    this.afterInput();
  }

  private afterInput(): void {
    // Top up in batches of an eighth of the pipeline: a few requests after
    // every read would cost a write syscall (ours and the peer's read) each.
    if (this.pipelineRoom >= Math.max(1, this.pipelineTarget >> 3)) {
      this.owner.fillPipeline(this);
    }
    this.flush();
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
    this.writeLoop().catch((e) =>
      this.close(`write failed: ${e instanceof Error ? e.message : e}`)
    );
  }

  private async writeLoop(): Promise<void> {
    while (this.out.length > 0 && this.closedReason === null) {
      const data = this.out.take();
      let off = 0;
      while (off < data.length) {
        off += await this.conn.write(data.subarray(off));
      }
      this.lastSendAt = performance.now();
    }
    this.writing = false;
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
