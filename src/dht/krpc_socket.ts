// The UDP side of BEP 5 KRPC on node:dgram: sends queries and matches the replies by
// transaction id and sender address (anyone can send us a datagram), times them out, and
// hands incoming queries to the owner. Undecodable datagrams are counted and dropped;
// a readable query with bad arguments gets a KRPC error (BEP 5 "Errors"), nothing else.
// Queries (well-formed or not) are answered only within the QueryLimiter's budget; the
// rest are dropped unanswered and counted. Transaction ids are random (4 bytes), so an
// off-path sender cannot guess one and slip a forged reply in.
//
// Under a flood every datagram costs as little as it can: it is read into a buffer of
// MAX_DATAGRAM bytes, and one that cannot be a bencoded dictionary is counted and
// dropped before it is decoded.

import { randomFillSync } from "node:crypto";
import dgram from "node:dgram";
import { toHex } from "../metainfo/metainfo.ts";
import { formatHostPort, type PeerAddress } from "../net/address.ts";
import { type Clock, systemClock, type Timer } from "../net/clock.ts";
import {
  decodeKrpc,
  encodeError,
  encodeQuery,
  ErrorCode,
  KrpcError,
  type KrpcQuery,
  type KrpcReply,
} from "./krpc.ts";
import { QueryLimiter, type QueryLimits } from "./query_limiter.ts";

export type QueryOutcome =
  | { kind: "reply"; reply: KrpcReply; ip?: PeerAddress }
  | { kind: "error"; code: number; message: string }
  /** No answer in time, or the socket closed first. */
  | { kind: "timeout" }
  /** Not sent: too many queries outstanding. */
  | { kind: "busy" };

export interface IncomingQuery {
  t: Uint8Array;
  query: KrpcQuery;
  readOnly: boolean;
  from: PeerAddress;
}

export interface KrpcSocketOptions {
  host: string;
  /** 0 for any; if taken, any free port instead. */
  port: number;
  queryTimeoutMs: number;
  maxPending: number;
  /** Returns the datagram to send back, if any. */
  onQuery: (query: IncomingQuery) => Uint8Array | undefined;
  log: (line: string) => void;
  /** DEFAULT_QUERY_LIMITS unless given. */
  queryLimits?: QueryLimits;
  /** The query timeouts and the reply budget run on it; the system clock unless given (tests). */
  clock?: Clock;
}

/** 4 random bytes: 2^32 values to guess, still short (BEP 5 suggests 2 characters). */
const TRANSACTION_ID_LENGTH = 4;
/**
 * Deno's node:dgram reads every datagram into a fresh buffer of the receive buffer size,
 * 64 KiB unless set: 64 MiB a second of garbage at 1,000 datagrams a second, which the
 * heap only hands back to the OS late (issue 10). KRPC messages fit one Ethernet frame
 * (libtorrent reads its DHT socket into 1500 bytes); Deno doubles the size on Linux, as
 * the kernel does for SO_RCVBUF. A longer datagram arrives cut short, so malformed.
 */
const MAX_DATAGRAM = 1500;
/** A bencoded dictionary starts with "d" and ends with "e" (BEP 3). */
const DICT_START = 0x64;
const DICT_END = 0x65;

interface Pending {
  resolve: (outcome: QueryOutcome) => void;
  timer: Timer;
}

export class KrpcSocket {
  #malformed = 0;
  #rateLimited = 0;
  readonly #limiter: QueryLimiter;
  readonly #clock: Clock;
  /** "transaction hex@host:port" -> the query waiting for it. */
  readonly #pending = new Map<string, Pending>();
  readonly #loggedOnce = new Set<string>();
  #closed = false;

  private constructor(
    readonly socket: dgram.Socket,
    readonly port: number,
    readonly options: KrpcSocketOptions,
  ) {
    const clock = options.clock ?? systemClock;
    this.#clock = clock;
    this.#limiter = new QueryLimiter(options.queryLimits, () => clock.now());
    // a view, not a copy: decoding copies what outlives the datagram (ids, tokens)
    socket.on("message", (msg, rinfo) =>
      this.#onDatagram(
        new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength),
        { host: rinfo.address, port: rinfo.port },
      ));
    socket.on(
      "error",
      (e) => this.#logOnce("socket", `DHT socket: ${e.message}`),
    );
  }

  static async bind(options: KrpcSocketOptions): Promise<KrpcSocket> {
    let socket: dgram.Socket;
    try {
      socket = await bindUdp(options.host, options.port);
    } catch (error) {
      if (options.port === 0) throw error;
      options.log(
        `DHT: UDP port ${options.port} is not free (${
          (error as Error).message
        }); using any free port`,
      );
      socket = await bindUdp(options.host, 0);
    }
    return new KrpcSocket(socket, socket.address().port, options);
  }

  get malformedPackets(): number {
    return this.#malformed;
  }

  /** Queries dropped unanswered: over the per-IP or the global reply budget. */
  get rateLimitedQueries(): number {
    return this.#rateLimited;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  query(
    to: PeerAddress,
    query: KrpcQuery,
    readOnly = false,
  ): Promise<QueryOutcome> {
    if (this.#closed) return Promise.resolve({ kind: "timeout" });
    if (this.#pending.size >= this.options.maxPending) {
      return Promise.resolve({ kind: "busy" });
    }
    const t = transactionId((t) => this.#pending.has(pendingKey(t, to)));
    const key = pendingKey(t, to);
    const { promise, resolve } = Promise.withResolvers<QueryOutcome>();
    const timer = this.#clock.setTimer(() => {
      this.#pending.delete(key);
      resolve({ kind: "timeout" });
    }, this.options.queryTimeoutMs);
    this.#pending.set(key, { resolve, timer });
    this.send(to, encodeQuery(t, query, readOnly));
    return promise;
  }

  send(to: PeerAddress, datagram: Uint8Array): void {
    if (this.#closed) return;
    this.socket.send(datagram, to.port, to.host, (error) => {
      if (error) this.#logOnce("send", `DHT: cannot send: ${error.message}`);
    });
  }

  /** Ends every outstanding query (as a timeout) and closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#pending.values()) {
      this.#clock.clearTimer(pending.timer);
      pending.resolve({ kind: "timeout" });
    }
    this.#pending.clear();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  #onDatagram(datagram: Uint8Array, from: PeerAddress): void {
    // nothing can be sent to port 0 (send would throw); no real node sends from it
    if (from.port === 0) return;
    if (
      datagram[0] !== DICT_START || datagram[datagram.length - 1] !== DICT_END
    ) {
      // nothing to decode, and no transaction id to answer with
      this.#malformed++;
      return;
    }
    let message;
    try {
      message = decodeKrpc(datagram);
    } catch (error) {
      // an unknown method (BEP 44, BEP 51, ...) is well-formed, just not ours
      const unknownMethod = error instanceof KrpcError &&
        error.query?.code === ErrorCode.methodUnknown;
      if (!unknownMethod) this.#malformed++;
      if (!(error instanceof KrpcError)) {
        // a decoder bug must not take the node down; say so once
        this.#logOnce("decode", `DHT: undecodable datagram: ${error}`);
      } else if (error.query && this.#allow(from)) {
        this.send(
          from,
          encodeError(error.query.t, error.query.code, error.message),
        );
      }
      return;
    }
    if (message.type === "query") {
      if (!this.#allow(from)) return;
      const answer = this.options.onQuery({
        t: message.t,
        query: message.query,
        readOnly: message.readOnly,
        from,
      });
      if (answer) this.send(from, answer);
      return;
    }
    const key = pendingKey(message.t, from);
    const pending = this.#pending.get(key);
    if (!pending) return; // late, or not ours: nothing to match it with
    this.#pending.delete(key);
    this.#clock.clearTimer(pending.timer);
    pending.resolve(
      message.type === "response"
        ? { kind: "reply", reply: message.reply, ip: message.ip }
        : { kind: "error", code: message.code, message: message.message },
    );
  }

  #allow(from: PeerAddress): boolean {
    if (this.#limiter.allow(from.host)) return true;
    this.#rateLimited++;
    return false;
  }

  #logOnce(kind: string, line: string): void {
    if (this.#loggedOnce.has(kind)) return;
    this.#loggedOnce.add(kind);
    this.options.log(line);
  }
}

/** A random transaction id, drawn again while `taken` says it is in use. */
export function transactionId(
  taken: (t: Uint8Array) => boolean,
  random: (into: Uint8Array) => void = randomFillSync,
): Uint8Array {
  for (;;) {
    const t = new Uint8Array(TRANSACTION_ID_LENGTH);
    random(t);
    if (!taken(t)) return t;
  }
}

function pendingKey(t: Uint8Array, from: PeerAddress): string {
  return `${toHex(t)}@${formatHostPort(from.host, from.port)}`;
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({
      type: "udp4",
      recvBufferSize: MAX_DATAGRAM,
    });
    const onError = (error: Error) => {
      socket.close();
      reject(error);
    };
    socket.once("error", onError);
    socket.bind(port, host, () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}
