// Peer-wire message ids and encoders (BEP 3; BEP 6 fast extension ids are
// recognised on receipt). Encoders append to an OutBuffer so that a burst of
// requests becomes one socket write.

export const MessageId = {
  Choke: 0,
  Unchoke: 1,
  Interested: 2,
  NotInterested: 3,
  Have: 4,
  Bitfield: 5,
  Request: 6,
  Piece: 7,
  Cancel: 8,
  Port: 9,
  Suggest: 13,
  HaveAll: 14,
  HaveNone: 15,
  Reject: 16,
  AllowedFast: 17,
  Extended: 20,
} as const;

/** A growable byte buffer that messages are appended to before one write. */
export class OutBuffer {
  bytes: Uint8Array;
  length = 0;
  private view: DataView;

  constructor(capacity = 16 * 1024) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
  }

  /** Takes the pending bytes out, leaving the buffer empty. */
  take(): Uint8Array {
    const out = this.bytes.slice(0, this.length);
    this.length = 0;
    return out;
  }

  private reserve(n: number): number {
    if (this.length + n > this.bytes.length) {
      const grown = new Uint8Array(
        Math.max(this.bytes.length * 2, this.length + n),
      );
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  keepAlive(): void {
    // reserve() may replace the view, so it must run before the view is read.
    const at = this.reserve(4);
    this.view.setUint32(at, 0);
  }

  /** choke, unchoke, interested, not interested, have all, have none */
  simple(id: number): void {
    const at = this.reserve(5);
    this.view.setUint32(at, 1);
    this.bytes[at + 4] = id;
  }

  /** have, and the BEP 6 messages of the same layout: suggest, allowed fast. */
  have(index: number, id: number = MessageId.Have): void {
    const at = this.reserve(9);
    this.view.setUint32(at, 5);
    this.bytes[at + 4] = id;
    this.view.setUint32(at + 5, index);
  }

  bitfield(bits: Uint8Array): void {
    const at = this.reserve(5 + bits.length);
    this.view.setUint32(at, 1 + bits.length);
    this.bytes[at + 4] = MessageId.Bitfield;
    this.bytes.set(bits, at + 5);
  }

  /** BEP 10: <20><extended id><payload>. */
  extended(id: number, payload: Uint8Array): void {
    const at = this.reserve(6 + payload.length);
    this.view.setUint32(at, 2 + payload.length);
    this.bytes[at + 4] = MessageId.Extended;
    this.bytes[at + 5] = id;
    this.bytes.set(payload, at + 6);
  }

  /** BEP 5: the UDP port our DHT node listens on. */
  dhtPort(port: number): void {
    const at = this.reserve(7);
    this.view.setUint32(at, 3);
    this.bytes[at + 4] = MessageId.Port;
    this.view.setUint16(at + 5, port);
  }

  /** request, cancel (and BEP 6 reject): <id><index><begin><length> */
  blockMessage(id: number, index: number, begin: number, length: number): void {
    const at = this.reserve(17);
    this.view.setUint32(at, 13);
    this.bytes[at + 4] = id;
    this.view.setUint32(at + 5, index);
    this.view.setUint32(at + 9, begin);
    this.view.setUint32(at + 13, length);
  }

  /**
   * Appends a piece message's header and returns the space for its block, so
   * that the block can be read from disk straight into the send buffer. Use
   * the slot before appending anything else.
   */
  pieceSlot(index: number, begin: number, length: number): Uint8Array {
    const at = this.reserve(13 + length);
    this.view.setUint32(at, 9 + length);
    this.bytes[at + 4] = MessageId.Piece;
    this.view.setUint32(at + 5, index);
    this.view.setUint32(at + 9, begin);
    return this.bytes.subarray(at + 13, at + 13 + length);
  }

  /** Removes the last n bytes appended (a piece whose block could not be read). */
  dropLast(n: number): void {
    this.length -= n;
  }
}
