// A token bucket for one direction of the session's traffic (download or
// upload). Bytes are charged after they move; when the bucket runs dry the
// caller waits until it refills. The bucket holds at most a fifth of a
// second of traffic, so a burst cannot push a 10 s average more than ~2%
// over the cap.

export class Bandwidth {
  private tokens: number;
  private last: number;
  private readonly capacity: number;

  /** `bytesPerSecond` 0 means unlimited; `now` is the clock (ms), injected in tests. */
  constructor(
    readonly bytesPerSecond: number,
    private now: () => number = () => performance.now(),
  ) {
    this.capacity = Math.max(32 * 1024, bytesPerSecond / 5);
    this.tokens = this.capacity;
    this.last = now();
  }

  get limited(): boolean {
    return this.bytesPerSecond > 0;
  }

  /** Charges n bytes that were (or are about to be) moved. */
  charge(n: number): void {
    if (!this.limited) return;
    this.refill();
    this.tokens -= n;
  }

  /** True when n bytes may move now without exceeding the cap. */
  allows(n: number): boolean {
    if (!this.limited) return true;
    this.refill();
    return this.tokens >= Math.min(n, this.capacity);
  }

  /** Milliseconds until n bytes may move (0 when they may now). */
  waitMs(n: number): number {
    if (!this.limited) return 0;
    this.refill();
    const missing = Math.min(n, this.capacity) - this.tokens;
    return missing <= 0 ? 0 : Math.ceil((missing / this.bytesPerSecond) * 1000);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(
      this.capacity,
      this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
    );
    this.last = now;
  }
}
