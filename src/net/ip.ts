// IP address text for peers. Trackers hand out IPv4 and IPv6 addresses, and a
// tracker reached over IPv6 may hand out v4-mapped ones (::ffff:a.b.c.d); the
// swarm compares peers by text, so each address gets one canonical spelling.

import { isIPv4, isIPv6 } from "node:net";

/** Canonical text for an IP literal, or undefined if `text` is not one. */
export function normaliseIp(text: string): string | undefined {
  if (isIPv4(text)) return text;
  if (!isIPv6(text)) return undefined;
  const bytes = parseIPv6(text.split("%")[0]);
  return bytes && formatIPv6(bytes);
}

/** Dotted quad of four bytes. */
export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/**
 * RFC 5952 text of sixteen bytes (lowercase, longest zero run as "::"), or
 * dotted IPv4 for a v4-mapped address.
 */
export function formatIPv6(b: Uint8Array): string {
  if (isV4Mapped(b)) return formatIPv4(b.subarray(12));
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1, bestLen = 1; // a single zero group is not compressed
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLen).join(":");
  return `${head}::${tail}`;
}

/** Four bytes of an IPv4 literal or sixteen of an IPv6 one (compact peer entries), or undefined. */
export function ipBytes(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return new Uint8Array(text.split(".").map(Number));
  return isIPv6(text) ? parseIPv6(text.split("%")[0]) : undefined;
}

/**
 * Whether four or sixteen address bytes name a host that can be dialled: not
 * "this network" (0.0.0.0/8) or unspecified (::), not multicast (224.0.0.0/4,
 * ff00::/8), not reserved or broadcast (240.0.0.0/4). A tracker listing only
 * such addresses has given no peers.
 */
export function isDialableAddress(b: Uint8Array): boolean {
  if (b.length === 4) return b[0] !== 0 && b[0] < 224;
  if (isV4Mapped(b)) return isDialableAddress(b.subarray(12));
  return b[0] !== 0xff && b.some((byte) => byte !== 0);
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Sixteen bytes of IPv6 text already checked by isIPv6 (may end in a dotted quad). */
function parseIPv6(text: string): Uint8Array | undefined {
  const groups: number[] = [];
  const [head, tail, extra] = text.split("::");
  if (extra !== undefined) return undefined;
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const last = tail === undefined ? headGroups : tailGroups;
  if (last.length > 0 && last[last.length - 1].includes(".")) {
    const v4 = last.pop()!.split(".").map(Number);
    last.push(((v4[0] << 8) | v4[1]).toString(16));
    last.push(((v4[2] << 8) | v4[3]).toString(16));
  }
  const missing = 8 - headGroups.length - tailGroups.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  groups.push(...headGroups.map((g) => parseInt(g, 16)));
  if (tail !== undefined) { for (let i = 0; i < missing; i++) groups.push(0); }
  groups.push(...tailGroups.map((g) => parseInt(g, 16)));
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}
