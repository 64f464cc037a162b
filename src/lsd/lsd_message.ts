// BEP 14 Local Service Discovery announce, sans-IO. An announce is an
// HTTP-like request in one UDP datagram:
//
//   BT-SEARCH * HTTP/1.1\r\n
//   Host: <group>:<port>\r\n           the multicast group it was sent to
//   Port: <port>\r\n                   the sender's BitTorrent listen port
//   Infohash: <40 hex>\r\n             one or more consecutive headers
//   cookie: <token>\r\n                optional; lets a sender spot its own
//   \r\n
//   \r\n
//
// We send one info-hash per datagram, as libtorrent does: BEP 14 warns that
// older implementations may read only the first Infohash header. We read all.

import { ipBytes } from "../net/ip.ts";

export interface LsdAnnounce {
  /** The sender's BitTorrent port (1-65535). */
  port: number;
  /** Lowercase hex info-hashes, valid ones only, duplicates dropped. */
  infoHashes: string[];
  /** The sender's cookie as sent, or null when it sent none. */
  cookie: string | null;
}

/** What a datagram on the LSD port turned out to be. */
export type LsdDatagram =
  | { kind: "announce"; announce: LsdAnnounce }
  | { kind: "malformed"; reason: string };

export interface LsdAnnounceFields {
  /** The group as `Host` names it: `239.192.152.143:6771` or `[ff15::efc0:988f]:6771`. */
  host: string;
  port: number;
  infoHashHex: string;
  cookie: string;
}

const REQUEST_LINE = /^BT-SEARCH\s+\*\s+HTTP\/1\.[01]$/i;
const HEX_HASH = /^[0-9a-f]{40}$/i;
const ZERO_HASH = "0".repeat(40);

export function encodeLsdAnnounce(fields: LsdAnnounceFields): Uint8Array {
  return new TextEncoder().encode(
    "BT-SEARCH * HTTP/1.1\r\n" +
      `Host: ${fields.host}\r\n` +
      `Port: ${fields.port}\r\n` +
      `Infohash: ${fields.infoHashHex.toLowerCase()}\r\n` +
      `cookie: ${fields.cookie}\r\n` +
      "\r\n\r\n",
  );
}

/**
 * Reads an announce leniently: header names in any case, `\n` or `\r\n` line
 * ends, unknown headers ignored, bad Infohash values skipped so long as one
 * good one remains.
 */
export function parseLsdAnnounce(datagram: Uint8Array): LsdDatagram {
  const text = new TextDecoder("latin1").decode(datagram);
  const lines = text.split(/\r?\n/);
  if (!REQUEST_LINE.test(lines[0].trim())) {
    return malformed(`not a BT-SEARCH request: "${printable(lines[0])}"`);
  }
  let portText: string | undefined;
  let cookie: string | null = null;
  const hashes = new Set<string>();
  for (const line of lines.slice(1)) {
    if (line.trim() === "") break; // end of the headers
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "port") portText ??= value;
    else if (name === "cookie") cookie ??= value;
    else if (name === "infohash" && HEX_HASH.test(value)) {
      const hex = value.toLowerCase();
      if (hex !== ZERO_HASH) hashes.add(hex);
    }
  }
  if (portText === undefined) return malformed("no Port header");
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
  if (port < 1 || port > 65535) {
    return malformed(`bad Port "${printable(portText)}"`);
  }
  if (hashes.size === 0) return malformed("no valid Infohash header");
  return {
    kind: "announce",
    announce: { port, infoHashes: [...hashes], cookie },
  };
}

function malformed(reason: string): LsdDatagram {
  return { kind: "malformed", reason };
}

/** A short, log-safe excerpt of untrusted text. */
function printable(text: string): string {
  return text.slice(0, 60).replace(/[^\x20-\x7e]/g, "?");
}

/**
 * Whether an announce from this address can have come from the local network: IPv4
 * RFC 1918 private, 169.254.0.0/16 link-local, 127.0.0.0/8 loopback; IPv6 ::1,
 * fe80::/10 link-local, fc00::/7 unique local (v4-mapped forms count as IPv4).
 * BEP 14 is local discovery: the group is org-scoped and nobody routes it to us, so
 * an announce from any other address is spoofed or misrouted, and not taken.
 */
export function isLocalSource(address: string): boolean {
  const b = ipBytes(address);
  if (!b) return false;
  const v4 = b.length === 4
    ? b
    : b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff &&
        b[11] === 0xff
    ? b.subarray(12)
    : undefined;
  if (v4) {
    const [a, second] = v4;
    return a === 10 || a === 127 ||
      (a === 172 && second >= 16 && second < 32) ||
      (a === 192 && second === 168) || (a === 169 && second === 254);
  }
  const loopback = b.subarray(0, 15).every((x) => x === 0) && b[15] === 1;
  return loopback || (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) ||
    (b[0] & 0xfe) === 0xfc;
}
