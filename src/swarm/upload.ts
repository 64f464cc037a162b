// The upload side of one torrent's connections: who may download from us
// (the choker, BEP 3 choking), which requests are served (blocks of
// verified pieces, within the piece, at most 128 KiB), which pieces a peer
// may fetch while choked (BEP 6 allowed fast), reading served blocks from the
// store, and the upload figures.

import type { Bitfield } from "../pieces/bitfield.ts";
import type { PieceGeometry } from "../pieces/geometry.ts";
import { allowedFastSet } from "../wire/allowed_fast.ts";
import { Choker, type ChokerPeer } from "./choker.ts";
import { RateMeter } from "./rate_meter.ts";

export interface UploadOptions {
  /** Peers unchoked at once, the optimistic one included. */
  slots: number;
  geometry: PieceGeometry;
  /** Our verified pieces. */
  have: Bitfield;
  infoHash: Uint8Array;
  /** Reads a verified block into `out`; false or a throw on a disk error. */
  read: (index: number, begin: number, out: Uint8Array) => boolean;
  log: (line: string) => void;
}

/** BEP 3 caps a request at 128 KiB in practice (libtorrent refuses larger ones too). */
export const MAX_REQUEST = 128 * 1024;

export class Upload<P extends ChokerPeer> {
  /** Payload bytes sent this run. */
  uploaded = 0;
  readonly rate = new RateMeter();
  private choker: Choker<P>;

  constructor(private peers: Iterable<P>, private options: UploadOptions) {
    this.choker = new Choker(options.slots);
  }

  /** Why a peer's request cannot be served, or null when it can. */
  refusal(index: number, begin: number, length: number): string | null {
    const { geometry, have } = this.options;
    if (index >= geometry.pieceCount) return `piece ${index} does not exist`;
    if (length === 0 || length > MAX_REQUEST) {
      return `request of ${length} bytes`;
    }
    if (begin + length > geometry.pieceSize(index)) {
      return `request past the end of piece ${index}`;
    }
    if (!have.has(index)) return `piece ${index} is not verified here`;
    return null;
  }

  /** Reads a block to serve; a disk error is logged and the request refused. */
  read(index: number, begin: number, out: Uint8Array): boolean {
    try {
      return this.options.read(index, begin, out);
    } catch (e) {
      this.options.log(
        `cannot serve piece ${index}: ${e instanceof Error ? e.message : e}`,
      );
      return false;
    }
  }

  /** A block went into a connection's send buffer. */
  served(length: number): void {
    this.uploaded += length;
  }

  /** BEP 6: the pieces of ours the peer at `host` may fetch while we choke it. */
  offeredFast(host: string): number[] {
    const { infoHash, geometry, have } = this.options;
    return allowedFastSet(host, infoHash, geometry.pieceCount)
      .filter((i) => have.has(i));
  }

  /** The peer turned interested: the choker may unchoke it at once. */
  interested(peer: P): void {
    this.choker.interested(peer, this.peers);
  }

  /** The peer's connection closed: its slot goes to another. */
  removed(peer: P): void {
    this.choker.removed(peer, this.peers);
  }

  /** Once a second: the choker's rounds and the upload rate. */
  tick(seeding: boolean, now: number, seconds: number): void {
    this.choker.tick(this.peers, seeding, now);
    this.rate.sample(this.uploaded, seconds);
  }
}
