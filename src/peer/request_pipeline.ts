// Our block requests to one peer (BEP 3 `request`, `cancel`), sans-IO: how
// many may be in flight, following the peer's rate (about pipelineSeconds of
// it, between 4 and our limit, never above the peer's BEP 10 `reqq`), with a
// slow start of one more request per block until the first rate sample; a
// sampled round-trip time; and snubbing (libtorrent's term): a peer that
// sends no block for snubSeconds while it holds requests keeps one probe,
// and the others go to other peers. Which blocks to ask for is the
// picker's business; the owner adds them to `outstanding` as it picks them.

import { BLOCK_SIZE } from "../pieces/geometry.ts";
import type { BlockRequest } from "../pieces/picker.ts";
import { MessageId, type OutBuffer } from "../wire/messages.ts";

export interface PipelineLimits {
  /** Requests in flight at most (config maxRequestsPerPeer). */
  maxRequests: number;
  /** Seconds of the peer's rate to keep in flight as requests. */
  pipelineSeconds: number;
}

/** The smallest depth once a peer delivers, and where an unsnubbed peer restarts. */
export const MIN_PIPELINE = 4;
/** One request in this many is timed for the round-trip estimate. */
const RTT_SAMPLE_EVERY = 16;
/** Requests timed at once at most. */
const MAX_RTT_PROBES = 64;

export class RequestPipeline {
  /** Block ids asked of the peer and not yet answered. */
  readonly outstanding = new Set<number>();
  /** Requests wanted in flight (before the peer's `reqq` cap). */
  target = MIN_PIPELINE;
  snubbed = false;
  snubCount = 0;
  /** Payload bytes taken from the peer, and their rate over the last tick. */
  downloaded = 0;
  rate = 0;
  peakRate = 0;
  /** Smoothed request round trip in ms (0 until measured). */
  rttMs = 0;
  /** The peer's BEP 10 `reqq`: requests it keeps queued at most, if it said. */
  peerQueueLimit: number | null = null;

  private lastBlockAt: number;
  private bytesThisTick = 0;
  /** A rate has been measured: the depth follows it, slow start is over. */
  private measured = false;
  private requestsSent = 0;
  /** probeKey(piece, begin) -> when it was sent. */
  private rttProbes = new Map<number, number>();

  constructor(
    private limits: PipelineLimits,
    private now: () => number,
  ) {
    this.lastBlockAt = now();
  }

  /** Requests the peer keeps queued at most: ours, or its `reqq` if lower. */
  get maxRequests(): number {
    const reqq = this.peerQueueLimit;
    return reqq
      ? Math.min(reqq, this.limits.maxRequests)
      : this.limits.maxRequests;
  }

  /** Requests that may be sent now. The peer's `reqq` caps the slow start too. */
  get room(): number {
    const depth = Math.min(this.target, this.maxRequests);
    return Math.max(0, depth - this.outstanding.size);
  }

  /**
   * Worth topping up: room for an eighth of the depth. A few requests
   * after every read would cost a write syscall (ours and the peer's read)
   * each.
   */
  get wantsMore(): boolean {
    return this.room >= Math.max(1, this.target >> 3);
  }

  /** Writes requests the owner picked, timing one in RTT_SAMPLE_EVERY. */
  send(requests: BlockRequest[], out: OutBuffer): void {
    const now = this.now();
    for (const r of requests) {
      out.blockMessage(MessageId.Request, r.piece, r.begin, r.length);
      if (
        ++this.requestsSent % RTT_SAMPLE_EVERY === 0 &&
        this.rttProbes.size < MAX_RTT_PROBES
      ) {
        this.rttProbes.set(probeKey(r.piece, r.begin), now);
      }
    }
  }

  /** Withdraws an outstanding request; false (nothing written) when it is not outstanding. */
  cancel(
    blockId: number,
    piece: number,
    begin: number,
    length: number,
    out: OutBuffer,
  ): boolean {
    if (!this.outstanding.delete(blockId)) return false;
    out.blockMessage(MessageId.Cancel, piece, begin, length);
    return true;
  }

  /** A `piece` message arrived (taken or not): it may close a timed round trip. */
  blockArrived(piece: number, begin: number): void {
    if (this.rttProbes.size === 0) return;
    const key = probeKey(piece, begin);
    const sentAt = this.rttProbes.get(key);
    if (sentAt === undefined) return;
    this.rttProbes.delete(key);
    const sample = this.now() - sentAt;
    this.rttMs = this.rttMs === 0 ? sample : this.rttMs * 0.8 + sample * 0.2;
  }

  /**
   * The owner took one of the peer's blocks into a piece: only such payload
   * counts, for the rate and the rating (libtorrent counts the rest as
   * redundant bytes).
   */
  blockTaken(length: number): void {
    this.lastBlockAt = this.now();
    this.bytesThisTick += length;
    this.downloaded += length;
    if (!this.measured && this.target < this.maxRequests) this.target++;
    if (this.snubbed) {
      this.snubbed = false;
      this.target = MIN_PIPELINE;
    }
  }

  /** Once a tick: the rate over it, and the depth that follows from it. */
  measure(tickSeconds: number): void {
    this.rate = this.bytesThisTick / tickSeconds;
    this.peakRate = Math.max(this.peakRate, this.rate);
    if (this.bytesThisTick > 0) this.measured = true;
    this.bytesThisTick = 0;
    if (this.measured) {
      const wanted = Math.ceil(
        (this.rate * this.limits.pipelineSeconds) / BLOCK_SIZE,
      );
      this.target = clamp(wanted, MIN_PIPELINE, this.maxRequests);
    }
  }

  /**
   * True when the peer has just turned out to snub us: no block for
   * snubSeconds while it held requests. The depth drops to one probe; the
   * caller gives the outstanding requests back (takeOutstanding()).
   */
  detectSnub(snubSeconds: number): boolean {
    if (
      this.snubbed || this.outstanding.size === 0 ||
      this.now() - this.lastBlockAt <= snubSeconds * 1000
    ) {
      return false;
    }
    this.snubbed = true;
    this.snubCount++;
    this.target = 1;
    return true;
  }

  /** Empties `outstanding` (a choke, a snub), returning what was in it. */
  takeOutstanding(): number[] {
    const lost = [...this.outstanding];
    this.outstanding.clear();
    return lost;
  }
}

function probeKey(piece: number, begin: number): number {
  return piece * 65536 + begin / BLOCK_SIZE;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
