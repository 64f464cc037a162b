// BEP 9: the info dictionary of a magnet link, put together from 16 KiB
// pieces and checked against the info-hash. One peer at a time is the
// source of an attempt, so that a dictionary that fails its check can be
// blamed on whoever sent it; another peer takes over only the pieces the
// first did not deliver.

import { createHash } from "node:crypto";
import {
  METADATA_PIECE_SIZE,
  metadataPieceCount,
} from "../wire/ut_metadata.ts";
import { MAX_METADATA_SIZE } from "../wire/extension.ts";

export type PieceResult = "stored" | "ignored" | "complete" | "corrupt";

export class MetadataAssembly {
  readonly pieceCount: number;
  private buffer: Uint8Array;
  private received: boolean[];
  private receivedCount = 0;
  /** Connection numbers that sent pieces of this attempt. */
  readonly senders = new Set<number>();

  constructor(readonly infoHash: Uint8Array, readonly size: number) {
    if (size <= 0 || size > MAX_METADATA_SIZE) {
      throw new RangeError(`metadata size ${size} is out of range`);
    }
    this.pieceCount = metadataPieceCount(size);
    this.buffer = new Uint8Array(size);
    this.received = new Array(this.pieceCount).fill(false);
  }

  /** Pieces not received yet, in order. */
  missing(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.pieceCount; i++) {
      if (!this.received[i]) out.push(i);
    }
    return out;
  }

  /** Expected length of a piece: 16 KiB, the last one shorter. */
  pieceLength(piece: number): number {
    return Math.min(
      METADATA_PIECE_SIZE,
      this.size - piece * METADATA_PIECE_SIZE,
    );
  }

  /**
   * Stores one piece. "ignored": a piece we had, or one that does not fit
   * (the caller rates the sender down); "complete": every piece is in and the
   * SHA-1 matches; "corrupt": every piece is in and it does not (the attempt
   * is reset; `senders` held who sent it until then).
   */
  receive(
    piece: number,
    totalSize: number,
    data: Uint8Array,
    from: number,
  ): PieceResult {
    if (
      totalSize !== this.size || piece >= this.pieceCount ||
      data.length !== this.pieceLength(piece) || this.received[piece]
    ) {
      return "ignored";
    }
    this.buffer.set(data, piece * METADATA_PIECE_SIZE);
    this.received[piece] = true;
    this.receivedCount++;
    this.senders.add(from);
    if (this.receivedCount < this.pieceCount) return "stored";
    const digest = createHash("sha1").update(this.buffer).digest();
    if (digest.equals(this.infoHash)) return "complete";
    return "corrupt";
  }

  /** The verified dictionary (valid once receive() said "complete"). */
  get bytes(): Uint8Array {
    return this.buffer;
  }

  /** Starts the attempt over after a failed check. */
  reset(): void {
    this.received.fill(false);
    this.receivedCount = 0;
    this.senders.clear();
  }
}
