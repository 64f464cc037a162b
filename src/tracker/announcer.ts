// BEP 12 announcer for one torrent: tiers of trackers tried in order, each
// tier shuffled once, a tracker that answers moved to the front of its tier.
// It re-announces on the tracker's interval, early when the client is short
// of peers (never before the min interval), and says "stopped" on shutdown.

import { announceToTracker } from "./announce.ts";
import { UdpConnectionCache } from "./udp.ts";
import {
  type AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResponse,
  type PeerAddress,
  TrackerError,
} from "./types.ts";

export interface AnnouncerOptions {
  infoHash: Uint8Array;
  peerId: Uint8Array;
  port: number;
  numWant: number;
  timeoutMs: number;
  udpMaxRetries: number;
  /** Floor for re-announcing, also when short of peers. */
  minReannounceSeconds: number;
  stats: () => { uploaded: number; downloaded: number; left: number };
  onPeers: (peers: PeerAddress[], source: string) => void;
  log: (line: string) => void;
}

/** Seconds between announces until a tracker says otherwise. */
const DEFAULT_INTERVAL_SECONDS = 1800;
/** Retries after every tracker failed back off from here, doubling. */
const MIN_FAILED_ROUND_RETRY_SECONDS = 1;
/** setTimeout fires at once for delays that do not fit in an int32. */
const MAX_TIMER_MS = 0x7fffffff;

export class Announcer {
  readonly #tiers: string[][];
  readonly #opts: AnnouncerOptions;
  /** BEP 3 "key": random per session, lets a tracker know us across IP changes. */
  readonly #key = crypto.getRandomValues(new Uint32Array(1))[0];
  readonly #udpConnections = new UdpConnectionCache();
  readonly #trackerIds = new Map<string, string>();
  readonly #warnings = new Map<string, string>();
  /** Trackers that accepted "started"; others get it first (BEP 3). */
  readonly #started = new Set<string>();
  /** Trackers whose failure was logged and that have not answered since. */
  readonly #failing = new Set<string>();
  #completed: "no" | "pending" | "sent" = "no";
  #lastWorking?: string;
  #interval = DEFAULT_INTERVAL_SECONDS;
  #minInterval = 0;
  #lastAnnounceAt = -Infinity;
  #failedRounds = 0;
  #timer?: ReturnType<typeof setTimeout>;
  #timerAt = Infinity;
  #round?: Promise<void>;
  #roundAgain = false;
  #inFlight?: AbortController;
  #begun = false;
  #stopped = false;
  #stopping?: Promise<void>;
  #port: number;

  constructor(tiers: string[][], opts: AnnouncerOptions) {
    // BEP 12: shuffle each tier once, when first read.
    this.#tiers = tiers.filter((t) => t.length > 0).map((t) => shuffled(t));
    this.#opts = opts;
    this.#port = opts.port;
  }

  /** Announces "started" now, then on the tracker's interval. */
  start(): void {
    if (this.#begun || this.#stopped) return;
    this.#begun = true;
    this.#announceNow();
  }

  /** Announces early, but not before the min interval since the last announce. */
  needPeers(): void {
    if (!this.#begun || this.#stopped || this.#round) return;
    this.#announceAtFloor();
  }

  #announceAtFloor(): void {
    const floorSeconds = Math.max(
      this.#minInterval,
      this.#opts.minReannounceSeconds,
    );
    const earliest = this.#lastAnnounceAt + floorSeconds * 1000;
    if (earliest < this.#timerAt) this.#setTimer(earliest);
  }

  /**
   * Announces `port` from now on (a port mapping made or moved), telling the
   * trackers at once, min interval or not: until then they hand out a port
   * that nobody outside can reach. A mapping moves rarely, so this is no
   * flood.
   */
  setPort(port: number): void {
    if (port === this.#port) return;
    this.#port = port;
    if (this.#begun) this.#announceNow();
  }

  /** Sends "completed" once, now. */
  completed(): void {
    if (this.#completed !== "no" || this.#stopped) return;
    this.#completed = "pending";
    if (this.#begun) this.#announceNow();
  }

  /** Cancels everything, then says "stopped" to the last tracker that answered. */
  stop(timeoutMs: number): Promise<void> {
    if (!this.#stopping) {
      this.#stopped = true;
      this.#stopping = this.#stop(timeoutMs);
    }
    return this.#stopping;
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.#clearTimer();
    this.#inFlight?.abort();
    await this.#round;
    const url = this.#lastWorking;
    if (url === undefined) return;
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new TrackerError(`tracker ${url}: no reply within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    try {
      await announceToTracker(url, this.#request("stopped"), {
        timeoutMs: Math.min(this.#opts.timeoutMs, timeoutMs),
        udpMaxRetries: this.#opts.udpMaxRetries,
        trackerId: this.#trackerIds.get(url),
        udpConnections: this.#udpConnections,
        signal: deadline.signal,
      });
    } catch (e) {
      this.#opts.log(`${errorText(e)} (while sending "stopped")`);
    } finally {
      clearTimeout(timer);
    }
  }

  #announceNow(): void {
    if (this.#stopped) return;
    if (this.#round) {
      this.#roundAgain = true;
      return;
    }
    this.#clearTimer();
    this.#round = this.#runRound().finally(() => {
      this.#round = undefined;
      if (this.#roundAgain) {
        this.#roundAgain = false;
        this.#announceNow();
      }
    });
  }

  /** One announce: tiers in order, trackers in tier order, until one answers. */
  async #runRound(): Promise<void> {
    this.#lastAnnounceAt = performance.now();
    const controller = new AbortController();
    this.#inFlight = controller;
    try {
      for (const tier of this.#tiers) {
        for (const [index, url] of tier.entries()) {
          const event = this.#eventFor(url);
          let response: AnnounceResponse;
          try {
            response = await announceToTracker(url, this.#request(event), {
              timeoutMs: this.#opts.timeoutMs,
              udpMaxRetries: this.#opts.udpMaxRetries,
              trackerId: this.#trackerIds.get(url),
              udpConnections: this.#udpConnections,
              signal: controller.signal,
            });
          } catch (e) {
            if (this.#stopped) return;
            this.#trackerFailed(url, e);
            continue;
          }
          if (this.#stopped) return;
          // BEP 12: a tracker that answered moves to the front of its tier.
          tier.splice(index, 1);
          tier.unshift(url);
          this.#trackerAnswered(url, event, response);
          return;
        }
      }
      this.#allFailed();
    } finally {
      this.#inFlight = undefined;
    }
  }

  #eventFor(url: string): AnnounceEvent {
    if (!this.#started.has(url)) return "started";
    return this.#completed === "pending" ? "completed" : "none";
  }

  #trackerAnswered(
    url: string,
    event: AnnounceEvent,
    response: AnnounceResponse,
  ): void {
    const log = this.#opts.log;
    if (this.#failing.delete(url)) log(`tracker ${url} answers again`);
    if (response.warning && this.#warnings.get(url) !== response.warning) {
      log(`tracker ${url} warns: ${response.warning}`);
      this.#warnings.set(url, response.warning);
    }
    if (response.trackerId !== undefined) {
      this.#trackerIds.set(url, response.trackerId);
    }
    this.#started.add(url);
    // "started" with left=0 tells a new tracker as much as "completed" would.
    if (event !== "none" && this.#completed === "pending") {
      this.#completed = "sent";
    }
    this.#lastWorking = url;
    this.#failedRounds = 0;
    this.#interval = response.interval;
    this.#minInterval = response.minInterval ?? 0;
    const seconds = Math.max(
      this.#interval,
      this.#minInterval,
      this.#opts.minReannounceSeconds,
    );
    this.#setTimer(this.#lastAnnounceAt + seconds * 1000);
    this.#opts.onPeers(response.peers, url);
  }

  /** Logs a tracker's failure once, until it answers again. */
  #trackerFailed(url: string, e: unknown): void {
    if (this.#failing.has(url)) return;
    this.#failing.add(url);
    this.#opts.log(errorText(e));
  }

  #allFailed(): void {
    this.#failedRounds++;
    const floor = Math.max(
      this.#opts.minReannounceSeconds,
      MIN_FAILED_ROUND_RETRY_SECONDS,
    );
    const seconds = Math.min(
      this.#interval,
      floor * 2 ** (this.#failedRounds - 1),
    );
    if (this.#failedRounds === 1) {
      this.#opts.log(`no tracker answered; retrying, first in ${seconds} s`);
    }
    this.#setTimer(performance.now() + seconds * 1000);
  }

  #request(event: AnnounceEvent): AnnounceRequest {
    const { uploaded, downloaded, left } = this.#opts.stats();
    return {
      infoHash: this.#opts.infoHash,
      peerId: this.#opts.peerId,
      port: this.#port,
      uploaded,
      downloaded,
      left,
      event,
      numWant: event === "stopped" ? 0 : this.#opts.numWant,
      key: this.#key,
    };
  }

  /** Announces at `at` (a performance.now() time); unref'd so it never holds the process. */
  #setTimer(at: number): void {
    this.#clearTimer();
    const delay = Math.min(Math.max(0, at - performance.now()), MAX_TIMER_MS);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#announceNow();
    }, delay);
    Deno.unrefTimer(this.#timer);
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}

function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
