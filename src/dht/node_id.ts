// BEP 5 node ids and the XOR distance metric ("Overview": distance(A, B) = |A xor B| as an
// unsigned integer, smaller is closer), plus BEP 42 ids tied to an IPv4 address.

import { randomBytes } from "node:crypto";
import { toHex } from "../metainfo/metainfo.ts";

/** 160 bits, the same space as info-hashes. */
export type NodeId = Uint8Array & { readonly brand: "NodeId" };

export const NODE_ID_LENGTH = 20;
export const NODE_ID_BITS = NODE_ID_LENGTH * 8;

/** The bytes as a NodeId, or undefined if they are not 20 bytes long. */
export function asNodeId(bytes: Uint8Array): NodeId | undefined {
  return bytes.length === NODE_ID_LENGTH ? bytes as NodeId : undefined;
}

export function randomNodeId(): NodeId {
  return new Uint8Array(randomBytes(NODE_ID_LENGTH)) as NodeId;
}

export function nodeIdHex(id: Uint8Array): string {
  return toHex(id);
}

/** Negative if a is closer to target than b, positive if farther, 0 if the same id. */
export function compareDistance(
  a: Uint8Array,
  b: Uint8Array,
  target: Uint8Array,
): number {
  for (let i = 0; i < NODE_ID_LENGTH; i++) {
    const da = a[i] ^ target[i];
    const db = b[i] ^ target[i];
    if (da !== db) return da - db;
  }
  return 0;
}

/** How many leading bits a and b share (160 for equal ids). */
export function sharedPrefixBits(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < NODE_ID_LENGTH; i++) {
    const x = a[i] ^ b[i];
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return NODE_ID_BITS;
}

/** A random id sharing exactly `bits` leading bits with `base` (the next bit differs). */
export function randomIdAtPrefix(base: Uint8Array, bits: number): NodeId {
  const id = randomNodeId();
  if (bits >= NODE_ID_BITS) return new Uint8Array(base) as NodeId;
  const byte = bits >> 3;
  for (let i = 0; i < byte; i++) id[i] = base[i];
  const keep = 0xff00 >> (bits & 7) & 0xff; // the bits of this byte taken from base
  const flip = 0x80 >> (bits & 7);
  id[byte] = (base[byte] & keep) | ((~base[byte]) & flip) |
    (id[byte] & ~keep & ~flip & 0xff);
  return id;
}

/**
 * BEP 42: the first 21 bits of the id are those of crc32c((ip & 0x030f3fff) | (r << 29)),
 * r = rand & 7, and the last byte is rand; the rest is random.
 */
export function bep42NodeId(ipv4: Uint8Array, rand: number): NodeId {
  const id = randomNodeId();
  const crc = bep42Crc(ipv4, rand & 7);
  id[0] = crc >>> 24;
  id[1] = (crc >>> 16) & 0xff;
  id[2] = ((crc >>> 8) & 0xf8) | (id[2] & 7);
  id[19] = rand & 0xff;
  return id;
}

/** Whether an id obeys BEP 42 for this IPv4 address (21 bits of the crc, r from the last byte). */
export function isBep42NodeId(id: Uint8Array, ipv4: Uint8Array): boolean {
  const crc = bep42Crc(ipv4, id[19] & 7);
  return id[0] === crc >>> 24 && id[1] === ((crc >>> 16) & 0xff) &&
    (id[2] & 0xf8) === ((crc >>> 8) & 0xf8);
}

const BEP42_V4_MASK = [0x03, 0x0f, 0x3f, 0xff];

function bep42Crc(ipv4: Uint8Array, r: number): number {
  const masked = BEP42_V4_MASK.map((m, i) => ipv4[i] & m);
  masked[0] |= r << 5;
  return crc32c(masked);
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    // Castagnoli polynomial, reflected
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32c(bytes: ArrayLike<number>): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = CRC32C_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}
