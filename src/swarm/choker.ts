// Who may download from us (BEP 3 choking, as libtorrent practises it).
// A fixed number of upload slots: every 10 s the regular slots go to the
// interested peers that give us the most (while leeching) or take the most
// (while seeding); one slot is optimistic, rotated every 30 s to a random
// choked peer so newcomers get a chance. Anti-snubbing: while leeching, a
// peer that stopped sending to us loses its regular slot. A peer that turns
// interested while a slot is free is unchoked at once, not at the next round.

export interface ChokerPeer {
  readonly peerInterested: boolean;
  readonly amChoking: boolean;
  /** Payload bytes a second received from the peer. */
  readonly rate: number;
  /** Payload bytes a second sent to the peer. */
  readonly uploadRate: number;
  readonly snubbed: boolean;
  setChoking(choking: boolean): void;
}

export class Choker<P extends ChokerPeer> {
  private optimistic: P | null = null;

  constructor(private slots: number) {}

  /** The 10-second round. */
  rechoke(peers: Iterable<P>, seeding: boolean): void {
    const candidates = [...peers].filter((p) =>
      p.peerInterested && p !== this.optimistic && !(p.snubbed && !seeding)
    );
    candidates.sort((a, b) =>
      seeding ? b.uploadRate - a.uploadRate : b.rate - a.rate
    );
    const regular = new Set(candidates.slice(0, Math.max(1, this.slots - 1)));
    if (this.optimistic && !this.optimistic.peerInterested) {
      this.optimistic = null;
    }
    for (const p of peers) {
      p.setChoking(!(regular.has(p) || p === this.optimistic));
    }
  }

  /** The 30-second round: a new optimistic unchoke among the choked interested peers. */
  rotateOptimistic(peers: Iterable<P>): void {
    const choked = [...peers].filter((p) => p.peerInterested && p.amChoking);
    if (choked.length === 0) return;
    const previous = this.optimistic;
    this.optimistic = choked[Math.floor(Math.random() * choked.length)];
    this.optimistic.setChoking(false);
    // The previous optimistic peer keeps its slot only if it earned a regular one.
    if (
      previous && previous !== this.optimistic &&
      this.unchokedCount(peers) > this.slots
    ) {
      previous.setChoking(true);
    }
  }

  /** A peer became interested: unchoke it now if a slot is free. */
  interested(peer: P, peers: Iterable<P>): void {
    if (peer.amChoking && this.unchokedCount(peers) < this.slots) {
      peer.setChoking(false);
    }
  }

  /** A peer left: its slot is free for the next interested peer. */
  removed(peer: P, peers: Iterable<P>): void {
    if (peer === this.optimistic) this.optimistic = null;
    if (peer.amChoking) return;
    for (const p of peers) {
      if (p !== peer && p.peerInterested && p.amChoking) {
        p.setChoking(false);
        return;
      }
    }
  }

  private unchokedCount(peers: Iterable<P>): number {
    let n = 0;
    for (const p of peers) if (!p.amChoking && p.peerInterested) n++;
    return n;
  }
}
