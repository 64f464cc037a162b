// BEP 3 handshake: <19>"BitTorrent protocol"<8 reserved><20 info-hash><20 peer id>.

export const HANDSHAKE_LENGTH = 68;
const PROTOCOL = new TextEncoder().encode("BitTorrent protocol");

export interface Handshake {
  reserved: Uint8Array;
  infoHash: Uint8Array;
  peerId: Uint8Array;
}

/**
 * Reserved-byte flags we use, as [byte, mask]: BEP 10 extension protocol
 * (bit 20 from the right), BEP 5 DHT and BEP 6 fast extension (byte 7).
 */
export const ReservedFlag = {
  extension: [5, 0x10],
  dht: [7, 0x01],
  fast: [7, 0x04],
} as const;

export type ReservedFlagName = keyof typeof ReservedFlag;

/** Reserved bytes with the given flags set. */
export function reservedWith(flags: ReservedFlagName[]): Uint8Array {
  const reserved = new Uint8Array(8);
  for (const flag of flags) {
    const [byte, mask] = ReservedFlag[flag];
    reserved[byte] |= mask;
  }
  return reserved;
}

export function hasFlag(reserved: Uint8Array, flag: ReservedFlagName): boolean {
  const [byte, mask] = ReservedFlag[flag];
  return (reserved[byte] & mask) !== 0;
}

export class WireError extends Error {
  override name = "WireError";
}

export function encodeHandshake(h: Handshake): Uint8Array {
  const out = new Uint8Array(HANDSHAKE_LENGTH);
  out[0] = 19;
  out.set(PROTOCOL, 1);
  out.set(h.reserved, 20);
  out.set(h.infoHash, 28);
  out.set(h.peerId, 48);
  return out;
}

/** Parses the first 68 bytes; throws WireError when they are not a handshake. */
export function decodeHandshake(bytes: Uint8Array): Handshake {
  if (bytes.length < HANDSHAKE_LENGTH) {
    throw new WireError("handshake is too short");
  }
  if (bytes[0] !== 19 || !PROTOCOL.every((b, i) => bytes[1 + i] === b)) {
    throw new WireError("peer did not send a BitTorrent handshake");
  }
  return {
    reserved: bytes.slice(20, 28),
    infoHash: bytes.slice(28, 48),
    peerId: bytes.slice(48, 68),
  };
}
