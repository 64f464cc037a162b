// A torrent's transfer rate for the progress view and the ETA: bytes a
// second over each tick, smoothed (60% of the previous figure, 40% of the
// new one) so the ETA does not jump with every tick.

export class RateMeter {
  /** Bytes a second, smoothed. */
  rate = 0;
  private lastTotal = 0;

  /** `total`: bytes moved so far; `seconds`: since the previous sample. */
  sample(total: number, seconds: number): void {
    this.rate = this.rate * 0.6 + ((total - this.lastTotal) / seconds) * 0.4;
    this.lastTotal = total;
  }
}
