// RFC 6886 §3.6 (NAT-PMP) and RFC 6887 §8.5 (PCP): every response carries the
// gateway's epoch, the seconds since it last started or lost its mapping
// table. Compared with our own clock between two responses it tells whether
// the gateway restarted, in which case every mapping must be made again
// (RFC 6886 §3.7, RFC 6887 §8.5).

export type EpochRule = "natpmp" | "pcp";

export class EpochWatch {
  #previous?: { server: number; clientMs: number };

  constructor(readonly rule: EpochRule) {}

  /**
   * Records the epoch of a response received at nowMs (a monotonic clock);
   * true when it shows the gateway lost its state since the previous one.
   * The first response is valid by definition.
   */
  lostState(server: number, nowMs: number): boolean {
    const previous = this.#previous;
    this.#previous = { server, clientMs: nowMs };
    if (!previous) return false;
    const clientDelta = Math.floor((nowMs - previous.clientMs) / 1000);
    if (this.rule === "natpmp") {
      // The gateway's clock must have advanced at least 7/8 as much as
      // ours, give or take 2 s.
      const expected = previous.server + Math.floor(clientDelta * 7 / 8);
      return server < expected - 2;
    }
    // Going back by up to 1 s is packet reordering, not a restart.
    if (server < previous.server - 1) return true;
    const serverDelta = server - previous.server;
    return clientDelta + 2 < serverDelta - Math.floor(serverDelta / 16) ||
      serverDelta + 2 < clientDelta - Math.floor(clientDelta / 16);
  }
}
