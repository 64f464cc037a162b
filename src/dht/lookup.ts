// The iterative lookup of BEP 5 "Overview" (Kademlia's node lookup), as a state machine
// without I/O: the caller asks which nodes to query next, runs the queries, and reports
// each reply or failure. At most `alpha` queries are in flight; the lookup ends when the K
// closest nodes seen so far have all answered or failed, or after `maxQueries` queries.
// The replies' tokens are kept so that announce_peer can go to the closest nodes that
// gave one.
//
// One candidate per IP address, the first seen: a hostile host answering with many ids at
// its own address (different ports) must not fill the closest set and eclipse the lookup.
// Loopback addresses are exempt, as in the routing table: tests run every node on
// 127.0.0.1 (libtorrent's dht_restrict_search_ips, off in such tests).

import { isLoopbackHost, type NodeContact } from "./contacts.ts";
import { compareDistance, type NodeId, nodeIdHex } from "./node_id.ts";
import { K } from "./routing_table.ts";

export interface LookupLimits {
  alpha: number;
  maxQueries: number;
  /** Candidates kept, closest first; farther ones are forgotten. */
  maxCandidates: number;
}

export const DEFAULT_LOOKUP_LIMITS: LookupLimits = {
  alpha: 3,
  maxQueries: 64,
  maxCandidates: 128,
};

type CandidateState = "new" | "asked" | "replied" | "failed";

interface Candidate {
  contact: NodeContact;
  state: CandidateState;
  token?: Uint8Array;
}

export class IterativeLookup {
  /** Sorted by distance to the target, closest first. */
  #candidates: Candidate[] = [];
  readonly #seen = new Set<string>();
  readonly #seenHosts = new Set<string>();
  #inFlight = 0;
  #queried = 0;

  constructor(
    readonly target: NodeId,
    readonly ownId: NodeId,
    seeds: readonly NodeContact[],
    readonly limits: LookupLimits = DEFAULT_LOOKUP_LIMITS,
  ) {
    this.#addCandidates(seeds);
  }

  get queried(): number {
    return this.#queried;
  }

  get done(): boolean {
    if (this.#inFlight > 0) return false;
    return this.#queried >= this.limits.maxQueries ||
      this.#pendingInClosest() === undefined;
  }

  /** Nodes to query now (each is counted as in flight until reported back). */
  next(): NodeContact[] {
    const picked: NodeContact[] = [];
    while (
      this.#inFlight < this.limits.alpha &&
      this.#queried < this.limits.maxQueries
    ) {
      const candidate = this.#pendingInClosest();
      if (!candidate) break;
      candidate.state = "asked";
      this.#inFlight++;
      this.#queried++;
      picked.push(candidate.contact);
    }
    return picked;
  }

  replied(
    contact: NodeContact,
    nodes: readonly NodeContact[],
    token?: Uint8Array,
  ): void {
    const candidate = this.#settle(contact, "replied");
    if (candidate && token) candidate.token = token;
    this.#addCandidates(nodes);
  }

  failed(contact: NodeContact): void {
    this.#settle(contact, "failed");
  }

  /** The closest nodes that replied with a token, for announce_peer (BEP 5). */
  closestWithTokens(count = K): { contact: NodeContact; token: Uint8Array }[] {
    return this.#candidates
      .filter((c) => c.state === "replied" && c.token)
      .slice(0, count)
      .map((c) => ({ contact: c.contact, token: c.token! }));
  }

  /** The first never-asked node among the K closest that have not failed. */
  #pendingInClosest(): Candidate | undefined {
    let live = 0;
    for (const candidate of this.#candidates) {
      if (candidate.state === "failed") continue;
      if (candidate.state === "new") return candidate;
      if (++live >= K) return undefined;
    }
    return undefined;
  }

  #settle(contact: NodeContact, state: CandidateState): Candidate | undefined {
    const candidate = this.#candidates.find((c) =>
      c.contact === contact && c.state === "asked"
    );
    if (!candidate) return undefined;
    candidate.state = state;
    this.#inFlight--;
    return candidate;
  }

  #addCandidates(nodes: readonly NodeContact[]): void {
    let added = false;
    for (const contact of nodes) {
      const key = nodeIdHex(contact.id);
      if (this.#seen.has(key) || key === nodeIdHex(this.ownId)) continue;
      const perHost = !isLoopbackHost(contact.host);
      if (perHost && this.#seenHosts.has(contact.host)) continue;
      this.#seen.add(key);
      if (perHost) this.#seenHosts.add(contact.host);
      this.#candidates.push({ contact, state: "new" });
      added = true;
    }
    if (!added) return;
    this.#candidates.sort((a, b) =>
      compareDistance(a.contact.id, b.contact.id, this.target)
    );
    if (this.#candidates.length > this.limits.maxCandidates) {
      // never drop one in flight: its report must still find it
      this.#candidates = this.#candidates.filter((c, i) =>
        i < this.limits.maxCandidates || c.state === "asked"
      );
    }
  }
}
