// BEP 15 UDP tracker announce: connect for a connection id, then announce with
// it. UDP loses datagrams, so each request is resent after timeoutMs * 2^n
// (BEP 15 says 15 s * 2^n, n up to 8; callers choose the bounds). Replies are
// matched by sender address and a random transaction id; anything else is
// ignored, since anyone can send us a datagram.

import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { normaliseIp } from "../net/ip.ts";
import { peerLimit } from "./peer_sample.ts";
import {
  decodeReply,
  encodeAnnounceRequest,
  encodeConnectRequest,
  replyTransactionId,
  type UdpReply,
} from "./udp_messages.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
} from "./types.ts";

export interface UdpAnnounceOptions {
  /** Wait for the first reply; each resend waits twice as long as the one before. */
  timeoutMs: number;
  /** Resends allowed after the first try. */
  maxRetries: number;
  signal?: AbortSignal;
  /** Connection ids kept between announces; without it every announce connects first. */
  connections?: UdpConnectionCache;
}

/** BEP 15: a client may use a connection id for one minute after receiving it. */
const CONNECTION_ID_LIFETIME_MS = 60_000;

/** Connection ids by tracker address, each valid for a limited time. */
export class UdpConnectionCache {
  readonly #entries = new Map<string, { id: bigint; validUntil: number }>();

  constructor(readonly lifetimeMs = CONNECTION_ID_LIFETIME_MS) {}

  get(key: string): { id: bigint; validUntil: number } | undefined {
    const entry = this.#entries.get(key);
    if (entry && performance.now() >= entry.validUntil) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, id: bigint): { id: bigint; validUntil: number } {
    const entry = { id, validUntil: performance.now() + this.lifetimeMs };
    this.#entries.set(key, entry);
    return entry;
  }
}

export async function announceUdp(
  url: string,
  req: AnnounceRequest,
  opts: UdpAnnounceOptions,
): Promise<AnnounceResponse> {
  const { hostname, port } = parseUdpUrl(url);
  const address = await resolve(hostname, url, opts.signal);
  const session = new UdpTrackerSession(url, address, port, opts);
  try {
    return await session.announce(req);
  } finally {
    session.close();
  }
}

function parseUdpUrl(url: string): { hostname: string; port: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TrackerError(`tracker ${url}: not a valid URL`);
  }
  const port = Number(parsed.port);
  if (!parsed.port || port < 1 || port > 65535) {
    throw new TrackerError(`tracker ${url}: UDP tracker URL has no port`);
  }
  return { hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port };
}

/** An IP literal as it is; a name through the system resolver (hosts file included). */
async function resolve(
  hostname: string,
  url: string,
  signal?: AbortSignal,
): Promise<string> {
  if (isIP(hostname)) return hostname;
  const { promise: aborted, reject } = Promise.withResolvers<never>();
  const onAbort = () => reject(cancelledError(url, signal));
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal?.aborted) onAbort();
    const found = lookup(hostname);
    found.catch(() => {}); // may settle after a cancel
    return (await Promise.race([found, aborted])).address;
  } catch (e) {
    if (e instanceof TrackerError) throw e;
    throw new TrackerError(`tracker ${url}: cannot resolve ${hostname}`);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** One socket talking to one tracker address for one announce. */
class UdpTrackerSession {
  readonly #socket: dgram.Socket;
  readonly #connections: UdpConnectionCache;
  readonly #key: string;
  readonly #peerEntryLength: 6 | 18;
  /** n in the resend schedule, counted over the whole announce so it stays bounded. */
  #attempt = 0;
  #waiter?: {
    transactionId: number;
    resolve: (datagram: Uint8Array | undefined) => void;
    reject: (e: TrackerError) => void;
  };
  #failure?: TrackerError;

  constructor(
    readonly url: string,
    readonly address: string,
    readonly port: number,
    readonly opts: UdpAnnounceOptions,
  ) {
    const v6 = isIP(address) === 6;
    this.#peerEntryLength = v6 ? 18 : 6;
    this.#connections = opts.connections ?? new UdpConnectionCache();
    this.#key = `${normaliseIp(address)}:${port}`;
    this.#socket = dgram.createSocket(v6 ? "udp6" : "udp4");
    this.#socket.on("message", (msg, rinfo) => this.#onDatagram(msg, rinfo));
    this.#socket.on("error", (e) => this.#fail(`tracker ${url}: ${e.message}`));
    opts.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  async announce(req: AnnounceRequest): Promise<AnnounceResponse> {
    for (;;) {
      const connection = this.#connections.get(this.#key) ??
        await this.#connect();
      const transactionId = randomUint32();
      const packet = encodeAnnounceRequest(connection.id, transactionId, req);
      const datagram = await this.#request(
        packet,
        transactionId,
        connection.validUntil,
      );
      if (!datagram) continue; // the connection id expired while we waited
      const reply = this.#check(
        decodeReply(
          datagram,
          "announce",
          this.#peerEntryLength,
          peerLimit(req.numWant),
        ),
      );
      if (reply.kind === "announce") return reply.response;
    }
  }

  close(): void {
    this.opts.signal?.removeEventListener("abort", this.#onAbort);
    this.#socket.close();
  }

  async #connect(): Promise<{ id: bigint; validUntil: number }> {
    const transactionId = randomUint32();
    const datagram = await this.#request(
      encodeConnectRequest(transactionId),
      transactionId,
      Infinity,
    );
    const reply = this.#check(
      decodeReply(datagram!, "connect", this.#peerEntryLength, 0), // no peers in it
    );
    if (reply.kind !== "connect") {
      throw new TrackerError(`tracker ${this.url}: no connection id`);
    }
    return this.#connections.set(this.#key, reply.connectionId);
  }

  /** Turns error and malformed replies into a TrackerError. */
  #check(reply: UdpReply): UdpReply {
    if (reply.kind === "error") {
      // BEP 15: the message may be empty; an 8-byte error reply is still an error.
      throw new TrackerError(
        reply.message
          ? `tracker ${this.url} returned an error: ${reply.message}`
          : `tracker ${this.url} returned an error (with no message)`,
      );
    }
    if (reply.kind === "malformed") {
      throw new TrackerError(`tracker ${this.url}: ${reply.reason}`);
    }
    return reply;
  }

  /**
   * Sends `packet` until a reply with its transaction id arrives. Undefined if
   * the clock passes `validUntil` first (the connection id it carries expired).
   */
  async #request(
    packet: Uint8Array,
    transactionId: number,
    validUntil: number,
  ): Promise<Uint8Array | undefined> {
    for (;;) {
      if (performance.now() >= validUntil) return undefined;
      this.#socket.send(packet, this.port, this.address, (e) => {
        if (e) this.#fail(`tracker ${this.url}: ${e.message}`);
      });
      const waitMs = this.opts.timeoutMs * 2 ** this.#attempt;
      const datagram = await this.#receive(transactionId, waitMs);
      if (datagram) return datagram;
      this.#attempt++;
      if (this.#attempt > this.opts.maxRetries) {
        throw new TrackerError(
          `tracker ${this.url}: no reply after ${this.#attempt} ${
            this.#attempt === 1 ? "try" : "tries"
          }`,
        );
      }
    }
  }

  /** The next datagram with this transaction id, or undefined after waitMs. */
  #receive(
    transactionId: number,
    waitMs: number,
  ): Promise<Uint8Array | undefined> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.opts.signal?.aborted) {
      return Promise.reject(cancelledError(this.url, this.opts.signal));
    }
    const { promise, resolve, reject } = Promise.withResolvers<
      Uint8Array | undefined
    >();
    const timer = setTimeout(() => resolve(undefined), waitMs);
    this.#waiter = { transactionId, resolve, reject };
    return promise.finally(() => {
      clearTimeout(timer);
      this.#waiter = undefined;
    });
  }

  #onDatagram(msg: Uint8Array, rinfo: { address: string; port: number }): void {
    const waiter = this.#waiter;
    if (!waiter || rinfo.port !== this.port) return;
    if (normaliseIp(rinfo.address) !== normaliseIp(this.address)) return;
    if (replyTransactionId(msg) !== waiter.transactionId) return;
    waiter.resolve(new Uint8Array(msg));
  }

  #fail(message: string): void {
    this.#failure ??= new TrackerError(message);
    this.#waiter?.reject(this.#failure);
  }

  readonly #onAbort = () =>
    this.#waiter?.reject(cancelledError(this.url, this.opts.signal));
}

/** The caller's abort reason when it is a TrackerError (a deadline), else "cancelled". */
function cancelledError(url: string, signal?: AbortSignal): TrackerError {
  const reason = signal?.reason;
  if (reason instanceof TrackerError) return reason;
  return new TrackerError(`tracker ${url}: announce cancelled`);
}

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
