// The time and timers that the layers with timing logic run on (the tracker
// announcer, the DHT socket and node, the port mapper and its clients, local
// discovery): the system's in use, a fake one in unit tests, so that their
// timing logic is tested without waiting.

/** A timer handle, opaque to its user. */
export type Timer = unknown;

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fire` after `ms`; the timer never keeps the process alive. */
  setTimer(fire: () => void, ms: number): Timer;
  clearTimer(timer: Timer): void;
}

/** setTimeout fires at once for delays that do not fit in an int32. */
const MAX_TIMER_MS = 0x7fffffff;

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fire, ms) {
    const timer = setTimeout(fire, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    Deno.unrefTimer(timer);
    return timer;
  },
  clearTimer: (timer) =>
    clearTimeout(timer as ReturnType<typeof setTimeout> | undefined),
};

/** AbortSignal.timeout on a clock; `cancel` stops its timer. */
export function clockTimeout(
  clock: Clock,
  ms: number,
): { signal: AbortSignal; cancel: () => void } {
  const controller = new AbortController();
  const timer = clock.setTimer(
    () => controller.abort(new DOMException("timed out", "TimeoutError")),
    ms,
  );
  return { signal: controller.signal, cancel: () => clock.clearTimer(timer) };
}
