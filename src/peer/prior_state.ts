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
