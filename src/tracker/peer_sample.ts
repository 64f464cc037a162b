// The peers of one tracker reply, kept within a bound while the reply is
// parsed. A tracker may list far more peers than numwant asked for (10,914 for
// numwant 80 was seen: a UDP reply filling a whole 64 KiB datagram), so a reply
// is read entry by entry into a uniform random sample (reservoir sampling):
// memory stays bounded by the limit, and the order of a flooded list does not
// decide which of its peers are kept. Entries that cannot be dialled are
// counted but never kept.

import {
  formatIPv4,
  formatIPv6,
  ipBytes,
  isDialableAddress,
} from "../net/ip.ts";
import type { PeerAddress } from "../net/address.ts";

/** BEP 3: a tracker gives 50 peers when numwant is absent. */
const DEFAULT_NUMWANT = 50;
/** Peers kept of one reply, as a multiple of what was asked. */
const KEEP_PER_WANTED = 4;

/** Peers kept of a reply to an announce asking for `numWant`. */
export function peerLimit(numWant: number): number {
  return Math.max(numWant, DEFAULT_NUMWANT) * KEEP_PER_WANTED;
}

export class PeerSample {
  /** Entries the reply listed, dialable or not. */
  listed = 0;
  /** Dialable entries seen, kept or not. */
  #dialable = 0;
  readonly peers: PeerAddress[] = [];

  constructor(
    readonly limit: number,
    readonly random: () => number = Math.random,
  ) {}

  /**
   * Compact entries (BEP 23: 4 address bytes then 2 port bytes; BEP 7: 16
   * then 2). False if `bytes` is not a whole number of entries.
   */
  addCompact(bytes: Uint8Array, addressLength: 4 | 16): boolean {
    const entry = addressLength + 2;
    if (bytes.length % entry !== 0) return false;
    const format = addressLength === 4 ? formatIPv4 : formatIPv6;
    for (let at = 0; at < bytes.length; at += entry) {
      this.listed++;
      const address = bytes.subarray(at, at + addressLength);
      const port = (bytes[at + addressLength] << 8) |
        bytes[at + addressLength + 1];
      if (port === 0 || !isDialableAddress(address)) continue;
      this.#offer(() => ({ host: format(address), port }));
    }
    return true;
  }

  /** One entry of a dictionary peer list (BEP 3): an IP literal, or a DNS name we do not dial. */
  addText(ip: string, port: number): void {
    this.listed++;
    const address = ipBytes(ip);
    if (!address || port < 1 || port > 65535) return;
    if (!isDialableAddress(address)) return;
    const format = address.length === 4 ? formatIPv4 : formatIPv6;
    this.#offer(() => ({ host: format(address), port }));
  }

  /** Algorithm R: the n-th dialable entry replaces a kept one with probability limit/n. */
  #offer(peer: () => PeerAddress): void {
    this.#dialable++;
    if (this.peers.length < this.limit) {
      this.peers.push(peer());
      return;
    }
    const slot = Math.floor(this.random() * this.#dialable);
    if (slot < this.limit) this.peers[slot] = peer();
  }
}
