// When a torrent's resume record is written: at once when asked (the
// torrent completes or stops), and while downloading at most once every
// `intervalMs`, only when a piece was verified since the last save.
// resume.ts says what is written and when the data is synced.

export class ResumeSaver {
  private dirty = false;
  private lastSaveAt: number;

  constructor(
    private save: () => void,
    private intervalMs: number,
    now: number,
  ) {
    this.lastSaveAt = now;
  }

  /** A piece was verified and written. */
  changed(): void {
    this.dirty = true;
  }

  /** Saves now; throws what saving throws (the record stays due). */
  saveNow(now: number): void {
    this.save();
    this.dirty = false;
    this.lastSaveAt = now;
  }

  /** Saves when a piece was verified and the interval has passed. */
  tick(now: number): void {
    if (this.dirty && now - this.lastSaveAt > this.intervalMs) {
      this.saveNow(now);
    }
  }
}
