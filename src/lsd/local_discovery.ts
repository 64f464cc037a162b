// BEP 14 Local Service Discovery over IPv4 multicast: we join the group
// 239.192.152.143:6771, announce each of our info-hashes there, and report
// the announces of other clients on the local network as peers.
//
// Timing (BEP 14 leaves it to the client; these follow its advice and what
// libtorrent does): an info-hash is announced when added, again every 5
// minutes, and never more than once a minute however often announceNow is
// called. Each announce goes out three times, at once and after 2 and 4
// seconds, as libtorrent does: multicast is unacknowledged, and one lost
// datagram would otherwise hide us for 5 minutes. The repeats are part of that
// one announce (the once-a-minute rule counts announces, not datagrams); a new
// announce of the torrent cancels the old one's pending repeats. Our own
// announces come back to us (multicast loopback is on so that other clients on
// this host hear us); the random cookie tells them apart. Announces are taken
// only from local-network addresses (isLocalSource). Private torrents (BEP 27)
// must not be added: that is the caller's rule.

import dgram from "node:dgram";
import { randomBytes } from "node:crypto";
import { type Clock, systemClock, type Timer } from "../net/clock.ts";
import { normaliseIp } from "../net/ip.ts";
import {
  encodeLsdAnnounce,
  isLocalSource,
  parseLsdAnnounce,
} from "./lsd_message.ts";

/** BEP 14, "Protocol": the org-local IPv4 group. */
export const LSD_GROUP_IPV4 = { host: "239.192.152.143", port: 6771 };

const ANNOUNCE_INTERVAL_MS = 5 * 60_000;
const MIN_ANNOUNCE_GAP_MS = 60_000;
/** When an announce is sent again, after the first datagram (libtorrent's timing). */
const REPEAT_DELAYS_MS = [2000, 4000];
/**
 * BEP 14 suggests a TTL above 1 since the group's scope is wider than one
 * link; 32 is libtorrent's choice, so both reach the same hosts.
 */
const MULTICAST_TTL = 32;

export interface LocalDiscoveryOptions {
  /** Our BitTorrent listen port, sent as `Port`. */
  listenPort: number;
  log: (line: string) => void;
  /** Another client announced one of our info-hashes from host, listening on port. */
  onPeer: (infoHashHex: string, host: string, port: number) => void;
  /** IPv4 address of the interface to join the group on and send from; the OS picks without it. */
  interfaceAddress?: string;
  /**
   * Where announces go; a unicast address (tests: 127.0.0.1) skips the
   * group join. Default LSD_GROUP_IPV4.
   */
  group?: { host: string; port: number };
  /** Port to receive on; default the group's port, 0 lets the OS pick (tests). */
  bindPort?: number;
  announceIntervalMs?: number;
  minAnnounceGapMs?: number;
  /** Delays of the repeats of each announce; default [2000, 4000], [] for none. */
  repeatDelaysMs?: number[];
  /** The announce schedule runs on it; the system clock unless given (tests). */
  clock?: Clock;
}

export interface LocalDiscoveryStats {
  announcesSent: number;
  sendErrors: number;
  /** Announces of other clients, whether or not they named our torrents. */
  announcesHeard: number;
  /** Our own announces that came back (same cookie). */
  ownIgnored: number;
  /** Datagrams that were not a valid announce. */
  malformed: number;
  /** Datagrams from outside the local network, dropped unread. */
  notLocal: number;
  peersReported: number;
}

export class LocalDiscovery {
  readonly stats: LocalDiscoveryStats = {
    announcesSent: 0,
    sendErrors: 0,
    announcesHeard: 0,
    ownIgnored: 0,
    malformed: 0,
    notLocal: 0,
    peersReported: 0,
  };
  readonly #socket: dgram.Socket;
  readonly #options: LocalDiscoveryOptions;
  readonly #clock: Clock;
  readonly #group: { host: string; port: number };
  readonly #hostHeader: string;
  /** Lowercase hex, as libtorrent sends it; compared case-insensitively. */
  readonly #cookie = randomBytes(4).readUInt32BE(0).toString(16);
  /** Our info-hashes (lowercase hex) and when each was last announced. */
  readonly #torrents = new Map<string, number>();
  #timer: Timer;
  readonly #sends = new Set<Promise<void>>();
  /** Pending repeats of the last announce of each torrent. */
  readonly #repeats = new Map<string, Timer[]>();
  #loggedMalformed = false;
  #loggedSendError = false;
  #closed = false;

  private constructor(socket: dgram.Socket, options: LocalDiscoveryOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#group = options.group ?? LSD_GROUP_IPV4;
    this.#hostHeader = `${this.#group.host}:${this.#group.port}`;
    socket.on("message", (msg, from) => this.#receive(msg, from.address));
    this.#timer = this.#scheduleCheck();
  }

  /** Binds the LSD port (shared with other clients on this host) and joins the group. */
  static async start(options: LocalDiscoveryOptions): Promise<LocalDiscovery> {
    const group = options.group ?? LSD_GROUP_IPV4;
    const multicast = isMulticastIPv4(group.host);
    // reuseAddr: every LSD client on a host binds the same port, and each
    // gets its own copy of every multicast datagram.
    const socket = dgram.createSocket({
      type: "udp4",
      reuseAddr: true,
      // Deno's node:dgram reads each datagram into a new buffer of this
      // size (64 KiB by default): a multicast flood must not cost that each.
      recvBufferSize: 1500,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        // A socket bound to one unicast address would not see the group's
        // datagrams, so a multicast listener binds the wildcard address.
        socket.bind(
          options.bindPort ?? group.port,
          multicast ? "0.0.0.0" : group.host,
          () => {
            socket.off("error", reject);
            resolve();
          },
        );
      });
      if (multicast) {
        socket.addMembership(group.host, options.interfaceAddress);
        socket.setMulticastTTL(MULTICAST_TTL);
        socket.setMulticastLoopback(true);
        if (options.interfaceAddress) {
          socket.setMulticastInterface(options.interfaceAddress);
        }
      }
    } catch (e) {
      socket.close();
      throw new Error(
        `local peer discovery cannot listen on port ${
          options.bindPort ?? group.port
        }: ${(e as Error).message}`,
      );
    }
    socket.on("error", (e) => options.log(`LSD: socket error: ${e.message}`));
    return new LocalDiscovery(socket, options);
  }

  /** The UDP port we receive on. */
  get localPort(): number {
    return this.#socket.address().port;
  }

  /** Starts announcing a torrent, the first time at once. */
  add(infoHashHex: string): void {
    const key = infoHashHex.toLowerCase();
    if (this.#torrents.has(key)) return;
    this.#torrents.set(key, -Infinity);
    this.announceNow(key);
  }

  remove(infoHashHex: string): void {
    const key = infoHashHex.toLowerCase();
    this.#torrents.delete(key);
    this.#cancelRepeats(key);
  }

  /**
   * Announces a torrent of ours now, unless it was announced less than a
   * minute ago; says whether it sent.
   */
  announceNow(infoHashHex: string): boolean {
    const key = infoHashHex.toLowerCase();
    const last = this.#torrents.get(key);
    const now = this.#clock.now();
    if (this.#closed || last === undefined || now - last < this.#minGap) {
      return false;
    }
    this.#torrents.set(key, now);
    this.#cancelRepeats(key);
    this.#send(key);
    const repeats = (this.#options.repeatDelaysMs ?? REPEAT_DELAYS_MS).map(
      (delay) =>
        this.#clock.setTimer(() => {
          if (!this.#closed) this.#send(key);
        }, delay),
    );
    if (repeats.length > 0) this.#repeats.set(key, repeats);
    return true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimer(this.#timer);
    for (const key of [...this.#repeats.keys()]) this.#cancelRepeats(key);
    await Promise.all(this.#sends);
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }

  get #interval(): number {
    return this.#options.announceIntervalMs ?? ANNOUNCE_INTERVAL_MS;
  }

  get #minGap(): number {
    return this.#options.minAnnounceGapMs ?? MIN_ANNOUNCE_GAP_MS;
  }

  /** Checking once per minimum gap is fine-grained enough for a 5 min cycle. */
  #scheduleCheck(): Timer {
    return this.#clock.setTimer(() => {
      this.#timer = this.#scheduleCheck();
      this.#announceDue();
    }, Math.min(this.#minGap, this.#interval));
  }

  #announceDue(): void {
    const now = this.#clock.now();
    for (const [key, last] of this.#torrents) {
      if (now - last >= this.#interval) this.announceNow(key);
    }
  }

  #cancelRepeats(key: string): void {
    for (const timer of this.#repeats.get(key) ?? []) {
      this.#clock.clearTimer(timer);
    }
    this.#repeats.delete(key);
  }

  #send(infoHashHex: string): void {
    const packet = encodeLsdAnnounce({
      host: this.#hostHeader,
      port: this.#options.listenPort,
      infoHashHex,
      cookie: this.#cookie,
    });
    const sent = new Promise<void>((resolve) => {
      this.#socket.send(packet, this.#group.port, this.#group.host, (e) => {
        if (e) this.#sendFailed(e);
        else this.stats.announcesSent++;
        resolve();
      });
    });
    this.#sends.add(sent);
    sent.then(() => this.#sends.delete(sent));
  }

  /** No route to the group (no network, say) is not fatal: log once, count. */
  #sendFailed(e: Error): void {
    this.stats.sendErrors++;
    if (this.#loggedSendError) return;
    this.#loggedSendError = true;
    this.#options.log(
      `LSD: cannot send to ${this.#hostHeader}: ${e.message} (further send errors are counted, not logged)`,
    );
  }

  #receive(datagram: Uint8Array, fromAddress: string): void {
    if (this.#closed) return;
    if (!isLocalSource(fromAddress)) {
      this.stats.notLocal++;
      return;
    }
    const parsed = parseLsdAnnounce(datagram);
    if (parsed.kind === "malformed") {
      this.stats.malformed++;
      if (!this.#loggedMalformed) {
        this.#loggedMalformed = true;
        this.#options.log(
          `LSD: ignored a malformed announce from ${fromAddress}: ${parsed.reason} (further ones are counted, not logged)`,
        );
      }
      return;
    }
    const { announce } = parsed;
    if (announce.cookie?.toLowerCase() === this.#cookie) {
      this.stats.ownIgnored++;
      return;
    }
    this.stats.announcesHeard++;
    const host = normaliseIp(fromAddress) ?? fromAddress;
    for (const infoHashHex of announce.infoHashes) {
      if (!this.#torrents.has(infoHashHex)) continue;
      this.stats.peersReported++;
      this.#options.onPeer(infoHashHex, host, announce.port);
    }
  }
}

function isMulticastIPv4(host: string): boolean {
  const first = Number(host.split(".")[0]);
  return first >= 224 && first <= 239;
}
