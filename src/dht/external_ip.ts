// BEP 42: the external IPv4 address other nodes report in their replies ("ip"), tallied
// so that the next run can pick a node id that BEP 42 nodes accept. Without I/O.
//
// Hard to steer: each responding IP votes once (its first report counts), so one host
// answering from many ports or with many ids is one vote; responders at private or
// loopback addresses do not vote (they see our LAN or loopback address, not the one the
// Internet sees); and a private, loopback or unusable address never wins, so no BEP 42 id
// is ever made for one. In a loopback test nothing is voted, and the saved id is kept.

import { isPrivateHost, isUnusableHost } from "./contacts.ts";

/** Distinct addresses tallied, and responders remembered. */
const MAX_CANDIDATES = 16;
const MAX_VOTERS = 512;
/** Votes the winner needs. */
const MIN_VOTES = 2;

export class ExternalIpVotes {
  readonly #votes = new Map<string, number>();
  readonly #voters = new Set<string>();

  /** `voter` (the responder's IP) says our address is `ip`. */
  vote(voter: string, ip: string): void {
    if (isPrivateHost(voter) || this.#voters.has(voter)) return;
    if (isPrivateHost(ip) || isUnusableHost(ip)) return;
    if (this.#voters.size >= MAX_VOTERS) return;
    const votes = this.#votes.get(ip);
    if (votes === undefined && this.#votes.size >= MAX_CANDIDATES) return;
    this.#voters.add(voter);
    this.#votes.set(ip, (votes ?? 0) + 1);
  }

  /** The address most responders agree on, if at least two do. */
  winner(): string | undefined {
    let best: [string, number] | undefined;
    for (const entry of this.#votes) {
      if (!best || entry[1] > best[1]) best = entry;
    }
    return best && best[1] >= MIN_VOTES ? best[0] : undefined;
  }
}

/** Whether an address could be our Internet address (for BEP 42 ids). */
export function isPublicAddress(ip: string): boolean {
  return !isPrivateHost(ip) && !isUnusableHost(ip);
}
