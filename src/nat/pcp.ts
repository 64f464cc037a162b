// RFC 6887 PCP (Port Control Protocol) MAP messages, sans-IO. Big-endian;
// addresses are 16 bytes, IPv4 ones written IPv4-mapped (::ffff:a.b.c.d, §5).
//
//   request header (§7.1)   0: u8 version=2  1: R=0 | u7 opcode  2: u16 0
//                           4: u32 requested lifetime  8: client address[16]
//   response header (§7.2)  0: u8 version=2  1: R=1 | u7 opcode  2: u8 0
//                           3: u8 result  4: u32 lifetime  8: u32 epoch time
//                           12: 12 bytes 0
//   MAP payload (§11.1)     24: nonce[12]  36: u8 protocol  37: 3 bytes 0
//                           40: u16 internal port  42: u16 (suggested or assigned)
//                           external port  44: (suggested or assigned) external address[16]
//
// A request is 60 bytes; a response a multiple of 4 and at most 1100 (§7),
// options after the payload (ignored: we send none, §7.3). A MAP answer has
// at least 60; an error answer may be the 24-byte header alone.

import type { TransportProtocol } from "./types.ts";

const PCP_VERSION = 2;
export const OPCODE_MAP = 1;
const RESPONSE_BIT = 0x80;
const HEADER_LENGTH = 24;
const MAP_LENGTH = 60;
const MAX_LENGTH = 1100;
/** IANA protocol numbers, as MAP carries them (§11.1). */
const PROTOCOL_NUMBERS: Record<TransportProtocol, number> = { tcp: 6, udp: 17 };

/** §7.4 result codes; the names are what a log shows. */
const PCP_RESULTS: Record<number, string> = {
  0: "SUCCESS",
  1: "UNSUPP_VERSION",
  2: "NOT_AUTHORIZED",
  3: "MALFORMED_REQUEST",
  4: "UNSUPP_OPCODE",
  5: "UNSUPP_OPTION",
  6: "MALFORMED_OPTION",
  7: "NETWORK_FAILURE",
  8: "NO_RESOURCES",
  9: "UNSUPP_PROTOCOL",
  10: "USER_EX_QUOTA",
  11: "CANNOT_PROVIDE_EXTERNAL",
  12: "ADDRESS_MISMATCH",
  13: "EXCESSIVE_REMOTE_PEERS",
};
const UNSUPP_VERSION = 1;

export interface PcpMapRequest {
  /** Our own address as the gateway sees it (§8.1); a mismatch is refused. */
  clientAddress: string;
  /** 12 random bytes naming the mapping; renewals and the delete reuse it (§11.1). */
  nonce: Uint8Array;
  protocol: TransportProtocol;
  internalPort: number;
  /** 0: no preference. */
  suggestedExternalPort: number;
  /** "0.0.0.0": no preference. */
  suggestedExternalAddress: string;
  /** 0 deletes the mapping (§15). */
  lifetimeSeconds: number;
}

export type PcpResponse =
  | {
    kind: "map";
    resultCode: number;
    lifetimeSeconds: number;
    epoch: number;
    nonce: Uint8Array;
    protocol: TransportProtocol | number;
    internalPort: number;
    externalPort: number;
    externalAddress: string;
  }
  /** §9: a server of another version (a NAT-PMP one answers with version 0). */
  | { kind: "unsupported-version"; version: number }
  /**
   * An error answer of the header alone (§7.2, §8.3: a server may answer a
   * request it could not parse with less than the whole request): it cannot
   * be matched to a request, but it says the server refuses them.
   */
  | { kind: "header-error"; resultCode: number; opcode: number }
  | { kind: "malformed"; reason: string };

export function newNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(12));
}

export function encodeMapRequest(req: PcpMapRequest): Uint8Array {
  const packet = new Uint8Array(MAP_LENGTH);
  const view = new DataView(packet.buffer);
  view.setUint8(0, PCP_VERSION);
  view.setUint8(1, OPCODE_MAP);
  view.setUint32(4, req.lifetimeSeconds);
  packet.set(ipv4Mapped(req.clientAddress), 8);
  packet.set(req.nonce.subarray(0, 12), 24);
  view.setUint8(36, PROTOCOL_NUMBERS[req.protocol]);
  view.setUint16(40, req.internalPort);
  view.setUint16(42, req.suggestedExternalPort);
  packet.set(ipv4Mapped(req.suggestedExternalAddress), 44);
  return packet;
}

/** Any datagram from the server: a MAP response, or why it is not one. */
export function decodePcpResponse(datagram: Uint8Array): PcpResponse {
  if (datagram.length < 4) {
    return malformed(`${datagram.length} bytes, shorter than any response`);
  }
  const version = datagram[0];
  if (version !== PCP_VERSION) {
    // §9: a server of another version answers UNSUPP_VERSION with its own
    // version; NAT-PMP's 16-bit result code 1 has the same last byte.
    if (datagram[3] === UNSUPP_VERSION && datagram[1] & RESPONSE_BIT) {
      return { kind: "unsupported-version", version };
    }
    return malformed(`version ${version}`);
  }
  if (datagram.length > MAX_LENGTH || datagram.length % 4 !== 0) {
    return malformed(`${datagram.length} bytes, not a PCP message length`);
  }
  if (datagram.length < HEADER_LENGTH) {
    return malformed(`${datagram.length} bytes, shorter than a PCP header`);
  }
  if (!(datagram[1] & RESPONSE_BIT)) {
    return malformed("a request, not a response");
  }
  const opcode = datagram[1] & ~RESPONSE_BIT;
  if (datagram.length < MAP_LENGTH) {
    if (datagram[3] !== 0) {
      return { kind: "header-error", resultCode: datagram[3], opcode };
    }
    return malformed(`${datagram.length} bytes, a MAP response has 60`);
  }
  if (opcode !== OPCODE_MAP) return malformed(`opcode ${opcode}`);
  const view = new DataView(
    datagram.buffer,
    datagram.byteOffset,
    datagram.byteLength,
  );
  const protocolNumber = view.getUint8(36);
  const protocol = protocolNumber === PROTOCOL_NUMBERS.tcp
    ? "tcp"
    : protocolNumber === PROTOCOL_NUMBERS.udp
    ? "udp"
    : protocolNumber;
  return {
    kind: "map",
    resultCode: view.getUint8(3),
    lifetimeSeconds: view.getUint32(4),
    epoch: view.getUint32(8),
    nonce: datagram.slice(24, 36),
    protocol,
    internalPort: view.getUint16(40),
    externalPort: view.getUint16(42),
    externalAddress: formatAddress(datagram.subarray(44, 60)),
  };
}

export function pcpResultName(code: number): string {
  return PCP_RESULTS[code] ?? `result code ${code}`;
}

/** Sixteen bytes ::ffff:a.b.c.d of a dotted quad (§5). */
function ipv4Mapped(address: string): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes[10] = bytes[11] = 0xff;
  const parts = address.split(".").map(Number);
  if (
    parts.length !== 4 ||
    parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)
  ) {
    throw new RangeError(`${address} is not an IPv4 address`);
  }
  bytes.set(parts, 12);
  return bytes;
}

/** Whether an address as decodePcpResponse gives it is IPv4 (a dotted quad). */
export function isDottedQuad(address: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(address);
}

/** Dotted quad for an IPv4-mapped address, else the eight groups in hex. */
function formatAddress(bytes: Uint8Array): string {
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return Array.from(bytes.subarray(12)).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  }
  return groups.join(":");
}

function malformed(reason: string): PcpResponse {
  return { kind: "malformed", reason };
}
