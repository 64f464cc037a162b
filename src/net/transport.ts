// The transport seam: the byte stream one peer connection runs over. The
// handshake, the peer wire code and the accept loop read, write and close
// through this and nothing else, so that what carries the bytes (TCP now;
// MSE/PE over a stream and uTP next) can change without touching them.

import type { PeerAddress } from "./address.ts";

/** What carries a stream. */
export type TransportKind = "tcp" | "mse" | "utp";

export interface PeerStream {
  readonly kind: TransportKind;
  /** The other end (a v4-mapped IPv6 address is given as IPv4). */
  readonly remote: PeerAddress;
  /**
   * Reads into the caller's buffer, from its start: the number of bytes
   * read, or null at the end of the stream. Rejects when the stream fails
   * or is closed under the read. No copy and no allocation of its own: the
   * peer wire code reads straight into its one buffer.
   */
  read(into: Uint8Array): Promise<number | null>;
  /** Writes all of `data`; rejects when the stream fails or is closed. */
  write(data: Uint8Array): Promise<void>;
  /** Closes the stream, ending a pending read. Closing again does nothing. */
  close(): void;
}

/** Incoming streams on one local port. */
export interface StreamListener {
  readonly port: number;
  /** The next incoming stream; rejects when accepting fails or the listener is closed. */
  accept(): Promise<PeerStream>;
  close(): void;
}
