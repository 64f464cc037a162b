// Our first messages on a connection: our pieces (BEP 3 bitfield, or BEP 6
// have all / have none when both sides speak it), our BEP 10 handshake and
// our BEP 5 DHT port. On a connection a magnet link's metadata fetch hands
// over (NOTES.md), the peer has seen the fetch's greeting already: only
// what that could not say goes now.

import type { Bitfield } from "../pieces/bitfield.ts";
import { EXTENDED_HANDSHAKE_ID } from "../wire/extension.ts";
import { MessageId, type OutBuffer } from "../wire/messages.ts";
import type { PriorPeerState } from "./prior_state.ts";

export interface Greeting {
  ours: Bitfield;
  /** BEP 6 was advertised by both sides. */
  fast: boolean;
  /** Our BEP 10 handshake, when the peer speaks BEP 10. */
  extensionHandshake: Uint8Array | null;
  /** Our DHT port when the peer runs a DHT too; 0 for none. */
  dhtPort: number;
}

/** Writes our greeting; `prior` is what the metadata fetch sent and heard, after a hand-over. */
export function writeGreeting(
  out: OutBuffer,
  greeting: Greeting,
  prior?: PriorPeerState,
): void {
  const { ours, fast } = greeting;
  if (prior) writePiecesAgain(out, ours, prior);
  else if (fast && ours.complete) out.simple(MessageId.HaveAll);
  else if (fast && ours.count === 0) out.simple(MessageId.HaveNone);
  else if (ours.count > 0) out.bitfield(ours.bytes);
  // After a hand-over this second handshake (BEP 10 allows updates) gives
  // the metadata_size the fetch could not.
  if (greeting.extensionHandshake) {
    out.extended(EXTENDED_HANDSHAKE_ID, greeting.extensionHandshake);
  }
  if (greeting.dhtPort > 0 && !prior?.sentDhtPort) {
    out.dhtPort(greeting.dhtPort);
  }
}

/**
 * Our pieces, to a peer that saw only the fetch's extended handshake (a
 * bitfield may still follow that: it is not counted as a first message),
 * or a have-none too, which stood in for our bitfield (BEP 6): then each
 * piece goes as a `have`.
 */
function writePiecesAgain(
  out: OutBuffer,
  ours: Bitfield,
  prior: PriorPeerState,
): void {
  if (ours.count === 0) return;
  if (!prior.sentHaveNone) return out.bitfield(ours.bytes);
  for (let i = 0; i < ours.size; i++) if (ours.has(i)) out.have(i);
}
