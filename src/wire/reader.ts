// Sans-IO framing of the peer-wire stream (BEP 3). Bytes are read straight
// into one fixed accumulator (the socket owner calls `space()` then
// `commit(n)`); every whole message is parsed in place and handed to the
// handler. Views passed to the handler are only valid during the call: the
// next read or compaction overwrites them, so a block must be copied at once.

import { MessageId } from "./messages.ts";
import { WireError } from "./handshake.ts";

export interface WireHandler {
  keepAlive(): void;
  choke(): void;
  unchoke(): void;
  interested(): void;
  notInterested(): void;
  have(index: number): void;
  bitfield(bits: Uint8Array): void;
  request(index: number, begin: number, length: number): void;
  piece(index: number, begin: number, block: Uint8Array): void;
  cancel(index: number, begin: number, length: number): void;
  dhtPort(port: number): void;
  haveAll(): void;
  haveNone(): void;
  suggest(index: number): void;
  reject(index: number, begin: number, length: number): void;
  allowedFast(index: number): void;
  extended(id: number, payload: Uint8Array): void;
}

export interface ReaderLimits {
  /** Largest message length accepted; anything longer is a protocol error. */
  maxMessageLength: number;
  /** Starting size of the accumulator; it grows only for a longer message. */
  bufferSize: number;
}

export class WireReader {
  private buf: Uint8Array;
  private view: DataView;
  private start = 0;
  private end = 0;
  /** Set by pause(): messages stay unparsed for whoever takes the stream over. */
  private paused = false;

  constructor(private handler: WireHandler, private limits: ReaderLimits) {
    this.buf = new Uint8Array(limits.bufferSize);
    this.view = new DataView(this.buf.buffer);
  }

  /** Where the next socket read should land. Never empty. */
  space(): Uint8Array {
    if (this.end === this.buf.length) this.compact();
    return this.buf.subarray(this.end);
  }

  /** Accepts n bytes just read into space() and dispatches whole messages. */
  commit(n: number): void {
    this.end += n;
    while (!this.paused && this.end - this.start >= 4) {
      const length = this.view.getUint32(this.start);
      if (length > this.limits.maxMessageLength) {
        throw new WireError(
          `message length ${length} exceeds the limit of ${this.limits.maxMessageLength}`,
        );
      }
      if (this.end - this.start < 4 + length) {
        this.makeRoomFor(4 + length);
        return;
      }
      const at = this.start + 4;
      this.start = at + length;
      this.dispatch(at, length);
    }
    if (this.start === this.end) this.start = this.end = 0;
  }

  /**
   * Stops dispatching, even in the middle of a commit(): the handler is
   * handing the connection over, and takeUnparsed() gives the rest.
   */
  pause(): void {
    this.paused = true;
  }

  /** The bytes received and not yet dispatched (a copy). */
  takeUnparsed(): Uint8Array {
    const rest = this.buf.slice(this.start, this.end);
    this.start = this.end = 0;
    return rest;
  }

  /** Takes bytes read elsewhere (those that followed the handshake) as if read into space(). */
  feed(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) {
      const space = this.space();
      const n = Math.min(space.length, bytes.length - off);
      space.set(bytes.subarray(off, off + n));
      this.commit(n);
      off += n;
    }
  }

  private dispatch(at: number, length: number): void {
    const h = this.handler;
    if (length === 0) return h.keepAlive();
    const id = this.buf[at];
    const v = this.view;
    switch (id) {
      case MessageId.Choke:
        return this.fixed(id, length, 1), h.choke();
      case MessageId.Unchoke:
        return this.fixed(id, length, 1), h.unchoke();
      case MessageId.Interested:
        return this.fixed(id, length, 1), h.interested();
      case MessageId.NotInterested:
        return this.fixed(id, length, 1), h.notInterested();
      case MessageId.HaveAll:
        return this.fixed(id, length, 1), h.haveAll();
      case MessageId.HaveNone:
        return this.fixed(id, length, 1), h.haveNone();
      case MessageId.Have:
        return this.fixed(id, length, 5), h.have(v.getUint32(at + 1));
      case MessageId.Suggest:
        return this.fixed(id, length, 5), h.suggest(v.getUint32(at + 1));
      case MessageId.AllowedFast:
        return this.fixed(id, length, 5), h.allowedFast(v.getUint32(at + 1));
      case MessageId.Port:
        return this.fixed(id, length, 3), h.dhtPort(v.getUint16(at + 1));
      case MessageId.Bitfield:
        return h.bitfield(this.buf.subarray(at + 1, at + length));
      case MessageId.Request:
      case MessageId.Cancel:
      case MessageId.Reject: {
        this.fixed(id, length, 13);
        const index = v.getUint32(at + 1);
        const begin = v.getUint32(at + 5);
        const len = v.getUint32(at + 9);
        if (id === MessageId.Request) return h.request(index, begin, len);
        if (id === MessageId.Cancel) return h.cancel(index, begin, len);
        return h.reject(index, begin, len);
      }
      case MessageId.Piece:
        if (length < 9) {
          throw new WireError(`piece message of ${length} bytes is too short`);
        }
        return h.piece(
          v.getUint32(at + 1),
          v.getUint32(at + 5),
          this.buf.subarray(at + 9, at + length),
        );
      case MessageId.Extended:
        if (length < 2) throw new WireError("extended message has no id");
        return h.extended(
          this.buf[at + 1],
          this.buf.subarray(at + 2, at + length),
        );
      default:
        // BEP 3: unknown message ids are ignored, so future extensions pass.
        return;
    }
  }

  private fixed(id: number, length: number, expected: number): void {
    if (length !== expected) {
      throw new WireError(
        `message ${id} has length ${length}, expected ${expected}`,
      );
    }
  }

  /** Ensures a message of `total` bytes fits once fully read. */
  private makeRoomFor(total: number): void {
    if (total > this.buf.length) {
      const grown = new Uint8Array(total);
      grown.set(this.buf.subarray(this.start, this.end));
      this.end -= this.start;
      this.start = 0;
      this.buf = grown;
      this.view = new DataView(grown.buffer);
    } else if (this.start + total > this.buf.length) {
      this.compact();
    }
  }

  private compact(): void {
    this.buf.copyWithin(0, this.start, this.end);
    this.end -= this.start;
    this.start = 0;
  }
}
