// The download side of one torrent's connections: which peers we are
// interested in, what each is asked for (the picker decides), what an
// arriving block means, where requests go when a peer drops them, and what a
// finished piece's hash says (ban_rules.ts turns failures into bans).
// Writing a verified piece is the owner's. NOTES.md says who changes a
// connection's outstanding requests and a piece's requesters, and when.

import type { SwarmEvent } from "../swarm/events.ts";
import type { ActivePiece } from "./active_piece.ts";
import { type Ban, BanRules } from "./ban_rules.ts";
import type { Bitfield } from "./bitfield.ts";
import { BLOCK_SIZE } from "./geometry.ts";
import type { BlockRequest, PickerPeer, PiecePicker } from "./picker.ts";

/** A connection as the download side sees it (PeerConnection is one). */
export interface DownloadPeer extends PickerPeer {
  /** Names the connection in a piece's senders. */
  readonly num: number;
  readonly has: Bitfield;
  /** BEP 6: pieces the peer lets us fetch while it chokes us. */
  readonly fastPieces: Bitfield;
  readonly peerChoking: boolean;
  readonly amInterested: boolean;
  /** Requests it may be sent now (0 while we are not interested or it chokes us). */
  readonly pipelineRoom: number;
  setInterested(interested: boolean): void;
  /** Sends requests the picker chose (and put in `outstanding`). */
  sendRequests(requests: BlockRequest[]): void;
  /** Removes an outstanding request and sends `cancel`; nothing if it is not outstanding. */
  sendCancel(
    blockId: number,
    piece: number,
    begin: number,
    length: number,
  ): void;
  sendHave(index: number): void;
  /** One of its blocks went into a piece (its rate and rating count it). */
  blockTaken(length: number): void;
  close(reason: string): void;
}

export interface DownloadOptions<P extends DownloadPeer> {
  picker: PiecePicker;
  /** The torrent's SHA-1 piece hashes, 20 bytes each. */
  pieceHashes: Uint8Array;
  /** The live connections: endgame cancels and `have`s go to all of them. */
  peers: Iterable<P>;
  /** Writes a verified piece; false when it could not (the torrent stops). */
  store: (piece: ActivePiece) => boolean;
  /** Charges a sender of a failed piece; returns its failed pieces so far. */
  chargeFailure: (num: number) => number;
  ban: (ban: Ban) => void;
  /** Every piece is verified and written. */
  completed: () => void;
  /** A piece failed its hash check, for the engine's events. */
  onEvent: (event: SwarmEvent) => void;
}

export class Download<P extends DownloadPeer> {
  /** Payload bytes taken into pieces this run. */
  downloaded = 0;
  /** Payload bytes received and not taken: duplicates, unrequested or cancelled blocks (libtorrent's redundant bytes). */
  wasted = 0;
  /** Bytes of the pieces not yet verified. */
  bytesLeft = 0;
  private banRules = new BanRules();
  private requests: BlockRequest[] = [];
  private readonly picker: PiecePicker;

  constructor(private options: DownloadOptions<P>) {
    this.picker = options.picker;
    const geometry = this.picker.geometry;
    for (let i = 0; i < geometry.pieceCount; i++) {
      if (!this.have.has(i)) this.bytesLeft += geometry.pieceSize(i);
    }
  }

  get have(): Bitfield {
    return this.picker.have;
  }

  get complete(): boolean {
    return this.have.complete;
  }

  /** The peer's piece set changed: a bitfield (index -1) or one `have`. */
  peerHas(peer: P, index: number): void {
    if (index < 0) this.picker.addPeer(peer.has);
    else this.picker.peerHas(index);
    if (this.complete && peer.has.complete) {
      // Two seeds have nothing to trade.
      return peer.close("both sides are seeds");
    }
    if (!peer.amInterested && !this.complete) {
      const wanted = index < 0
        ? this.picker.interesting(peer.has)
        : !this.have.has(index);
      if (wanted) peer.setInterested(true);
    }
  }

  /** A block arrived; returns why it is a violation, or null. */
  blockArrived(
    peer: P,
    index: number,
    begin: number,
    data: Uint8Array,
  ): string | null {
    const geometry = this.picker.geometry;
    const block = geometry.blockAt(index, begin, data.length);
    if (block < 0) {
      return `sent block ${index}:${begin}+${data.length}, which does not exist`;
    }
    const id = geometry.blockId(index, block);
    const wasRequested = peer.outstanding.delete(id);
    const piece = this.picker.active.get(index);
    // As libtorrent does, only a block asked of this peer and still missing
    // is taken; the rest (a late answer to a cancelled request, an endgame
    // duplicate, a block nobody asked for) is wasted.
    if (!piece || !wasRequested || !piece.receive(block, data, peer.num)) {
      this.wasted += data.length;
      // Data for a piece nobody is fetching, never asked for, is a violation.
      return !piece && !wasRequested && !this.have.has(index)
        ? `sent piece ${index}, which was never requested`
        : null;
    }
    this.downloaded += data.length;
    peer.blockTaken(data.length);
    if (piece.requesters[block] > 1) this.cancelElsewhere(peer, piece, block);
    if (piece.complete) this.finishPiece(piece);
    return null;
  }

  /** BEP 6: the peer refused one of our requests. */
  blockRejected(peer: P, index: number, begin: number, length: number): void {
    const geometry = this.picker.geometry;
    const block = geometry.blockAt(index, begin, length);
    if (block < 0) return;
    const id = geometry.blockId(index, block);
    if (peer.outstanding.delete(id)) this.picker.release(id);
  }

  /** Asks the picker for as many requests as the peer has room for, and sends them. */
  fill(peer: P): void {
    const room = peer.pipelineRoom;
    if (room === 0 || this.complete) return;
    this.requests.length = 0;
    // BEP 6: while the peer chokes us, only its allowed-fast pieces may be asked for.
    const view: PickerPeer = peer.peerChoking
      ? {
        has: { has: (i) => peer.fastPieces.has(i) && peer.has.has(i) },
        outstanding: peer.outstanding,
      }
      : peer;
    this.picker.pick(view, room, this.requests);
    if (this.requests.length > 0) peer.sendRequests(this.requests);
  }

  /** Requests the peer dropped (choke, snub) go back to the picker. */
  requestsLost(blockIds: Iterable<number>): void {
    for (const id of blockIds) this.picker.release(id);
  }

  /** The peer's connection closed: its pieces and requests leave with it. */
  peerGone(peer: P): void {
    this.picker.removePeer(peer.has);
    this.requestsLost(peer.outstanding);
    peer.outstanding.clear();
  }

  /** Once a tick: interest ends when the peer has nothing we lack; its pipeline is topped up. */
  tick(peer: P): void {
    if (peer.amInterested && !this.picker.interesting(peer.has)) {
      peer.setInterested(false);
    }
    this.fill(peer);
  }

  /** Fills every connection's pipeline (requests went back to the picker). */
  fillAll(): void {
    for (const peer of this.options.peers) this.fill(peer);
  }

  private cancelElsewhere(from: P, piece: ActivePiece, block: number): void {
    const geometry = this.picker.geometry;
    const id = geometry.blockId(piece.index, block);
    const begin = block * BLOCK_SIZE;
    const length = geometry.blockSize(piece.index, block);
    for (const other of this.options.peers) {
      if (other !== from) other.sendCancel(id, piece.index, begin, length);
    }
  }

  private finishPiece(piece: ActivePiece): void {
    const index = piece.index;
    const hashes = this.options.pieceHashes;
    if (!piece.verify(hashes.subarray(index * 20, index * 20 + 20))) {
      this.options.onEvent({ type: "pieceFailed", piece: index });
      const bans = this.banRules.pieceFailed(piece, this.options.chargeFailure);
      for (const ban of bans) this.options.ban(ban);
      this.picker.failed(piece);
      return;
    }
    for (const ban of this.banRules.piecePassed(piece)) this.options.ban(ban);
    if (!this.options.store(piece)) return;
    this.picker.completed(piece);
    this.bytesLeft -= piece.size;
    for (const peer of this.options.peers) {
      if (!peer.has.has(index)) peer.sendHave(index);
    }
    if (this.complete) this.finishAll();
  }

  private finishAll(): void {
    for (const peer of [...this.options.peers]) {
      peer.setInterested(false);
      if (peer.has.complete) peer.close("both sides are seeds");
    }
    this.options.completed();
  }
}
