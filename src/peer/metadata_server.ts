// BEP 9, the serving side: pieces of our info dictionary for a peer that
// came by a magnet link. Bounded per connection: each piece is sent about
// twice at most (all the sends a connection gets are twice the piece
// count), and only while the send buffer is under the watermark; anything
// else is rejected, and the caller counts the reject like an unservable
// block request, so a flood of them drops the peer.

import type { OutBuffer } from "../wire/messages.ts";
import {
  encodeMetadataData,
  encodeMetadataReject,
  metadataPieceCount,
} from "../wire/ut_metadata.ts";
import { SEND_WATERMARK } from "./upload_server.ts";

/** Times one connection is sent each piece of our info dictionary, at most on average. */
const SENDS_PER_PIECE = 2;

export class MetadataServer {
  private readonly pieces: number;
  private sent = 0;

  constructor(
    private metadata: Uint8Array,
    private out: OutBuffer,
  ) {
    this.pieces = metadataPieceCount(metadata.length);
  }

  /**
   * Writes the answer to a request for `piece`, under `theirId` (the id
   * the peer gave ut_metadata): the data, or a reject. False when it was
   * rejected.
   */
  answer(piece: number, theirId: number): boolean {
    const serve = piece < this.pieces &&
      this.sent < this.pieces * SENDS_PER_PIECE &&
      this.out.length < SEND_WATERMARK;
    if (!serve) {
      this.out.extended(theirId, encodeMetadataReject(piece));
      return false;
    }
    this.sent++;
    this.out.extended(theirId, encodeMetadataData(piece, this.metadata));
    return true;
  }
}
