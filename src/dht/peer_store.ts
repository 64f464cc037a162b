// BEP 5 announce_peer storage: the peers other nodes announced to us, by info-hash, handed
// out in get_peers "values". Bounded in every direction: info-hashes (least recently
// announced dropped first), peers per info-hash (oldest dropped first), peers in all (the
// oldest of the least recently announced info-hash dropped first), age (an announce lasts
// 30 minutes, twice the usual 15-minute re-announce), and peers per reply (a reply must
// fit one UDP datagram). The total matters: a token is good for any info-hash, so a few
// hundred addresses can announce without end, and 2000 x 200 peers are some 50 MiB.
// One entry per IP address: a re-announce from the same IP replaces the port, so one
// host cannot fill an info-hash's list with 200 ports; loopback is exempt (one host by
// definition, where tests run many peers), as in the routing table.

import { formatHostPort, type PeerAddress } from "../net/address.ts";
import { isLoopbackHost } from "./contacts.ts";

export interface PeerStoreLimits {
  maxInfoHashes: number;
  maxPeersPerInfoHash: number;
  /** Over all info-hashes. */
  maxPeers: number;
  ttlMs: number;
}

export const DEFAULT_PEER_STORE_LIMITS: PeerStoreLimits = {
  maxInfoHashes: 2000,
  maxPeersPerInfoHash: 200,
  /** Some 3 MiB of heap when full (2000 x 200 were some 50 MiB). */
  maxPeers: 20_000,
  ttlMs: 30 * 60_000,
};

/** 50 peers are 400 bytes of "values", well inside a datagram. */
const MAX_VALUES_PER_REPLY = 50;

export class PeerStore {
  /** info-hash hex -> (host -> peer and when it announced); Maps keep insertion order. */
  readonly #byInfoHash = new Map<
    string,
    Map<string, { peer: PeerAddress; at: number }>
  >();
  #peerCount = 0;

  constructor(
    readonly limits: PeerStoreLimits = DEFAULT_PEER_STORE_LIMITS,
    readonly now: () => number = () => Date.now(),
  ) {}

  get infoHashCount(): number {
    return this.#byInfoHash.size;
  }

  get peerCount(): number {
    return this.#peerCount;
  }

  announce(infoHashHex: string, peer: PeerAddress): void {
    let peers = this.#byInfoHash.get(infoHashHex);
    if (peers) {
      this.#byInfoHash.delete(infoHashHex); // re-inserted below as the most recent
    } else {
      peers = new Map();
      if (this.#byInfoHash.size >= this.limits.maxInfoHashes) {
        this.#dropInfoHash(this.#byInfoHash.keys().next().value!);
      }
    }
    this.#byInfoHash.set(infoHashHex, peers);
    const key = isLoopbackHost(peer.host)
      ? formatHostPort(peer.host, peer.port)
      : peer.host;
    if (!peers.delete(key)) this.#peerCount++;
    peers.set(key, {
      peer: { host: peer.host, port: peer.port },
      at: this.now(),
    });
    if (peers.size > this.limits.maxPeersPerInfoHash) {
      this.#dropOldest(infoHashHex, peers);
    }
    if (this.#peerCount > this.limits.maxPeers) {
      // the least recently announced info-hash gives up its oldest peer (the one just
      // announced is the most recent, so it loses one only when it is the only one)
      const [hash, oldest] = this.#byInfoHash.entries().next().value!;
      this.#dropOldest(hash, oldest);
    }
  }

  /** Up to 50 live peers for the info-hash, a random choice when there are more. */
  peers(infoHashHex: string): PeerAddress[] {
    const peers = this.#byInfoHash.get(infoHashHex);
    if (!peers) return [];
    const cutoff = this.now() - this.limits.ttlMs;
    // oldest first: expired entries form a prefix
    for (const entry of peers.values()) {
      if (entry.at > cutoff) break;
      this.#dropOldest(infoHashHex, peers);
    }
    if (!this.#byInfoHash.has(infoHashHex)) return [];
    const all = [...peers.values()].map((entry) => entry.peer);
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    return all.slice(0, MAX_VALUES_PER_REPLY);
  }

  /** Drops the oldest peer of an info-hash, and the info-hash once it has none. */
  #dropOldest(
    infoHashHex: string,
    peers: Map<string, { peer: PeerAddress; at: number }>,
  ): void {
    peers.delete(peers.keys().next().value!);
    this.#peerCount--;
    if (peers.size === 0) this.#byInfoHash.delete(infoHashHex);
  }

  #dropInfoHash(infoHashHex: string): void {
    this.#peerCount -= this.#byInfoHash.get(infoHashHex)?.size ?? 0;
    this.#byInfoHash.delete(infoHashHex);
  }
}
