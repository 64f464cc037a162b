// BEP 5 announce_peer storage: the peers other nodes announced to us, by info-hash, handed
// out in get_peers "values". Bounded in every direction: info-hashes (least recently
// announced dropped first), peers per info-hash (oldest dropped first), age (an announce
// lasts 30 minutes, twice the usual 15-minute re-announce), and peers per reply (a reply
// must fit one UDP datagram). One entry per IP address: a re-announce from the same IP
// replaces the port, so one host cannot fill an info-hash's list with 200 ports; loopback
// is exempt (one host by definition, where tests run many peers), as in the routing table.

import { isLoopbackHost, type PeerAddress } from "./contacts.ts";

export interface PeerStoreLimits {
  maxInfoHashes: number;
  maxPeersPerInfoHash: number;
  ttlMs: number;
}

export const DEFAULT_PEER_STORE_LIMITS: PeerStoreLimits = {
  maxInfoHashes: 2000,
  maxPeersPerInfoHash: 200,
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

  constructor(
    readonly limits: PeerStoreLimits = DEFAULT_PEER_STORE_LIMITS,
    readonly now: () => number = () => Date.now(),
  ) {}

  get infoHashCount(): number {
    return this.#byInfoHash.size;
  }

  announce(infoHashHex: string, peer: PeerAddress): void {
    let peers = this.#byInfoHash.get(infoHashHex);
    if (peers) {
      this.#byInfoHash.delete(infoHashHex); // re-inserted below as the most recent
    } else {
      peers = new Map();
      if (this.#byInfoHash.size >= this.limits.maxInfoHashes) {
        const oldest = this.#byInfoHash.keys().next().value!;
        this.#byInfoHash.delete(oldest);
      }
    }
    this.#byInfoHash.set(infoHashHex, peers);
    const key = isLoopbackHost(peer.host)
      ? `${peer.host}:${peer.port}`
      : peer.host;
    peers.delete(key);
    peers.set(key, {
      peer: { host: peer.host, port: peer.port },
      at: this.now(),
    });
    if (peers.size > this.limits.maxPeersPerInfoHash) {
      peers.delete(peers.keys().next().value!);
    }
  }

  /** Up to 50 live peers for the info-hash, a random choice when there are more. */
  peers(infoHashHex: string): PeerAddress[] {
    const peers = this.#byInfoHash.get(infoHashHex);
    if (!peers) return [];
    const cutoff = this.now() - this.limits.ttlMs;
    // oldest first: expired entries form a prefix
    for (const [key, entry] of peers) {
      if (entry.at > cutoff) break;
      peers.delete(key);
    }
    if (peers.size === 0) {
      this.#byInfoHash.delete(infoHashHex);
      return [];
    }
    const all = [...peers.values()].map((entry) => entry.peer);
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j], all[i]];
    }
    return all.slice(0, MAX_VALUES_PER_REPLY);
  }
}
