// BEP 11 peer exchange (ut_pex): a bencoded dictionary of compact peer lists,
// IPv4 in `added`/`dropped` (6 bytes a peer), IPv6 in `added6`/`dropped6`
// (18 bytes), with one flag byte per added peer. The convention every client
// keeps: at most 50 added and 50 dropped peers a message, at most one
// message a minute (swarm/pex.ts keeps the limits).

import { decode } from "../bencode/decode.ts";
import { encode } from "../bencode/encode.ts";
import { type BDict, BencodeError } from "../bencode/types.ts";
import { isDict } from "../bencode/access.ts";
import {
  encodeCompactPeers,
  parseCompactPeers4,
  parseCompactPeers6,
} from "../net/compact_peers.ts";
import { ipBytes } from "../net/ip.ts";
import type { PeerAddress } from "../net/address.ts";

export const PEX_MAX_PEERS = 50;
export const PEX_INTERVAL_MS = 60_000;
/** BEP 11 added.f: 0x01 prefers encryption, 0x02 is a seed, 0x10 reachable. */
export const PEX_FLAG_SEED = 0x02;
export const PEX_FLAG_REACHABLE = 0x10;

export interface PexMessage {
  added: PeerAddress[];
  dropped: PeerAddress[];
}

export interface PexEntry extends PeerAddress {
  flags: number;
}

export function encodePex(
  added: PexEntry[],
  dropped: PeerAddress[],
): Uint8Array {
  const added4 = added.filter((p) => ipBytes(p.host)?.length === 4);
  const added6 = added.filter((p) => ipBytes(p.host)?.length === 16);
  const dropped4 = dropped.filter((p) => ipBytes(p.host)?.length === 4);
  const dropped6 = dropped.filter((p) => ipBytes(p.host)?.length === 16);
  return encode({
    added: encodeCompactPeers(added4, 4),
    "added.f": new Uint8Array(added4.map((p) => p.flags)),
    added6: encodeCompactPeers(added6, 16),
    "added6.f": new Uint8Array(added6.map((p) => p.flags)),
    dropped: encodeCompactPeers(dropped4, 4),
    dropped6: encodeCompactPeers(dropped6, 16),
  });
}

/** Parses a ut_pex payload; throws BencodeError when it is malformed. */
export function parsePex(payload: Uint8Array): PexMessage {
  const root = decode(payload);
  if (!isDict(root)) {
    throw new BencodeError("ut_pex message is not a dictionary");
  }
  return {
    added: [
      ...list(root, "added", parseCompactPeers4),
      ...list(root, "added6", parseCompactPeers6),
    ],
    dropped: [
      ...list(root, "dropped", parseCompactPeers4),
      ...list(root, "dropped6", parseCompactPeers6),
    ],
  };
}

function list(
  root: BDict,
  key: string,
  parse: (b: Uint8Array) => PeerAddress[] | undefined,
): PeerAddress[] {
  const v = root[key];
  if (v === undefined) return [];
  if (!(v instanceof Uint8Array)) {
    throw new BencodeError(`ut_pex ${key} is not a string`);
  }
  const peers = parse(v);
  if (!peers) throw new BencodeError(`ut_pex ${key} has a partial entry`);
  return peers;
}
