// BEP 3 handshake: <19>"BitTorrent protocol"<8 reserved><20 info-hash><20 peer id>.

export const HANDSHAKE_LENGTH = 68;
const PROTOCOL = new TextEncoder().encode("BitTorrent protocol");

export interface Handshake {
  reserved: Uint8Array;
  infoHash: Uint8Array;
  peerId: Uint8Array;
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
