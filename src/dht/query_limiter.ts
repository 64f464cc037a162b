// How many incoming queries we answer, without I/O (time is injected). Every answer is a
// datagram to an address we cannot verify (UDP source addresses can be forged), so an
// unbounded responder is a reflector for whoever forges them, and costs us CPU. Two token
// buckets decide: one per source IP, and one for all replies together. A query over
// either is dropped unanswered; the caller counts it.
//
// The per-IP buckets live in a bounded map, least recently used dropped first: an IP that
// comes back after being dropped starts with a full bucket, which the global budget
// bounds. Loopback is not exempt: a loopback test has many nodes behind one IP, and the
// burst is sized for that (see DEFAULT_QUERY_LIMITS).

export interface QueryLimits {
  /** Replies per second to one IP, and how many may go at once after a quiet spell. */
  perIpRate: number;
  perIpBurst: number;
  /** Replies per second to everyone together, and the burst. */
  globalRate: number;
  globalBurst: number;
  /** Source IPs remembered at once. */
  maxTrackedIps: number;
}

/**
 * libtorrent answers 5 queries a second per IP (dht_block_ratelimit). The burst of 20
 * covers a node's bootstrap (a handful of find_node at once) and a loopback test's several
 * libtorrent sessions sharing 127.0.0.1. 200 replies a second is some 80 KB/s of answers.
 */
export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  perIpRate: 5,
  perIpBurst: 20,
  globalRate: 200,
  globalBurst: 400,
  maxTrackedIps: 4096,
};

interface TokenBucket {
  tokens: number;
  at: number;
}

export class QueryLimiter {
  /** Insertion order is recency: a used entry is re-inserted at the end. */
  readonly #perIp = new Map<string, TokenBucket>();
  readonly #global: TokenBucket;

  constructor(
    readonly limits: QueryLimits = DEFAULT_QUERY_LIMITS,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#global = { tokens: limits.globalBurst, at: now() };
  }

  /** Whether a query from this IP may be answered now; takes a token from both buckets. */
  allow(ip: string): boolean {
    const now = this.now();
    let bucket = this.#perIp.get(ip);
    if (bucket) {
      this.#perIp.delete(ip);
    } else {
      bucket = { tokens: this.limits.perIpBurst, at: now };
      if (this.#perIp.size >= this.limits.maxTrackedIps) {
        this.#perIp.delete(this.#perIp.keys().next().value!);
      }
    }
    this.#perIp.set(ip, bucket);
    refill(bucket, now, this.limits.perIpRate, this.limits.perIpBurst);
    refill(this.#global, now, this.limits.globalRate, this.limits.globalBurst);
    if (bucket.tokens < 1 || this.#global.tokens < 1) return false;
    bucket.tokens--;
    this.#global.tokens--;
    return true;
  }

  get trackedIps(): number {
    return this.#perIp.size;
  }
}

function refill(
  bucket: TokenBucket,
  now: number,
  perSecond: number,
  burst: number,
): void {
  const elapsed = Math.max(0, now - bucket.at);
  bucket.tokens = Math.min(burst, bucket.tokens + elapsed * perSecond / 1000);
  bucket.at = now;
}
