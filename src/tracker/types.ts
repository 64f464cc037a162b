// Types shared by the HTTP (BEP 3) and UDP (BEP 15) announce clients and the
// BEP 12 announcer.

import type { PeerAddress } from "../net/address.ts";

/** BEP 3: "started", "completed" and "stopped"; "none" for a regular announce. */
export type AnnounceEvent = "started" | "completed" | "stopped" | "none";

export interface AnnounceRequest {
  infoHash: Uint8Array; // 20 bytes
  peerId: Uint8Array; // 20 bytes
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  event: AnnounceEvent;
  numWant: number;
  /** Random uint32 chosen once per session, so the tracker knows us when our IP changes. */
  key: number;
}

export interface AnnounceResponse {
  /** The dialable peers listed, at most a few times numwant (peer_sample.ts). */
  peers: PeerAddress[];
  /** Peers the reply listed, before undialable ones were dropped and the rest sampled. */
  listedPeers: number;
  /** Seconds until the next regular announce. */
  interval: number;
  /** Seconds the tracker wants at least between announces. */
  minInterval?: number;
  warning?: string;
  /** Opaque id to send back as `trackerid` (HTTP only); bytes as latin1. */
  trackerId?: string;
  /** Seeders. */
  complete?: number;
  /** Leechers. */
  incomplete?: number;
}

/** An announce that failed; the message is one line and names the tracker URL. */
export class TrackerError extends Error {
  override name = "TrackerError";
}
