// Smart ban, as libtorrent calls it: when a piece fails its hash, remember a
// digest of every block and who sent it; once the piece passes (fetched again,
// at least partly from others), whoever sent a block that differs from the
// good data is the culprit. Honest peers that shared the failed piece are
// never blamed.

import { createHash } from "node:crypto";
import type { ActivePiece } from "./active_piece.ts";
import { BLOCK_SIZE } from "./geometry.ts";

interface BlockEvidence {
  sender: number;
  digest: string;
}

/** Failed attempts remembered per piece; older evidence is dropped. */
const MAX_ATTEMPTS = 8;

export class SmartBan {
  private evidence = new Map<number, BlockEvidence[][]>();

  /** A piece failed its hash: keep each block's digest and sender. */
  pieceFailed(piece: ActivePiece): void {
    let blocks = this.evidence.get(piece.index);
    if (!blocks) {
      blocks = Array.from({ length: piece.blockCount }, () => []);
      this.evidence.set(piece.index, blocks);
    }
    for (let b = 0; b < piece.blockCount; b++) {
      const list = blocks[b];
      if (list.length >= MAX_ATTEMPTS) list.shift();
      list.push({ sender: piece.senders[b], digest: digest(piece, b) });
    }
  }

  /** A piece passed: the senders whose earlier blocks differ from the good data. */
  culprits(piece: ActivePiece): Set<number> {
    const found = new Set<number>();
    const blocks = this.evidence.get(piece.index);
    if (!blocks) return found;
    this.evidence.delete(piece.index);
    for (let b = 0; b < blocks.length; b++) {
      if (blocks[b].length === 0) continue;
      const good = digest(piece, b);
      for (const e of blocks[b]) {
        if (e.digest !== good && e.sender >= 0) found.add(e.sender);
      }
    }
    return found;
  }
}

function digest(piece: ActivePiece, block: number): string {
  const start = block * BLOCK_SIZE;
  const end = Math.min(start + BLOCK_SIZE, piece.size);
  return createHash("sha1").update(piece.buffer.subarray(start, end)).digest(
    "hex",
  );
}
