// Which blocks to ask a peer for. Order (DESIGN.md step 3): blocks of pieces
// already in progress first (oldest first, so partial pieces finish and free
// their buffers), then the rarest piece the peer has, random among equals,
// then, in endgame, blocks already asked of someone else.
//
// Invariants:
// - a piece is in `active` iff it is not in `have` and at least one of its
//   blocks was handed out since it was last completed or failed;
// - `active.size` never exceeds maxActivePieces, which bounds memory;
// - a block is Free iff nobody has an outstanding request for it and it has
//   not been received.

import { ActivePiece, BlockState } from "./active_piece.ts";
import type { Bitfield } from "./bitfield.ts";
import { BLOCK_SIZE, type PieceGeometry } from "./geometry.ts";

/** A peer as the picker sees it. */
/** Which pieces a peer offers: its bitfield, or a narrower view of it. */
export interface PieceSet {
  has(index: number): boolean;
}

export interface PickerPeer {
  has: PieceSet;
  /** Global ids of blocks this peer has outstanding requests for. */
  outstanding: Set<number>;
}

export interface BlockRequest {
  piece: number;
  begin: number;
  length: number;
  id: number;
}

/** The most endgame requests any one block may have in flight. */
const ENDGAME_MAX_REQUESTERS = 2;

/** Pieces in progress at once: as many buffers as fit `memoryBytes` (the bound on in-flight data), at least 2. */
export function activePiecesWithin(
  memoryBytes: number,
  pieceLength: number,
): number {
  return Math.max(2, Math.floor(memoryBytes / pieceLength));
}

export class PiecePicker {
  readonly availability: Uint32Array;
  readonly active = new Map<number, ActivePiece>();
  private freeBuffers: Uint8Array[] = [];

  constructor(
    readonly geometry: PieceGeometry,
    readonly have: Bitfield,
    private maxActivePieces: number,
    /** Numbers in [0, 1) that break ties between equally rare pieces (seeded in tests). */
    private random: () => number = Math.random,
  ) {
    this.availability = new Uint32Array(geometry.pieceCount);
  }

  addPeer(has: Bitfield): void {
    for (let i = 0; i < has.size; i++) if (has.has(i)) this.availability[i]++;
  }

  removePeer(has: Bitfield): void {
    for (let i = 0; i < has.size; i++) {
      if (has.has(i) && this.availability[i] > 0) this.availability[i]--;
    }
  }

  peerHas(index: number): void {
    this.availability[index]++;
  }

  /** True when the peer has a piece we lack. */
  interesting(has: Bitfield): boolean {
    if (has.complete) return !this.have.complete;
    for (let i = 0; i < has.size; i++) {
      if (has.has(i) && !this.have.has(i)) return true;
    }
    return false;
  }

  /** True when every missing piece is in progress and none has free blocks. */
  get inEndgame(): boolean {
    if (this.have.count + this.active.size < this.geometry.pieceCount) {
      return false;
    }
    for (const piece of this.active.values()) {
      if (piece.freeBlocks > 0) return false;
    }
    return true;
  }

  /** Appends up to `max` requests for the peer to `out` and marks them requested. */
  pick(peer: PickerPeer, max: number, out: BlockRequest[]): void {
    let room = max;
    for (const piece of this.active.values()) {
      if (room === 0) return;
      if (piece.freeBlocks > 0 && peer.has.has(piece.index)) {
        room -= this.takeFree(piece, peer, room, out);
      }
    }
    while (room > 0 && this.active.size < this.maxActivePieces) {
      const index = this.rarestMissing(peer.has);
      if (index < 0) break;
      room -= this.takeFree(this.activate(index), peer, room, out);
    }
    if (room > 0 && this.inEndgame) this.takeEndgame(peer, room, out);
  }

  /** A peer's request is gone without a block (choke, reject, timeout, disconnect). */
  release(blockId: number): void {
    const piece = this.active.get(
      Math.floor(blockId / this.geometry.blocksPerPiece),
    );
    piece?.release(blockId % this.geometry.blocksPerPiece);
  }

  /** Finishes a verified piece: returns its buffer to the pool. */
  completed(piece: ActivePiece): void {
    this.active.delete(piece.index);
    this.have.set(piece.index);
    // The last piece may be shorter: pool the whole pieceLength-sized buffer.
    this.freeBuffers.push(new Uint8Array(piece.buffer.buffer));
  }

  /** A piece failed its hash: it starts over (its buffer stays with it). */
  failed(piece: ActivePiece): void {
    piece.reset();
  }

  private takeFree(
    piece: ActivePiece,
    peer: PickerPeer,
    room: number,
    out: BlockRequest[],
  ): number {
    let taken = 0;
    const states = piece.states;
    for (let b = 0; b < states.length && taken < room; b++) {
      if (states[b] !== BlockState.Free) continue;
      this.request(piece, b, peer, out);
      taken++;
    }
    return taken;
  }

  private takeEndgame(
    peer: PickerPeer,
    room: number,
    out: BlockRequest[],
  ): void {
    for (const piece of this.active.values()) {
      if (!peer.has.has(piece.index)) continue;
      for (let b = 0; b < piece.blockCount && room > 0; b++) {
        if (
          piece.states[b] !== BlockState.Requested ||
          piece.requesters[b] >= ENDGAME_MAX_REQUESTERS ||
          peer.outstanding.has(this.geometry.blockId(piece.index, b))
        ) continue;
        this.request(piece, b, peer, out);
        room--;
      }
      if (room === 0) return;
    }
  }

  private request(
    piece: ActivePiece,
    block: number,
    peer: PickerPeer,
    out: BlockRequest[],
  ): void {
    piece.markRequested(block);
    const id = this.geometry.blockId(piece.index, block);
    peer.outstanding.add(id);
    out.push({
      piece: piece.index,
      begin: block * BLOCK_SIZE,
      length: this.geometry.blockSize(piece.index, block),
      id,
    });
  }

  private activate(index: number): ActivePiece {
    const size = this.geometry.pieceSize(index);
    let buffer = this.freeBuffers.pop();
    if (!buffer) buffer = new Uint8Array(this.geometry.pieceLength);
    const piece = new ActivePiece(index, size, buffer.subarray(0, size));
    this.active.set(index, piece);
    return piece;
  }

  /** The rarest piece the peer has and nobody is fetching; random among equals. */
  private rarestMissing(has: PieceSet): number {
    const n = this.geometry.pieceCount;
    const start = Math.floor(this.random() * n);
    let best = -1;
    let bestCount = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      const count = this.availability[i];
      if (
        count < bestCount && has.has(i) && !this.have.has(i) &&
        !this.active.has(i)
      ) {
        best = i;
        bestCount = count;
        if (count <= 1) break;
      }
    }
    return best;
  }
}
