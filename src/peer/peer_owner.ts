// What a peer connection is given by its owner (the torrent): the owner's
// side of the conversation, told what the peer did and asked what to do,
// and the connection's options.

import type { Bandwidth } from "../swarm/bandwidth.ts";
import type { PeerAddress } from "../net/address.ts";
import type { PeerConnection } from "./connection.ts";
import type { CloseCause } from "./faults.ts";
import type { BlockSource } from "./upload_server.ts";

/** What a connection reports to, and asks of, its torrent (which serves its blocks too). */
export interface PeerOwner extends BlockSource {
  /** The peer's piece set changed: a bitfield (index -1) or one `have`. */
  peerHasChanged(peer: PeerConnection, index: number): void;
  /**
   * A block arrived. The owner calls blockTaken() when it takes the block
   * into a piece; otherwise it is wasted. Throws PeerViolation when the
   * block was never asked for.
   */
  blockArrived(
    peer: PeerConnection,
    index: number,
    begin: number,
    data: Uint8Array,
  ): void;
  /** BEP 6: the peer refused one of our requests. */
  blockRejected(
    peer: PeerConnection,
    index: number,
    begin: number,
    length: number,
  ): void;
  /** The peer may take more requests: ask the picker and send them. */
  fillPipeline(peer: PeerConnection): void;
  /** Outstanding requests were dropped (choke, snub): give them back. */
  requestsLost(peer: PeerConnection, blockIds: Iterable<number>): void;
  /** The peer turned interested in us (the choker may unchoke it at once). */
  peerInterested(peer: PeerConnection): void;
  /** BEP 11: addresses the peer says it is connected to. */
  pexReceived(peer: PeerConnection, added: PeerAddress[]): void;
  /** BEP 5: the peer runs a DHT node on this UDP port. */
  dhtNodeLearned(peer: PeerConnection, port: number): void;
  /** Our own code failed while handling the peer (a bug, not the peer's fault). */
  internalError(peer: PeerConnection, error: unknown): void;
  closed(peer: PeerConnection, reason: string, cause: CloseCause): void;
}

export interface ConnectionOptions {
  maxRequests: number;
  /** Seconds of the peer's rate to keep in flight as requests. */
  pipelineSeconds: number;
  /** BEP 6 was advertised by both sides. */
  fast: boolean;
  /** We dialled the peer, so its port is the one it listens on. */
  listenPortKnown: boolean;
  download: Bandwidth;
  upload: Bandwidth;
  /** Our BEP 10 handshake, when the peer speaks BEP 10. */
  extensionHandshake: Uint8Array | null;
  /** BEP 11: we offered ut_pex, so the peer's lists are taken. */
  pex: boolean;
  /** BEP 5: our DHT port, sent when the peer runs a DHT too; 0 for none. */
  dhtPort: number;
  /** The info dictionary, served through ut_metadata (BEP 9). */
  metadata: Uint8Array;
}
