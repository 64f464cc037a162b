// Every rule that bans a peer, in one place. Data is what bans: a peer whose
// blocks differ from a piece's verified data (smart ban), a peer that alone
// sent two pieces that failed their hash, a peer that alone sent a BEP 9 info
// dictionary that does not match the info-hash. Protocol violations do not
// ban at once (a buggy client may recover on a new connection): the third
// keeps the address out for the rest of the run. A verdict names the
// connection by its number; the caller bans its address and peer id.

import type { ActivePiece } from "./active_piece.ts";
import { SmartBan } from "./smart_ban.ts";

export interface Ban {
  /** The connection's number (ActivePiece.senders, MetadataAssembly.senders). */
  num: number;
  reason: string;
}

/** A peer that alone sent this many pieces that failed their hash is banned. */
export const MAX_SOLE_FAILURES = 2;
/** Protocol violations after which an address is never dialled again. */
export const MAX_VIOLATIONS = 3;

export class BanRules {
  private smartBan = new SmartBan();

  /**
   * A piece failed its hash: its blocks are kept as evidence and every
   * sender is charged one failed piece (`chargeFailure` returns the sender's
   * total so far). A lone sender that reaches MAX_SOLE_FAILURES is banned.
   */
  pieceFailed(
    piece: ActivePiece,
    chargeFailure: (num: number) => number,
  ): Ban[] {
    this.smartBan.pieceFailed(piece);
    const senders = new Set(piece.senders);
    const failures = new Map<number, number>();
    for (const num of senders) failures.set(num, chargeFailure(num));
    if (senders.size !== 1) return [];
    const [only] = senders;
    const count = failures.get(only)!;
    return count >= MAX_SOLE_FAILURES
      ? [{ num: only, reason: `sent ${count} pieces that failed their hash` }]
      : [];
  }

  /**
   * A piece passed: the senders whose earlier blocks differ from its data.
   * Smart ban needs the verified data to have come at least partly from
   * others: a lone peer that corrected its own data is only rated down (and
   * banned by the sole-sender rule if it keeps failing).
   */
  piecePassed(piece: ActivePiece): Ban[] {
    const verifiedBy = new Set(piece.senders);
    const bans: Ban[] = [];
    for (const num of this.smartBan.culprits(piece)) {
      if ([...verifiedBy].some((sender) => sender !== num)) {
        bans.push({
          num,
          reason:
            `sent bad data for piece ${piece.index} (its blocks differ from the verified ones)`,
        });
      }
    }
    return bans;
  }
}

/**
 * BEP 9: an info dictionary failed its check against the info-hash. A lone
 * sender is banned; among several senders none can be singled out (they
 * become suspects, asked last).
 */
export function dictionaryFailed(senders: ReadonlySet<number>): Ban | null {
  if (senders.size !== 1) return null;
  const [num] = senders;
  return {
    num,
    reason: "sent an info dictionary that does not match the info-hash",
  };
}

/** True once an address broke the protocol often enough to stay out for good. */
export function excludedForViolations(violations: number): boolean {
  return violations >= MAX_VIOLATIONS;
}
