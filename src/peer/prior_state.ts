// What a peer told us before its torrent's piece count was known (a magnet
// link's metadata fetch), replayed to the connection that takes it over.

import type { ExtensionHandshake } from "../wire/extension.ts";

export interface PriorPeerState {
  /** The raw bitfield, have-all or have-none (BEP 6), whichever came. */
  bitfield: Uint8Array | null;
  haveAll: boolean;
  haveNone: boolean;
  haves: number[];
  allowedFast: number[];
  unchoked: boolean;
  interested: boolean;
  extensions: ExtensionHandshake | null;
  /** We sent have-none (BEP 6), so our pieces must go as `have`s now. */
  sentHaveNone: boolean;
  /** We told the peer our DHT port already. */
  sentDhtPort: boolean;
}

/** A connection taken over mid-stream: its prior state and its bytes still to come. */
export interface TakenOverStream {
  prior: PriorPeerState;
  /** Bytes received after the handover point (null: the connection closed). */
  rest: Promise<Uint8Array | null>;
}

/** The messages replayPrior() repeats, as the connection handles them. */
export interface ReplayTarget {
  bitfield(bits: Uint8Array): void;
  haveAll(): void;
  haveNone(): void;
  have(index: number): void;
  allowedFast(index: number): void;
  unchoke(): void;
  interested(): void;
}

/**
 * What the peer said during the metadata fetch, as if it said it now, in
 * the order a peer would (NOTES.md): its pieces first (where BEP 3 and 6
 * want them), then its haves and allowed-fast pieces, then its choke and
 * interest as they stood at the hand-over. Its BEP 10 handshake is taken
 * before all of them by the caller.
 */
export function replayPrior(prior: PriorPeerState, to: ReplayTarget): void {
  if (prior.bitfield) to.bitfield(prior.bitfield);
  else if (prior.haveAll) to.haveAll();
  else if (prior.haveNone) to.haveNone();
  for (const index of prior.haves) to.have(index);
  for (const index of prior.allowedFast) to.allowedFast(index);
  if (prior.unchoked) to.unchoke();
  if (prior.interested) to.interested();
}
