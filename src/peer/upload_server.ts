// Serving one peer's requests, sans-IO: our choke state (BEP 3: choking
// drops what is queued; BEP 6: rejects it, one reject each), what may be
// asked while choked (BEP 6 allowed fast), refusals (a `reject` for every
// request not served, when the peer speaks BEP 6) and the flood bound, and
// moving queued blocks into the send buffer while it holds less than the
// watermark and the upload cap allows. Whether a request can be served and
// the block's bytes come from the owner; the choker decides the choke.

import type { Bandwidth } from "../swarm/bandwidth.ts";
import { MessageId, type OutBuffer } from "../wire/messages.ts";
import { PeerViolation } from "./faults.ts";
import { UploadQueue } from "./upload_queue.ts";

/** Where served blocks come from. */
export interface BlockSource {
  /** Why a request cannot be served, or null when it can. */
  refuseRequest(index: number, begin: number, length: number): string | null;
  /** Reads a verified block into `out`; false on a disk error. */
  readBlock(index: number, begin: number, out: Uint8Array): boolean;
  /** A block went into the send buffer (upload accounting). */
  blockServed(length: number): void;
}

/** The upload cap, as a token bucket. */
export type UploadBucket = Pick<Bandwidth, "allows" | "charge" | "waitMs">;

/** Served blocks queued for the socket at most; more waits for the writes. */
export const SEND_WATERMARK = 512 * 1024;
/** A `piece` message's bytes before its block. */
const PIECE_HEADER = 13;

export class UploadServer {
  amChoking = true;
  /** Payload bytes sent, and a second over the last tick. */
  uploaded = 0;
  rate = 0;
  /** When we last unchoked the peer, it last asked for a block, and we last sent it one. */
  unchokedAt = 0;
  lastRequestAt = 0;
  lastServedAt = 0;

  private queue = new UploadQueue();
  private servedThisTick = 0;
  /** BEP 6: pieces we let this peer fetch while we choke it. */
  private offeredFast = new Set<number>();

  constructor(
    private source: BlockSource,
    private bucket: UploadBucket,
    private out: OutBuffer,
    /** BEP 6 was advertised by both sides. */
    private fast: boolean,
    private now: () => number,
  ) {}

  /** Requests waiting to be served. */
  get queued(): number {
    return this.queue.pending.length;
  }

  /** When the peer last used its upload slot: unchoked, asked for a block, or was sent one. */
  get slotUsedAt(): number {
    return Math.max(this.unchokedAt, this.lastRequestAt, this.lastServedAt);
  }

  /** BEP 6: offers pieces the peer may fetch while choked (sent with our greeting). */
  offerFast(pieces: number[]): void {
    for (const index of pieces) {
      this.offeredFast.add(index);
      this.out.have(index, MessageId.AllowedFast);
    }
  }

  /** The choker's decision; false when it changes nothing. */
  setChoking(choking: boolean): boolean {
    if (choking === this.amChoking) return false;
    this.amChoking = choking;
    if (!choking) this.unchokedAt = this.now();
    this.out.simple(choking ? MessageId.Choke : MessageId.Unchoke);
    if (choking) {
      for (const r of this.queue.clear()) {
        if (this.fast) this.reject(r.index, r.begin, r.length);
      }
    }
    return true;
  }

  /**
   * A `request` of the peer, which has `peerPieces` pieces. Throws
   * PeerViolation when the peer keeps asking for what cannot be served.
   */
  request(
    index: number,
    begin: number,
    length: number,
    peerPieces: number,
  ): void {
    // Asking while choked is normal in a race with our choke; asking for
    // what cannot exist is not.
    const choked = this.amChoking &&
      !this.mayFetchWhileChoked(index, peerPieces);
    const refusal = choked
      ? null
      : this.source.refuseRequest(index, begin, length);
    if (choked || refusal !== null) {
      if (!choked) this.queue.refused();
      if (this.fast) this.reject(index, begin, length);
    } else if (this.queue.add({ index, begin, length })) {
      this.lastRequestAt = this.now();
    } else if (this.fast) {
      this.reject(index, begin, length);
    }
    this.throwIfFlooding();
  }

  /** A `cancel`. BEP 6: even a cancelled request gets exactly one answer. */
  cancel(index: number, begin: number, length: number): void {
    if (this.queue.cancel(index, begin, length) && this.fast) {
      this.reject(index, begin, length);
    }
  }

  /** Counts a request refused elsewhere (BEP 9 metadata); throws PeerViolation past the bound. */
  refused(): void {
    this.queue.refused();
    this.throwIfFlooding();
  }

  /**
   * Moves queued requests into the send buffer, read straight into their
   * `piece` messages, while it holds less than the watermark. Returns the
   * ms until the upload cap lets the next one go, or 0 when none waits on
   * the cap.
   */
  serve(): number {
    const queue = this.queue.pending;
    while (queue.length > 0 && this.out.length < SEND_WATERMARK) {
      const next = queue[0];
      if (!this.bucket.allows(next.length)) {
        return Math.max(1, this.bucket.waitMs(next.length));
      }
      queue.shift();
      const block = this.out.pieceSlot(next.index, next.begin, next.length);
      if (!this.source.readBlock(next.index, next.begin, block)) {
        this.out.dropLast(PIECE_HEADER + next.length);
        if (this.fast) this.reject(next.index, next.begin, next.length);
        continue;
      }
      this.bucket.charge(next.length);
      this.lastServedAt = this.now();
      this.uploaded += next.length;
      this.servedThisTick += next.length;
      this.source.blockServed(next.length);
    }
    return 0;
  }

  /** Once a tick: the upload rate over it. */
  measure(tickSeconds: number): void {
    this.rate = this.servedThisTick / tickSeconds;
    this.servedThisTick = 0;
  }

  /** BEP 6: an offered allowed-fast piece, to a peer still starting (at most k pieces). */
  private mayFetchWhileChoked(index: number, peerPieces: number): boolean {
    return this.offeredFast.has(index) && peerPieces <= this.offeredFast.size;
  }

  private reject(index: number, begin: number, length: number): void {
    this.out.blockMessage(MessageId.Reject, index, begin, length);
  }

  private throwIfFlooding(): void {
    if (this.queue.flooding) {
      throw new PeerViolation(
        `sent ${this.queue.badRequests} requests that could not be served`,
      );
    }
  }
}
