// One score per peer address, from what it did for us and against us. It
// orders dialing (best first) and picks whom to drop when the connection
// limit is reached. Weights: speed counts most, each failed piece or
// protocol violation costs as much as a 32x faster rate gains, a snub or a
// failed dial a little, a slow round trip a little.

import { BLOCK_SIZE } from "../pieces/geometry.ts";

export interface PeerRating {
  downloaded: number;
  uploaded: number;
  /** Best download rate seen, bytes a second. */
  peakRate: number;
  /** Smoothed request round trip, ms (0: not measured). */
  rttMs: number;
  /** Pieces that failed their hash with this peer's blocks in them. */
  failedPieces: number;
  violations: number;
  snubs: number;
  failures: number;
  banned: boolean;
}

/** What one connection did: folded into its address's rating when it closes. */
export interface ConnectionFigures {
  downloaded: number;
  uploaded: number;
  peakRate: number;
  /** Its smoothed request round trip, ms (0: not measured). */
  rttMs: number;
  snubs: number;
}

export function newRating(): PeerRating {
  return {
    downloaded: 0,
    uploaded: 0,
    peakRate: 0,
    rttMs: 0,
    failedPieces: 0,
    violations: 0,
    snubs: 0,
    failures: 0,
    banned: false,
  };
}

/** Adds a closed connection's figures to its address's rating (round trips are averaged). */
export function foldConnection(r: PeerRating, f: ConnectionFigures): void {
  r.downloaded += f.downloaded;
  r.uploaded += f.uploaded;
  r.peakRate = Math.max(r.peakRate, f.peakRate);
  if (f.rttMs > 0) r.rttMs = r.rttMs === 0 ? f.rttMs : (r.rttMs + f.rttMs) / 2;
  r.snubs += f.snubs;
}

export function score(r: PeerRating): number {
  if (r.banned) return -Infinity;
  const speed = 10 * Math.log2(1 + r.peakRate / BLOCK_SIZE);
  const volume = 2 * Math.log2(1 + (r.downloaded + r.uploaded) / (1024 * 1024));
  const latency = Math.min(20, r.rttMs / 100);
  return speed + volume - latency - 50 * r.failedPieces - 50 * r.violations -
    5 * r.snubs - 3 * r.failures;
}
