// BEP 12 announcer for one torrent: tiers of trackers tried in order, each
// tier shuffled once, a tracker that answers moved to the front of its tier.
// It re-announces on the tracker's interval, early when the client is short
// of peers (never before the min interval), and says "stopped" on shutdown.
//
// A tracker that has not answered within NEXT_TRACKER_AFTER_MS does not hold
// up the rest: the next one in the order is tried as well, while the first
// keeps going on its own schedule (a silent UDP tracker takes 15 + 30 + 60 s
// to give up under BEP 15). The first answer ends the round; trackers tried
// after the one that answered are cancelled, those before it may still answer
// and are used when they do. A tracker whose reply lists no dialable peer, or
// whose peers all turn out unreachable (peerDialled), does not end the search:
// the trackers after it are tried.

import { announceToTracker, type TrackerAnnounceOptions } from "./announce.ts";
import { type Clock, systemClock, type Timer } from "../net/clock.ts";
import { peerLimit } from "./peer_sample.ts";
import { UdpConnectionCache } from "./udp.ts";
import {
  type AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResponse,
} from "./types.ts";
import type { PeerAddress } from "../net/address.ts";

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
  clock?: Clock;
  /** In [0, 1), for the BEP 12 shuffle. */
  random?: () => number;
  announce?: (
    url: string,
    req: AnnounceRequest,
    opts: TrackerAnnounceOptions,
  ) => Promise<AnnounceResponse>;
}

/** Seconds between announces until a tracker says otherwise. */
const DEFAULT_INTERVAL_SECONDS = 1800;
/** Retries after every tracker failed back off from here, doubling. */
const MIN_FAILED_ROUND_RETRY_SECONDS = 1;
/**
 * A tracker silent this long (or for the timeout, if shorter) has the next
 * one tried alongside it. libtorrent gives a tracker 10 s, aria2 20 s, before
 * moving on; we need not give up on it to move on.
 */
const NEXT_TRACKER_AFTER_MS = 5000;

/** One announce to one tracker, in flight; rounds that reach its tracker share it. */
interface Attempt {
  url: string;
  startedAt: number;
  controller: AbortController;
  /** Cancelled on purpose: its failure is not the tracker's. */
  cancelled: boolean;
  /** Settles once the reply or the failure has been handled. */
  settled: Promise<void>;
}

/** One walk down the tiers, until a tracker answers or none is left. */
interface Round {
  /** Trackers tried, in the order they were reached. */
  tried: string[];
  winner?: string;
  /** Wakes the walk: an attempt settled or the announcer stopped. */
  wake?: () => void;
}

export class Announcer {
  readonly #tiers: string[][];
  readonly #opts: AnnouncerOptions;
  readonly #clock: Clock;
  readonly #announce: NonNullable<AnnouncerOptions["announce"]>;
  readonly #nextTrackerAfterMs: number;
  /** BEP 3 "key": random per session, lets a tracker know us across IP changes. */
  readonly #key = crypto.getRandomValues(new Uint32Array(1))[0];
  readonly #udpConnections = new UdpConnectionCache();
  readonly #trackerIds = new Map<string, string>();
  readonly #warnings = new Map<string, string>();
  /** Trackers that accepted "started"; others get it first (BEP 3). */
  readonly #started = new Set<string>();
  /** Trackers whose failure was logged and that have not answered since. */
  readonly #failing = new Set<string>();
  /** Trackers whose oversized peer list was logged. */
  readonly #flooding = new Set<string>();
  readonly #attempts = new Map<string, Attempt>();
  /** The round winner's peers not yet found unreachable; cleared once one is reached. */
  #unreached?: { url: string; keys: Set<string>; count: number };
  #completed: "no" | "pending" | "sent" = "no";
  #interval = DEFAULT_INTERVAL_SECONDS;
  #minInterval = 0;
  #lastAnnounceAt = -Infinity;
  #failedRounds = 0;
  #timer?: Timer;
  #timerAt = Infinity;
  #round?: Round;
  #roundDone?: Promise<void>;
  #roundAgain = false;
  #begun = false;
  #stopped = false;
  #stopping?: Promise<void>;
  #port: number;

  constructor(tiers: string[][], opts: AnnouncerOptions) {
    const random = opts.random ?? Math.random;
    // BEP 12: shuffle each tier once, when first read.
    this.#tiers = tiers.filter((t) => t.length > 0).map((t) =>
      shuffled(t, random)
    );
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#announce = opts.announce ?? announceToTracker;
    this.#nextTrackerAfterMs = Math.min(opts.timeoutMs, NEXT_TRACKER_AFTER_MS);
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
    if (!this.#begun || this.#stopped || this.#searching) return;
    this.#announceAtFloor();
  }

  /**
   * Announces `port` from now on (a port mapping made or moved), telling the
   * trackers at once, min interval or not: until then they hand out a port
   * that nobody outside can reach. A mapping moves rarely, so this is no
   * flood. During a round, another round follows it.
   */
  setPort(port: number): void {
    if (port === this.#port) return;
    this.#port = port;
    if (this.#begun) this.#announceNow();
  }

  #announceAtFloor(): void {
    const floorSeconds = Math.max(
      this.#minInterval,
      this.#opts.minReannounceSeconds,
    );
    const earliest = this.#lastAnnounceAt + floorSeconds * 1000;
    if (earliest < this.#timerAt) this.#setTimer(earliest);
  }

  /** Sends "completed" once, now. */
  completed(): void {
    if (this.#completed !== "no" || this.#stopped) return;
    this.#completed = "pending";
    if (this.#begun) this.#announceNow();
  }

  /**
   * The outcome of dialling a peer: `reached` once its handshake is done,
   * false when the dial failed. When every peer of the last round's reply has
   * failed and none was reached, the trackers after the one that gave them are
   * tried, as if it had not answered.
   */
  peerDialled(peer: PeerAddress, reached: boolean): void {
    const unreached = this.#unreached;
    const key = peerKey(peer);
    if (!unreached?.keys.has(key)) return;
    if (reached) {
      this.#unreached = undefined;
      return;
    }
    unreached.keys.delete(key);
    if (unreached.keys.size > 0) return;
    this.#unreached = undefined;
    this.#fallBackFrom(unreached.url, unreached.count);
  }

  /** Cancels everything, then says "stopped" to every tracker told "started". */
  stop(timeoutMs: number): Promise<void> {
    if (!this.#stopping) {
      this.#stopped = true;
      this.#stopping = this.#stop(timeoutMs);
    }
    return this.#stopping;
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.#clearTimer();
    for (const attempt of this.#attempts.values()) this.#cancel(attempt);
    this.#round?.wake?.();
    await this.#roundDone;
    await Promise.all([...this.#attempts.values()].map((a) => a.settled));
    const deadline = new AbortController();
    const timer = this.#clock.setTimer(() => deadline.abort(), timeoutMs);
    await Promise.all([...this.#started].map(async (url) => {
      try {
        await this.#announce(url, this.#request("stopped"), {
          timeoutMs: Math.min(this.#opts.timeoutMs, timeoutMs),
          udpMaxRetries: this.#opts.udpMaxRetries,
          trackerId: this.#trackerIds.get(url),
          udpConnections: this.#udpConnections,
          signal: deadline.signal,
        });
      } catch (e) {
        const text = deadline.signal.aborted
          ? `tracker ${url}: no reply within ${timeoutMs} ms`
          : errorText(e);
        this.#opts.log(`${text} (while sending "stopped")`);
      }
    }));
    this.#clock.clearTimer(timer);
  }

  #announceNow(order = this.#tiers.flat(), fallback = false): void {
    if (this.#stopped) return;
    if (this.#round) {
      this.#roundAgain ||= !fallback;
      return;
    }
    if (!fallback) this.#clearTimer();
    const round: Round = { tried: [] };
    this.#round = round;
    this.#roundDone = this.#walk(round, order, fallback).finally(() => {
      this.#round = undefined;
      this.#roundDone = undefined;
      if (this.#roundAgain) {
        this.#roundAgain = false;
        this.#announceNow();
      }
    });
  }

  /**
   * Tries the trackers of `order` one after another, the next as soon as the
   * newest has failed or been silent for NEXT_TRACKER_AFTER_MS, until one
   * answers or all have failed.
   */
  async #walk(round: Round, order: string[], fallback: boolean): Promise<void> {
    this.#lastAnnounceAt = this.#clock.now();
    let next = 0;
    while (!round.winner && !this.#stopped) {
      const running = round.tried.flatMap((url) =>
        this.#attempts.get(url) ?? []
      );
      const newest = this.#attempts.get(round.tried.at(-1) ?? "");
      if (next < order.length) {
        const waitMs = newest
          ? newest.startedAt + this.#nextTrackerAfterMs - this.#clock.now()
          : 0;
        if (waitMs <= 0) {
          round.tried.push(order[next]);
          this.#attempt(order[next++]);
          continue;
        }
        await this.#anySettled(round, running, waitMs);
      } else if (running.length > 0) {
        await this.#anySettled(round, running, Infinity);
      } else {
        if (!fallback) this.#allFailed();
        return;
      }
    }
    if (!round.winner) return;
    // Those tried after the winner stand behind it in the BEP 12 order.
    const after = round.tried.slice(round.tried.indexOf(round.winner) + 1);
    for (const url of after) {
      const attempt = this.#attempts.get(url);
      if (attempt) this.#cancel(attempt);
    }
  }

  /** Resolves when one of `running` settles, after `waitMs`, or on stop. */
  async #anySettled(
    round: Round,
    running: Attempt[],
    waitMs: number,
  ): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    round.wake = resolve;
    const timer = Number.isFinite(waitMs)
      ? this.#clock.setTimer(resolve, waitMs)
      : undefined;
    for (const attempt of running) attempt.settled.then(resolve);
    await promise;
    this.#clock.clearTimer(timer);
    round.wake = undefined;
  }

  /** The announce in flight to `url`, or a new one. */
  #attempt(url: string): Attempt {
    const running = this.#attempts.get(url);
    if (running) return running;
    const request = this.#request(this.#eventFor(url));
    const controller = new AbortController();
    const attempt: Attempt = {
      url,
      startedAt: this.#clock.now(),
      controller,
      cancelled: false,
      settled: this.#announce(url, request, {
        timeoutMs: this.#opts.timeoutMs,
        udpMaxRetries: this.#opts.udpMaxRetries,
        trackerId: this.#trackerIds.get(url),
        udpConnections: this.#udpConnections,
        signal: controller.signal,
      }).then(
        (response) => this.#answered(attempt, request, response),
        (e) => {
          if (!attempt.cancelled && !this.#stopped) this.#trackerFailed(url, e);
        },
      ).finally(() => this.#attempts.delete(url)),
    };
    this.#attempts.set(url, attempt);
    return attempt;
  }

  #cancel(attempt: Attempt): void {
    attempt.cancelled = true;
    attempt.controller.abort();
  }

  #eventFor(url: string): AnnounceEvent {
    if (!this.#started.has(url)) return "started";
    return this.#completed === "pending" ? "completed" : "none";
  }

  /**
   * A tracker's reply: its peers are used, whether or not it ends the round.
   * One listing peers none of which can be dialled is a failure for the tier
   * walk, though the tracker did take the announce.
   */
  #answered(
    attempt: Attempt,
    request: AnnounceRequest,
    response: AnnounceResponse,
  ): void {
    const url = attempt.url;
    if (attempt.cancelled || this.#stopped) return;
    if (response.trackerId !== undefined) {
      this.#trackerIds.set(url, response.trackerId);
    }
    this.#started.add(url);
    // "started" with left=0 tells a new tracker as much as "completed" would.
    const toldComplete = request.event === "completed" ||
      (request.event === "started" && request.left === 0);
    if (toldComplete && this.#completed === "pending") this.#completed = "sent";
    const log = this.#opts.log;
    if (response.warning && this.#warnings.get(url) !== response.warning) {
      log(`tracker ${url} warns: ${response.warning}`);
      this.#warnings.set(url, response.warning);
    }
    if (response.listedPeers > 0 && response.peers.length === 0) {
      this.#trackerFailed(
        url,
        `tracker ${url}: none of the ${response.listedPeers} peers it listed can be dialled`,
      );
      return;
    }
    if (this.#failing.delete(url)) log(`tracker ${url} answers again`);
    if (
      response.listedPeers > peerLimit(request.numWant) &&
      !this.#flooding.has(url)
    ) {
      this.#flooding.add(url);
      log(
        `tracker ${url} listed ${response.listedPeers} peers for numwant ${request.numWant}; using ${response.peers.length} of them`,
      );
    }
    // BEP 12: a tracker that answered moves to the front of its tier.
    const tier = this.#tiers.find((t) => t.includes(url))!;
    tier.splice(tier.indexOf(url), 1);
    tier.unshift(url);
    const round = this.#round;
    if (round && !round.winner && round.tried.includes(url)) {
      round.winner = url;
      this.#roundWon(url, response);
      round.wake?.();
    }
    this.#opts.onPeers(response.peers, url);
  }

  #roundWon(url: string, response: AnnounceResponse): void {
    this.#failedRounds = 0;
    this.#interval = response.interval;
    this.#minInterval = response.minInterval ?? 0;
    const seconds = Math.max(
      this.#interval,
      this.#minInterval,
      this.#opts.minReannounceSeconds,
    );
    this.#setTimer(this.#lastAnnounceAt + seconds * 1000);
    this.#unreached = response.peers.length === 0 ? undefined : {
      url,
      keys: new Set(response.peers.map(peerKey)),
      count: response.peers.length,
    };
  }

  /** Logs a tracker's failure once, until it answers again. */
  #trackerFailed(url: string, e: unknown): void {
    if (this.#failing.has(url)) return;
    this.#failing.add(url);
    this.#opts.log(errorText(e));
  }

  /** A round is looking for a tracker that answers. */
  get #searching(): boolean {
    return this.#round !== undefined && this.#round.winner === undefined;
  }

  /** The peers `url` gave were all unreachable: the trackers after it are tried. */
  #fallBackFrom(url: string, count: number): void {
    if (this.#stopped) return;
    const order = this.#tiers.flat();
    const rest = order.slice(order.indexOf(url) + 1);
    this.#opts.log(
      `tracker ${url}: none of the ${count} peers it gave could be reached; ${
        rest.length > 0 ? "trying the next tracker" : "no other tracker to try"
      }`,
    );
    if (rest.length > 0) this.#announceNow(rest, true);
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
    this.#setTimer(this.#clock.now() + seconds * 1000);
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

  /** Announces at `at` (a clock time). */
  #setTimer(at: number): void {
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#announceNow();
    }, at - this.#clock.now());
  }

  #clearTimer(): void {
    this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }
}

function peerKey(peer: PeerAddress): string {
  return `${peer.host}|${peer.port}`;
}

function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
