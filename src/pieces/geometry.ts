// Sizes of pieces and 16 KiB blocks. A block is named by a global number
// (piece * blocksPerPiece + block) so that request bookkeeping is one integer.

export const BLOCK_SIZE = 16 * 1024;

export class PieceGeometry {
  readonly blocksPerPiece: number;
  readonly lastPieceLength: number;

  constructor(
    readonly pieceCount: number,
    readonly pieceLength: number,
    readonly totalLength: number,
  ) {
    this.blocksPerPiece = Math.ceil(pieceLength / BLOCK_SIZE);
    this.lastPieceLength = totalLength - (pieceCount - 1) * pieceLength;
  }

  pieceSize(piece: number): number {
    return piece === this.pieceCount - 1
      ? this.lastPieceLength
      : this.pieceLength;
  }

  blockCount(piece: number): number {
    return Math.ceil(this.pieceSize(piece) / BLOCK_SIZE);
  }

  blockSize(piece: number, block: number): number {
    return Math.min(BLOCK_SIZE, this.pieceSize(piece) - block * BLOCK_SIZE);
  }

  blockId(piece: number, block: number): number {
    return piece * this.blocksPerPiece + block;
  }

  /** The block a (piece, begin, length) triple names, or -1 when it names none. */
  blockAt(piece: number, begin: number, length: number): number {
    if (piece >= this.pieceCount || begin % BLOCK_SIZE !== 0) return -1;
    const block = begin / BLOCK_SIZE;
    if (
      block >= this.blockCount(piece) || length !== this.blockSize(piece, block)
    ) return -1;
    return block;
  }
}
