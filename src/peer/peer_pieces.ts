// What the peer says it has, sans-IO: BEP 3 `bitfield` and `have`, BEP 6
// `have all`, `have none` and `allowed fast`, each checked against the
// torrent's piece count. A bitfield is allowed only as the first message
// (BEP 3), but aria2 sends one again after its first pieces: a later one is
// taken as a batch of haves, since a peer never loses pieces.

import { Bitfield } from "../pieces/bitfield.ts";
import { PeerViolation } from "./faults.ts";

export class PeerPieces {
  readonly has: Bitfield;
  /** BEP 6: pieces the peer lets us fetch while it chokes us. */
  readonly fastPieces: Bitfield;

  constructor(
    pieceCount: number,
    /** The piece set grew: by one piece, or (-1) by a whole first bitfield. */
    private changed: (index: number) => void,
  ) {
    this.has = new Bitfield(pieceCount);
    this.fastPieces = new Bitfield(pieceCount);
  }

  have(index: number): void {
    if (index >= this.has.size) {
      throw new PeerViolation(`have for piece ${index} out of range`);
    }
    if (this.has.has(index)) return;
    this.has.set(index);
    this.changed(index);
  }

  /** A `bitfield`; `first` when no other message (bar BEP 10 and DHT port) came before. */
  bitfield(bits: Uint8Array, first: boolean): void {
    const field = Bitfield.fromWire(bits, this.has.size);
    if (!field) {
      throw new PeerViolation(
        `bitfield of ${bits.length} bytes does not fit ${this.has.size} pieces`,
      );
    }
    this.all(field, first);
  }

  haveAll(first: boolean): void {
    this.all(Bitfield.full(this.has.size), first);
  }

  haveNone(first: boolean): void {
    this.all(new Bitfield(this.has.size), first);
  }

  allowedFast(index: number): void {
    // BEP 6: an index we cannot use is ignored, not an error.
    if (index < this.fastPieces.size) this.fastPieces.set(index);
  }

  private all(field: Bitfield, first: boolean): void {
    if (!first) {
      for (let i = 0; i < field.size; i++) if (field.has(i)) this.have(i);
      return;
    }
    for (let i = 0; i < field.size; i++) if (field.has(i)) this.has.set(i);
    this.changed(-1);
  }
}
