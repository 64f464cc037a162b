// BEP 15 UDP tracker messages, sans-IO. Every field is big-endian.
//
//   connect request   0: u64 protocol id  8: u32 action=0  12: u32 transaction id
//   connect reply     0: u32 action=0  4: u32 transaction id  8: u64 connection id
//   announce request  0: u64 connection id  8: u32 action=1  12: u32 transaction id
//                     16: info_hash[20]  36: peer_id[20]  56: u64 downloaded
//                     64: u64 left  72: u64 uploaded  80: u32 event  84: u32 ip (0)
//                     88: u32 key  92: i32 num_want  96: u16 port       (98 bytes)
//   announce reply    0: u32 action=1  4: u32 transaction id  8: u32 interval
//                     12: u32 leechers  16: u32 seeders  20: peers (6 or 18 bytes each)
//   error reply       0: u32 action=3  4: u32 transaction id  8: message text

import { PeerSample } from "./peer_sample.ts";
import type {
  AnnounceEvent,
  AnnounceRequest,
  AnnounceResponse,
} from "./types.ts";

/** The magic connection id of a connect request. */
const PROTOCOL_ID = 0x41727101980n;

const ACTION_CONNECT = 0;
const ACTION_ANNOUNCE = 1;
const ACTION_ERROR = 3;

const EVENT_CODES: Record<AnnounceEvent, number> = {
  none: 0,
  completed: 1,
  started: 2,
  stopped: 3,
};

/** What a datagram whose transaction id matched turned out to be. */
export type UdpReply =
  | { kind: "connect"; connectionId: bigint }
  | { kind: "announce"; response: AnnounceResponse }
  | { kind: "error"; message: string }
  | { kind: "malformed"; reason: string };

export function encodeConnectRequest(transactionId: number): Uint8Array {
  const packet = new Uint8Array(16);
  const view = new DataView(packet.buffer);
  view.setBigUint64(0, PROTOCOL_ID);
  view.setUint32(8, ACTION_CONNECT);
  view.setUint32(12, transactionId);
  return packet;
}

export function encodeAnnounceRequest(
  connectionId: bigint,
  transactionId: number,
  req: AnnounceRequest,
): Uint8Array {
  const packet = new Uint8Array(98);
  const view = new DataView(packet.buffer);
  view.setBigUint64(0, connectionId);
  view.setUint32(8, ACTION_ANNOUNCE);
  view.setUint32(12, transactionId);
  packet.set(req.infoHash.subarray(0, 20), 16);
  packet.set(req.peerId.subarray(0, 20), 36);
  view.setBigUint64(56, BigInt(req.downloaded));
  view.setBigUint64(64, BigInt(req.left));
  view.setBigUint64(72, BigInt(req.uploaded));
  view.setUint32(80, EVENT_CODES[req.event]);
  view.setUint32(84, 0); // ip: 0 means "the address the datagram came from"
  view.setUint32(88, req.key >>> 0);
  view.setInt32(92, req.numWant);
  view.setUint16(96, req.port);
  return packet;
}

/** The transaction id of a datagram long enough to carry one. */
export function replyTransactionId(datagram: Uint8Array): number | undefined {
  if (datagram.length < 8) return undefined;
  return new DataView(datagram.buffer, datagram.byteOffset, 8).getUint32(4);
}

/**
 * Decodes a reply to a request of kind `expected`. `peerEntryLength` is 6 for
 * a tracker reached over IPv4 and 18 over IPv6 (BEP 15, "IPv6"); a random
 * `peerLimit` of the dialable peers are kept.
 */
export function decodeReply(
  datagram: Uint8Array,
  expected: "connect" | "announce",
  peerEntryLength: 6 | 18,
  peerLimit: number,
  random: () => number = Math.random,
): UdpReply {
  const view = new DataView(
    datagram.buffer,
    datagram.byteOffset,
    datagram.length,
  );
  const action = view.getUint32(0);
  if (action === ACTION_ERROR) {
    const text = new TextDecoder().decode(datagram.subarray(8));
    return {
      kind: "error",
      message: text.replace(/\s+/g, " ").trim().slice(0, 200),
    };
  }
  if (expected === "connect") {
    if (action !== ACTION_CONNECT) return wrongAction(action, expected);
    if (datagram.length < 16) return tooShort(datagram, expected, 16);
    return { kind: "connect", connectionId: view.getBigUint64(8) };
  }
  if (action !== ACTION_ANNOUNCE) return wrongAction(action, expected);
  if (datagram.length < 20) return tooShort(datagram, expected, 20);
  const peerBytes = datagram.subarray(20);
  const sample = new PeerSample(peerLimit, random);
  if (!sample.addCompact(peerBytes, peerEntryLength === 6 ? 4 : 16)) {
    return {
      kind: "malformed",
      reason:
        `announce reply has ${peerBytes.length} bytes of peers, not a multiple of ${peerEntryLength}`,
    };
  }
  return {
    kind: "announce",
    response: {
      peers: sample.peers,
      listedPeers: sample.listed,
      interval: view.getUint32(8),
      incomplete: view.getUint32(12),
      complete: view.getUint32(16),
    },
  };
}

function wrongAction(action: number, expected: string): UdpReply {
  return {
    kind: "malformed",
    reason: `reply to ${expected} has action ${action}`,
  };
}

function tooShort(
  datagram: Uint8Array,
  expected: string,
  min: number,
): UdpReply {
  return {
    kind: "malformed",
    reason: `${expected} reply is ${datagram.length} bytes, less than ${min}`,
  };
}
