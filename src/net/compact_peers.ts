// Compact peer lists: BEP 23 (IPv4, 6 bytes a peer) and BEP 7 (IPv6, 18 bytes
// a peer), as ut_pex (BEP 11) sends them. Address and port are in network byte
// order. Peers with port 0 cannot be dialled and are dropped. Tracker replies,
// which can list thousands, are read into a bounded sample (peer_sample.ts).

import { formatIPv4, formatIPv6, ipBytes } from "./ip.ts";
import type { PeerAddress } from "./address.ts";

/** Peers from 6-byte entries; undefined if the length is not a multiple of 6. */
export function parseCompactPeers4(
  bytes: Uint8Array,
): PeerAddress[] | undefined {
  return parseEntries(bytes, 4, formatIPv4);
}

/** Peers from 18-byte entries; undefined if the length is not a multiple of 18. */
export function parseCompactPeers6(
  bytes: Uint8Array,
): PeerAddress[] | undefined {
  return parseEntries(bytes, 16, formatIPv6);
}

/**
 * Compact entries for peers of one family (addressLength 4 or 16); callers
 * pass only valid literals of that family.
 */
export function encodeCompactPeers(
  peers: PeerAddress[],
  addressLength: 4 | 16,
): Uint8Array {
  const entry = addressLength + 2;
  const out = new Uint8Array(peers.length * entry);
  peers.forEach((p, i) => {
    const at = i * entry;
    out.set(ipBytes(p.host)!, at);
    out[at + addressLength] = p.port >> 8;
    out[at + addressLength + 1] = p.port & 0xff;
  });
  return out;
}

function parseEntries(
  bytes: Uint8Array,
  addressLength: number,
  format: (address: Uint8Array) => string,
): PeerAddress[] | undefined {
  const entry = addressLength + 2;
  if (bytes.length % entry !== 0) return undefined;
  const peers: PeerAddress[] = [];
  for (let at = 0; at < bytes.length; at += entry) {
    const port = (bytes[at + addressLength] << 8) |
      bytes[at + addressLength + 1];
    if (port === 0) continue;
    peers.push({ host: format(bytes.subarray(at, at + addressLength)), port });
  }
  return peers;
}
