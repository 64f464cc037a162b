// Who may download from us (BEP 3 choking, as libtorrent practises it).
// A fixed number of upload slots: every 10 s the regular slots go to the
// interested peers that give us the most (while leeching) or take the most
// (while seeding); one slot is optimistic, rotated every 30 s to a random
// choked peer so newcomers get a chance. Anti-snubbing: while leeching, a
// peer that stopped sending to us loses its regular slot. A peer that turns
// interested while a slot is free is unchoked at once, not at the next round.
// An unchoked peer that asks for nothing gives its slot to a waiting one
// (libtorrent disconnects such a peer after 60 s while seeding; a slot is
// worth reclaiming sooner, and the connection may still be useful).

export interface ChokerPeer {
  readonly peerInterested: boolean;
  readonly amChoking: boolean;
  /** Payload bytes a second received from the peer. */
  readonly rate: number;
  /** Payload bytes a second sent to the peer. */
  readonly uploadRate: number;
  readonly snubbed: boolean;
  /** When the peer last used its slot: unchoked, asked for a block, or was sent one. */
  readonly slotUsedAt: number;
  /** Its requests waiting to be served. */
  readonly uploadsQueued: number;
  setChoking(choking: boolean): void;
}

/** Ticks (seconds) between regular rounds, and between optimistic unchokes. */
export const RECHOKE_TICKS = 10;
export const OPTIMISTIC_TICKS = 30;
/** An unchoked, interested peer that asks for nothing this long gives up its slot to a waiting peer. */
export const IDLE_SLOT_MS = 20_000;

export class Choker<P extends ChokerPeer> {
  private optimistic: P | null = null;

  private ticks = 0;

  constructor(
    private slots: number,
    /** Numbers in [0, 1) that pick the optimistic unchoke (seeded in tests). */
    private random: () => number = Math.random,
  ) {}

  /**
   * Once a second: the regular round every RECHOKE_TICKS calls (idle slots
   * are reclaimed in between), a new optimistic unchoke every
   * OPTIMISTIC_TICKS.
   */
  tick(peers: Iterable<P>, seeding: boolean, now: number): void {
    this.ticks++;
    if (this.ticks % RECHOKE_TICKS === 0) this.rechoke(peers, seeding, now);
    else this.reclaimIdle(peers, now);
    if (this.ticks % OPTIMISTIC_TICKS === 0) this.rotateOptimistic(peers);
  }

  /** The 10-second round; peers idle in their slot rank last. */
  rechoke(peers: Iterable<P>, seeding: boolean, now: number): void {
    const candidates = [...peers].filter((p) =>
      p.peerInterested && p !== this.optimistic && !(p.snubbed && !seeding)
    );
    candidates.sort((a, b) =>
      Number(idle(a, now)) - Number(idle(b, now)) ||
      (seeding ? b.uploadRate - a.uploadRate : b.rate - a.rate)
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
    this.optimistic = choked[Math.floor(this.random() * choked.length)];
    this.optimistic.setChoking(false);
    // The previous optimistic peer keeps its slot only if it earned a regular one.
    if (
      previous && previous !== this.optimistic &&
      this.unchokedCount(peers) > this.slots
    ) {
      previous.setChoking(true);
    }
  }

  /**
   * Every second: each peer idle in its slot for IDLE_SLOT_MS is choked and
   * its slot goes to a choked interested peer, the one that gives us most.
   * The idle peer competes for slots again at the next round like anyone.
   */
  reclaimIdle(peers: Iterable<P>, now: number): void {
    const all = [...peers];
    const waiting = all.filter((p) => p.peerInterested && p.amChoking)
      .sort((a, b) => b.rate - a.rate);
    for (const p of all) {
      if (waiting.length === 0) return;
      if (!idle(p, now)) continue;
      const next = waiting.shift()!;
      p.setChoking(true);
      next.setChoking(false);
      if (p === this.optimistic) this.optimistic = next;
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

/** Unchoked and interested, yet asking for nothing for IDLE_SLOT_MS. */
function idle(p: ChokerPeer, now: number): boolean {
  return !p.amChoking && p.peerInterested && p.uploadsQueued === 0 &&
    now - p.slotUsedAt >= IDLE_SLOT_MS;
}
