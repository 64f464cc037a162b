// BEP 5 "KRPC Protocol": the bencoded dictionaries nodes send each other over UDP, decoded
// and encoded without any I/O. Every datagram is untrusted; decodeKrpc throws KrpcError
// for anything that is not a well-formed message, and the error says whether the sender
// can be told (a query whose transaction id we could read) and with which BEP 5 code.
//
// Decoding uses our strict bencode decoder, which rejects non-canonical integers and
// lengths (i03e, i-0e, 03:abc), duplicate keys and trailing bytes (it lets unsorted keys
// through). That is right for KRPC too: the common implementations (libtorrent, uTorrent,
// Transmission, anacrolix) emit canonical bencode, nothing in BEP 5 depends on accepting
// sloppy encodings, and such a datagram is counted as malformed rather than guessed at.

import type { PeerAddress } from "../net/address.ts";
import { type BDict, BencodeError, type BValue } from "../bencode/types.ts";
import { decode } from "../bencode/decode.ts";
import { type Encodable, encode } from "../bencode/encode.ts";
import { isDict } from "../bencode/access.ts";
import {
  decodeNodes,
  decodePeer,
  encodeNodes,
  encodePeer,
  type NodeContact,
  validPort,
} from "./contacts.ts";
import { asNodeId, type NodeId } from "./node_id.ts";

export type KrpcQuery =
  | { method: "ping"; id: NodeId }
  | { method: "find_node"; id: NodeId; target: NodeId }
  | { method: "get_peers"; id: NodeId; infoHash: NodeId }
  | {
    method: "announce_peer";
    id: NodeId;
    infoHash: NodeId;
    /** Ignored by the receiver when impliedPort is set (it uses the UDP source port). */
    port: number;
    impliedPort: boolean;
    token: Uint8Array;
  };

export type KrpcMethod = KrpcQuery["method"];

/** The "r" dictionary of any response; which keys matter depends on the query sent. */
export interface KrpcReply {
  id: NodeId;
  nodes?: NodeContact[];
  values?: PeerAddress[];
  token?: Uint8Array;
}

export type KrpcMessage =
  | {
    type: "query";
    t: Uint8Array;
    query: KrpcQuery;
    /** BEP 43: the sender does not answer queries; keep it out of the routing table. */
    readOnly: boolean;
  }
  | {
    type: "response";
    t: Uint8Array;
    reply: KrpcReply;
    /** BEP 42: our address as the responder saw it. */
    ip?: PeerAddress;
  }
  | { type: "error"; t: Uint8Array; code: number; message: string };

/** BEP 5 "Errors". */
export const ErrorCode = {
  generic: 201,
  server: 202,
  protocol: 203,
  methodUnknown: 204,
} as const;

export class KrpcError extends Error {
  override name = "KrpcError";
  /**
   * @param query set when the message was a query with a readable transaction id, so that
   *   the sender can be answered with an error of `code`
   */
  constructor(
    message: string,
    readonly query?: { t: Uint8Array; code: number },
  ) {
    super(message);
  }
}

/**
 * Peers read from one reply's "values"; the rest are ignored. A full datagram could carry
 * some 8000, far more than any honest node sends (libtorrent sends up to 100).
 */
export const MAX_VALUES_PER_REPLY = 100;
/** Transaction ids are short (BEP 5: two bytes cover 2^16 outstanding queries). */
const MAX_TRANSACTION_ID = 32;
const METHODS: readonly string[] = [
  "ping",
  "find_node",
  "get_peers",
  "announce_peer",
];
const latin1 = new TextDecoder("latin1");

export function decodeKrpc(datagram: Uint8Array): KrpcMessage {
  let value: BValue;
  try {
    value = decode(datagram);
  } catch (error) {
    if (error instanceof BencodeError) {
      throw new KrpcError(`not bencode: ${error.message}`);
    }
    throw error;
  }
  if (!isDict(value)) throw new KrpcError("not a dictionary");
  const t = value.t;
  if (!(t instanceof Uint8Array) || t.length > MAX_TRANSACTION_ID) {
    throw new KrpcError("no usable transaction id");
  }
  const y = text(value.y);
  if (y === "q") return decodeQuery(value, t);
  if (y === "r") return decodeResponse(value, t);
  if (y === "e") return decodeError(value, t);
  throw new KrpcError(`message type ${JSON.stringify(y)} is not q, r or e`);
}

function decodeQuery(message: BDict, t: Uint8Array): KrpcMessage {
  const fail = (why: string, code: number = ErrorCode.protocol): never => {
    throw new KrpcError(why, { t, code });
  };
  const method = text(message.q);
  if (method === undefined) fail("query without a method name");
  if (!METHODS.includes(method!)) {
    fail(`unknown method ${method!.slice(0, 40)}`, ErrorCode.methodUnknown);
  }
  const args = message.a;
  if (!isDict(args)) return fail("query without an arguments dictionary");
  const id = idArg(args.id) ?? fail("id is not 20 bytes");
  const readOnly = message.ro === 1;
  const query = (q: KrpcQuery): KrpcMessage => ({
    type: "query",
    t,
    query: q,
    readOnly,
  });
  switch (method as KrpcMethod) {
    case "ping":
      return query({ method: "ping", id });
    case "find_node": {
      const target = idArg(args.target) ?? fail("target is not 20 bytes");
      return query({ method: "find_node", id, target });
    }
    case "get_peers": {
      const infoHash = idArg(args.info_hash) ??
        fail("info_hash is not 20 bytes");
      return query({ method: "get_peers", id, infoHash });
    }
    case "announce_peer": {
      const infoHash = idArg(args.info_hash) ??
        fail("info_hash is not 20 bytes");
      const impliedPort = args.implied_port === undefined
        ? false
        : args.implied_port === 1 || args.implied_port === 0
        ? args.implied_port === 1
        : fail("implied_port is not 0 or 1");
      const port = typeof args.port === "number" ? args.port : 0;
      if (!impliedPort && !validPort(port)) fail("port is not 1..65535");
      const token = args.token instanceof Uint8Array
        ? args.token
        : fail("token is not a string");
      return query({
        method: "announce_peer",
        id,
        infoHash,
        port,
        impliedPort,
        token,
      });
    }
  }
}

function decodeResponse(message: BDict, t: Uint8Array): KrpcMessage {
  const r = message.r;
  if (!isDict(r)) throw new KrpcError("response without an r dictionary");
  const id = idArg(r.id);
  if (!id) throw new KrpcError("response id is not 20 bytes");
  const reply: KrpcReply = { id };
  if (r.nodes !== undefined) {
    const nodes = r.nodes instanceof Uint8Array
      ? decodeNodes(r.nodes)
      : undefined;
    if (!nodes) throw new KrpcError("nodes is not a multiple of 26 bytes");
    reply.nodes = nodes;
  }
  if (r.values !== undefined) {
    if (!Array.isArray(r.values)) throw new KrpcError("values is not a list");
    // 18-byte (IPv6, BEP 32) and odd entries are skipped, not fatal to the rest
    reply.values = [];
    for (const v of r.values) {
      const peer = v instanceof Uint8Array ? decodePeer(v) : undefined;
      if (peer) reply.values.push(peer);
      if (reply.values.length >= MAX_VALUES_PER_REPLY) break;
    }
  }
  if (r.token !== undefined) {
    if (!(r.token instanceof Uint8Array)) {
      throw new KrpcError("token is not a string");
    }
    reply.token = r.token.slice(); // kept by the lookup: not a view of the datagram
  }
  const ip = message.ip instanceof Uint8Array
    ? decodePeer(message.ip)
    : undefined;
  return { type: "response", t, reply, ...(ip ? { ip } : {}) };
}

function decodeError(message: BDict, t: Uint8Array): KrpcMessage {
  const e = message.e;
  if (
    !Array.isArray(e) || e.length < 2 || typeof e[0] !== "number" ||
    !(e[1] instanceof Uint8Array)
  ) {
    throw new KrpcError("e is not [code, message]");
  }
  return { type: "error", t, code: e[0], message: latin1.decode(e[1]) };
}

export function encodeQuery(
  t: Uint8Array,
  query: KrpcQuery,
  readOnly = false,
): Uint8Array {
  const args: Record<string, Encodable> = { id: query.id };
  if (query.method === "find_node") args.target = query.target;
  if (query.method === "get_peers") args.info_hash = query.infoHash;
  if (query.method === "announce_peer") {
    args.info_hash = query.infoHash;
    args.port = query.port;
    args.token = query.token;
    args.implied_port = query.impliedPort ? 1 : 0;
  }
  return encode({
    t,
    y: "q",
    q: query.method,
    a: args,
    ro: readOnly ? 1 : undefined,
  });
}

/** A response; `requester` is echoed as "ip" (BEP 42) so the sender learns its address. */
export function encodeResponse(
  t: Uint8Array,
  reply: KrpcReply,
  requester?: PeerAddress,
): Uint8Array {
  const r: Record<string, Encodable> = { id: reply.id };
  if (reply.nodes) r.nodes = encodeNodes(reply.nodes);
  if (reply.values) {
    r.values = reply.values.flatMap((peer) => {
      const bytes = encodePeer(peer);
      return bytes ? [bytes] : [];
    });
  }
  if (reply.token) r.token = reply.token;
  const ip = requester && encodePeer(requester);
  return encode({ t, y: "r", r, ip });
}

export function encodeError(
  t: Uint8Array,
  code: number,
  message: string,
): Uint8Array {
  return encode({ t, y: "e", e: [code, message] });
}

function idArg(v: BValue | undefined): NodeId | undefined {
  // copied: ids outlive the datagram (routing table, peer store)
  return v instanceof Uint8Array ? asNodeId(v.slice()) : undefined;
}

function text(v: BValue | undefined): string | undefined {
  return v instanceof Uint8Array ? latin1.decode(v) : undefined;
}
