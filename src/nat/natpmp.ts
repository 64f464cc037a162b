// RFC 6886 NAT-PMP messages, sans-IO. Every field is big-endian; the gateway
// listens on UDP 5351 (§3).
//
//   external address request  0: u8 version=0  1: u8 opcode=0               (2 bytes)
//   external address response 0: u8 version=0  1: u8 opcode=128  2: u16 result
//                             4: u32 seconds since start of epoch  8: ipv4   (12 bytes)
//   map request               0: u8 version=0  1: u8 opcode (1 UDP, 2 TCP)  2: u16 0
//                             4: u16 internal port  6: u16 suggested external port
//                             8: u32 requested lifetime                      (12 bytes)
//   map response              0: u8 version=0  1: u8 opcode+128  2: u16 result
//                             4: u32 epoch  8: u16 internal port
//                             10: u16 mapped external port  12: u32 lifetime (16 bytes)
//
// An error response may stop after the epoch (8 bytes): §3.5 defines only the
// header for "unsupported version", and the other fields mean nothing then.

import type { TransportProtocol } from "./types.ts";

const NATPMP_VERSION = 0;

const OPCODE_EXTERNAL_ADDRESS = 0;
const OPCODE_MAP: Record<TransportProtocol, number> = { udp: 1, tcp: 2 };
/** §3.2: a response's opcode is the request's plus 128. */
const RESPONSE_BIT = 128;

/** §3.5 result codes; the names are what a log shows. */
const NATPMP_RESULTS: Record<number, string> = {
  0: "success",
  1: "unsupported version",
  2: "not authorized or refused",
  3: "network failure",
  4: "out of resources",
  5: "unsupported opcode",
};

export type NatPmpResponse =
  | {
    kind: "address";
    resultCode: number;
    epoch: number;
    /** Dotted quad; "0.0.0.0" when the gateway has none yet. */
    externalAddress: string;
  }
  | {
    kind: "map";
    protocol: TransportProtocol;
    resultCode: number;
    epoch: number;
    internalPort: number;
    externalPort: number;
    lifetimeSeconds: number;
  }
  | { kind: "malformed"; reason: string };

/** §3.2: what is my external address? */
export function encodeExternalAddressRequest(): Uint8Array {
  return new Uint8Array([NATPMP_VERSION, OPCODE_EXTERNAL_ADDRESS]);
}

/**
 * §3.3: map internalPort, preferably to suggestedExternalPort (0: any), for
 * lifetimeSeconds. §3.4: lifetime 0 with suggested port 0 deletes the mapping.
 */
export function encodeMapRequest(
  protocol: TransportProtocol,
  internalPort: number,
  suggestedExternalPort: number,
  lifetimeSeconds: number,
): Uint8Array {
  const packet = new Uint8Array(12);
  const view = new DataView(packet.buffer);
  view.setUint8(0, NATPMP_VERSION);
  view.setUint8(1, OPCODE_MAP[protocol]);
  view.setUint16(4, internalPort);
  view.setUint16(6, suggestedExternalPort);
  view.setUint32(8, lifetimeSeconds);
  return packet;
}

/** Any datagram from the gateway: a response, or why it is not one. */
export function decodeNatPmpResponse(datagram: Uint8Array): NatPmpResponse {
  if (datagram.length < 8) {
    return malformed(`${datagram.length} bytes, shorter than any response`);
  }
  const view = new DataView(
    datagram.buffer,
    datagram.byteOffset,
    datagram.byteLength,
  );
  const version = view.getUint8(0);
  if (version !== NATPMP_VERSION) return malformed(`version ${version}`);
  const opcode = view.getUint8(1);
  const resultCode = view.getUint16(2);
  const epoch = view.getUint32(4);
  if (opcode === RESPONSE_BIT + OPCODE_EXTERNAL_ADDRESS) {
    if (datagram.length < 12) {
      if (resultCode === 0) {
        return malformed(`address response of ${datagram.length} bytes`);
      }
      return { kind: "address", resultCode, epoch, externalAddress: "0.0.0.0" };
    }
    const externalAddress = Array.from(datagram.subarray(8, 12)).join(".");
    return { kind: "address", resultCode, epoch, externalAddress };
  }
  const protocol = opcode === RESPONSE_BIT + OPCODE_MAP.tcp
    ? "tcp"
    : opcode === RESPONSE_BIT + OPCODE_MAP.udp
    ? "udp"
    : undefined;
  if (!protocol) return malformed(`opcode ${opcode}`);
  if (datagram.length < 16) {
    if (resultCode === 0) {
      return malformed(`map response of ${datagram.length} bytes`);
    }
    // An error without the ports cannot be matched to a request.
    return malformed(`error ${resultCode} without the mapping fields`);
  }
  return {
    kind: "map",
    protocol,
    resultCode,
    epoch,
    internalPort: view.getUint16(8),
    externalPort: view.getUint16(10),
    lifetimeSeconds: view.getUint32(12),
  };
}

/** A result code as words, for messages. */
export function natPmpResultName(code: number): string {
  return NATPMP_RESULTS[code] ?? `result code ${code}`;
}

function malformed(reason: string): NatPmpResponse {
  return { kind: "malformed", reason };
}
