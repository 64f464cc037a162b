// A clock for unit tests: time moves only when the test says, and timers fire
// in time order as it moves, so that timing logic is tested without waiting.

import type { Clock, Timer } from "../../src/net/clock.ts";

export class FakeClock implements Clock {
  #now = 0;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; fire: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimer(fire: () => void, ms: number): Timer {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fire });
    return id;
  }

  clearTimer(timer: Timer): void {
    this.#timers.delete(timer as number);
  }

  /** Timers still set. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the timers still set are due, soonest first: the schedule a test asserts. */
  get dueTimes(): number[] {
    return [...this.#timers.values()].map((t) => t.at).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, firing due timers in order and letting the work they start settle. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      let due: [number, { at: number; fire: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) {
          due = entry;
        }
      }
      if (!due) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].fire();
    }
    this.#now = end;
    await settle();
  }
}

/** Lets queued promise work run (a macrotask turn flushes every microtask). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
