// A KRPC flood for memory tests: many UDP sources on loopback (127.0.0.2, 127.0.0.3, ...;
// all of 127.0.0.0/8 is bound to lo on Linux) send a paced stream of malformed and
// well-formed-but-hostile datagrams at one DHT node. The sources drain what comes back
// (counted), answer the node's own queries with a fresh random id each time, the way a
// Sybil swarm would try to fill its routing table and pending queries, and announce
// random info-hashes with the tokens its get_peers replies hand out (a token is good for
// any info-hash), to fill its peer store.

import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import {
  decodeKrpc,
  encodeError,
  encodeQuery,
  encodeResponse,
  type KrpcQuery,
} from "../../src/dht/krpc.ts";
import { randomNodeId } from "../../src/dht/node_id.ts";

export type FloodKind = "malformed" | "hostile";

export interface FloodOptions {
  port: number;
  sources: number;
  packets: number;
  perSecond: number;
  kinds: FloodKind[];
}

export interface FloodResult {
  sent: number;
  /** Datagrams the node sent back to the sources: answers and its own queries. */
  received: number;
  /** Of those, queries of the node's own (pings, mostly). */
  queriesFromNode: number;
  /** announce_peer queries the node accepted (a token of its own came back). */
  announcesAccepted: number;
}

const ascii = new TextEncoder();
/** The first transaction-id byte of our announces, so that their answers can be told. */
const ANNOUNCE_T = 0xaa;

/** Sends the flood and resolves once every packet is out and stragglers have arrived. */
export async function floodKrpc(options: FloodOptions): Promise<FloodResult> {
  const sockets = await Promise.all(
    Array.from(
      { length: options.sources },
      (_, i) => bindSource(`127.0.0.${2 + i}`),
    ),
  );
  const result: FloodResult = {
    sent: 0,
    received: 0,
    queriesFromNode: 0,
    announcesAccepted: 0,
  };
  /** The latest token each source was given. */
  const tokens = new Map<dgram.Socket, Uint8Array>();
  for (const socket of sockets) {
    socket.on("message", (msg, rinfo) => {
      result.received++;
      let message;
      try {
        message = decodeKrpc(new Uint8Array(msg));
      } catch {
        return;
      }
      if (message.type === "response") {
        if (message.reply.token) tokens.set(socket, message.reply.token);
        if (message.t[0] === ANNOUNCE_T) result.announcesAccepted++;
      } else if (message.type === "query") {
        result.queriesFromNode++;
        const answer = encodeResponse(message.t, { id: randomNodeId() });
        socket.send(answer, rinfo.port, rinfo.address);
      }
    });
  }
  try {
    const tickMs = 10;
    const perTick = Math.max(1, Math.round(options.perSecond * tickMs / 1000));
    const started = performance.now();
    let tick = 0;
    while (result.sent < options.packets) {
      for (let i = 0; i < perTick && result.sent < options.packets; i++) {
        const socket = sockets[result.sent % sockets.length];
        const kind = options.kinds[result.sent % options.kinds.length];
        const datagram = kind === "malformed"
          ? malformed()
          : hostile(tokens.get(socket));
        socket.send(datagram, options.port, "127.0.0.1");
        result.sent++;
      }
      tick++;
      // paced against the start, so a slow tick does not lower the rate
      const wait = started + tick * tickMs - performance.now();
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    return result;
  } finally {
    await Promise.all(
      sockets.map((s) => new Promise<void>((done) => s.close(() => done()))),
    );
  }
}

function bindSource(host: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, host, () => {
      socket.off("error", reject);
      resolve(socket);
    });
  });
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

function transaction(): Uint8Array {
  const t = new Uint8Array(randomBytes(1 + Math.floor(Math.random() * 8)));
  if (t[0] === ANNOUNCE_T) t[0] = 0;
  return t;
}

/** Undecodable bytes, broken bencode, and readable queries with bad arguments (error 203). */
function malformed(): Uint8Array {
  const id = "a".repeat(20);
  const t = `${Math.floor(Math.random() * 1e6)}`;
  const tString = `${t.length}:${t}`;
  return pick([
    () => new Uint8Array(randomBytes(1 + Math.floor(Math.random() * 1400))),
    () => ascii.encode(`d1:t${tString}1:y1:qe`), // a query without a method
    () => ascii.encode(`d1:ad2:idi5ee1:q4:ping1:t${tString}1:y1:qe`),
    () =>
      ascii.encode(
        `d1:ad2:id20:${id}6:target3:abce1:q9:find_node1:t${tString}1:y1:qe`,
      ),
    () =>
      ascii.encode(
        `d1:ad2:id20:${id}9:info_hashi1ee1:q9:get_peers1:t${tString}1:y1:qe`,
      ),
    () => ascii.encode(`d1:ad2:id20:${id}e1:q8:vote_xyz1:t${tString}1:y1:qe`),
    () => ascii.encode("l".repeat(700) + "e".repeat(700)),
    () => ascii.encode(`d1:t${"9".repeat(12)}:x1:y1:qe`),
    () =>
      ascii.encode(
        `d1:rd2:id20:${id}5:nodes25:${"x".repeat(25)}e1:t2:zz1:y1:re`,
      ),
  ])();
}

/**
 * Well-formed messages no honest node would send in such numbers; announces carry the
 * source's token when it has one, a made-up one otherwise.
 */
function hostile(token: Uint8Array | undefined): Uint8Array {
  const query = (q: KrpcQuery) => encodeQuery(transaction(), q);
  return pick([
    () => query({ method: "ping", id: randomNodeId() }),
    () =>
      query({
        method: "find_node",
        id: randomNodeId(),
        target: randomNodeId(),
      }),
    () =>
      query({
        method: "get_peers",
        id: randomNodeId(),
        infoHash: randomNodeId(),
      }),
    () =>
      encodeQuery(new Uint8Array([ANNOUNCE_T, ...randomBytes(3)]), {
        method: "announce_peer",
        id: randomNodeId(),
        infoHash: randomNodeId(),
        port: 1 + Math.floor(Math.random() * 65535),
        impliedPort: Math.random() < 0.5,
        token: token ?? new Uint8Array(randomBytes(8)),
      }),
    // replies and errors nobody asked for
    () =>
      encodeResponse(transaction(), {
        id: randomNodeId(),
        nodes: Array.from({ length: 8 }, () => ({
          id: randomNodeId(),
          host: `10.${Math.floor(Math.random() * 256)}.0.1`,
          port: 6881,
        })),
      }),
    () => encodeError(transaction(), 201, "x".repeat(100)),
  ])();
}
