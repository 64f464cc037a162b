// Announce to one tracker URL, whatever its scheme: http(s) per BEP 3, udp per
// BEP 15.

import { announceHttp } from "./http.ts";
import { announceUdp, type UdpConnectionCache } from "./udp.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
} from "./types.ts";

export interface TrackerAnnounceOptions {
  timeoutMs: number;
  udpMaxRetries: number;
  signal?: AbortSignal;
  trackerId?: string;
  udpConnections?: UdpConnectionCache;
}

export function announceToTracker(
  url: string,
  req: AnnounceRequest,
  opts: TrackerAnnounceOptions,
): Promise<AnnounceResponse> {
  const scheme = url.slice(0, url.indexOf(":") + 1).toLowerCase();
  if (scheme === "http:" || scheme === "https:") {
    return announceHttp(url, req, {
      timeoutMs: opts.timeoutMs,
      trackerId: opts.trackerId,
      signal: opts.signal,
    });
  }
  if (scheme === "udp:") {
    return announceUdp(url, req, {
      timeoutMs: opts.timeoutMs,
      maxRetries: opts.udpMaxRetries,
      signal: opts.signal,
      connections: opts.udpConnections,
    });
  }
  return Promise.reject(
    new TrackerError(
      `tracker ${url}: unsupported scheme (use http, https or udp)`,
    ),
  );
}
