// A peer connection while a magnet link's info dictionary is unknown (BEP 9):
// it sends our extended handshake (BEP 10), waits for the peer's, and asks
// for metadata pieces when its owner says so. Without the dictionary the
// piece count is unknown, so what the peer says of its pieces and of choking
// is only recorded; once the dictionary is verified the connection is handed
// over, with that record and the bytes not yet parsed, to the torrent.

import { type CloseCause, isProtocolError } from "../peer/faults.ts";
import type { PeerStream } from "../net/transport.ts";
import type { OpenedPeer } from "../peer/handshake_io.ts";
import type { PriorPeerState, TakenOverStream } from "../peer/prior_state.ts";
import { WriteLoop } from "../peer/write_loop.ts";
import type { PeerAddress } from "../net/address.ts";
import {
  EXTENDED_HANDSHAKE_ID,
  type ExtensionHandshake,
  LOCAL_EXTENSION_IDS,
  mergeExtensionHandshake,
  parseExtensionHandshake,
} from "../wire/extension.ts";
import type { Handshake } from "../wire/handshake.ts";
import { MessageId, type OutBuffer } from "../wire/messages.ts";
import { type WireHandler, WireReader } from "../wire/reader.ts";
import {
  encodeMetadataReject,
  encodeMetadataRequest,
  parseMetadataMessage,
} from "../wire/ut_metadata.ts";
import { parsePex } from "../wire/ut_pex.ts";

export interface MetadataPeerOwner {
  /** The peer's extended handshake arrived. */
  extensionsKnown(peer: MetadataPeer, remote: ExtensionHandshake): void;
  metadataPiece(
    peer: MetadataPeer,
    piece: number,
    totalSize: number,
    data: Uint8Array,
  ): void;
  metadataRejected(peer: MetadataPeer, piece: number): void;
  pexPeers(peer: MetadataPeer, added: PeerAddress[]): void;
  dhtNodeLearned(peer: MetadataPeer, port: number): void;
  /** Our own code failed while handling the peer (a bug, not the peer's fault). */
  internalError(peer: MetadataPeer, error: unknown): void;
  closed(peer: MetadataPeer, reason: string, cause: CloseCause): void;
}

/** A live connection leaving the metadata fetch for the torrent. */
export interface HandedOverPeer extends TakenOverStream {
  opened: OpenedPeer;
  host: string;
  port: number;
  /** Where the fetch learnt of it ("incoming" when it dialled us). */
  source: string;
}

/** A bitfield of a huge torrent is the largest message before the dictionary is known. */
const MAX_MESSAGE = 2 * 1024 * 1024;
const READ_BUFFER = 64 * 1024;
/** `have`s and allowed-fast indices kept at most before the piece count is known. */
const MAX_RECORDED_HAVES = 1 << 16;
const MAX_RECORDED_FAST = 64;

let nextNumber = 0;

export class MetadataPeer implements WireHandler {
  readonly num = nextNumber++;
  readonly openedAt = performance.now();
  remote: ExtensionHandshake | null = null;
  /** Pieces asked of this peer and not answered yet. */
  readonly asked = new Set<number>();
  /** When the current source last delivered (or was first asked). */
  progressAt = 0;
  closedReason: string | null = null;
  private readonly state: PriorPeerState = {
    bitfield: null,
    haveAll: false,
    haveNone: false,
    haves: [],
    allowedFast: [],
    unchoked: false,
    interested: false,
    extensions: null,
    sentHaveNone: false,
    sentDhtPort: false,
  };
  private reader = new WireReader(this, {
    maxMessageLength: MAX_MESSAGE,
    bufferSize: READ_BUFFER,
  });
  private writer: WriteLoop;
  private out: OutBuffer;
  private gotPort = false;
  private handover: ((rest: Uint8Array | null) => void) | null = null;

  constructor(
    readonly opened: OpenedPeer,
    readonly host: string,
    readonly port: number,
    private owner: MetadataPeerOwner,
    private options: { pex: boolean; dhtPort: number },
  ) {
    this.writer = new WriteLoop(opened.conn, {
      written: () => {},
      failed: (e) =>
        this.close(`write failed: ${e instanceof Error ? e.message : e}`),
    });
    this.out = this.writer.out;
  }

  get conn(): PeerStream {
    return this.opened.conn;
  }

  get handshake(): Handshake {
    return this.opened.remote;
  }

  /** Sends our greeting and reads until the connection closes or is handed over; never throws. */
  async run(extensionHandshake: Uint8Array, fast: boolean): Promise<void> {
    try {
      // BEP 6: with the fast extension a have-none stands in for the bitfield,
      // and comes first.
      if (fast) {
        this.out.simple(MessageId.HaveNone);
        this.state.sentHaveNone = true;
      }
      this.out.extended(EXTENDED_HANDSHAKE_ID, extensionHandshake);
      if (this.options.dhtPort > 0) {
        this.out.dhtPort(this.options.dhtPort);
        this.state.sentDhtPort = true;
      }
      this.writer.flush();
      this.reader.feed(this.opened.leftover);
      while (this.closedReason === null) {
        let n: number | null;
        try {
          n = await this.conn.read(this.reader.space());
        } catch (e) {
          if (this.handover) return this.handover(null);
          return this.close(
            `read failed: ${e instanceof Error ? e.message : e}`,
          );
        }
        if (this.handover) {
          // The read was in flight at the handover: its bytes are the torrent's.
          if (n !== null) this.reader.commit(n);
          return this.handover(n === null ? null : this.reader.takeUnparsed());
        }
        if (n === null) return this.close("peer closed the connection");
        this.reader.commit(n);
      }
    } catch (e) {
      if (this.handover) return this.handover(null);
      if (isProtocolError(e)) return this.close(e.message, "violation");
      // Anything else is a bug of ours: reported, and not held against the peer.
      this.owner.internalError(this, e);
      this.close(
        `internal error: ${e instanceof Error ? e.message : e}`,
        "internal",
      );
    }
  }

  get supportsMetadata(): boolean {
    return (this.remote?.messages.get("ut_metadata") ?? 0) > 0 &&
      this.remote?.metadataSize !== null;
  }

  requestPiece(piece: number): void {
    const id = this.remote?.messages.get("ut_metadata") ?? 0;
    if (id === 0) return;
    if (this.asked.size === 0) this.progressAt = performance.now();
    this.asked.add(piece);
    this.out.extended(id, encodeMetadataRequest(piece));
    this.writer.flush();
  }

  /**
   * Stops reading at the next message boundary and gives the connection
   * away, once our pending writes are out. Null when it is closed already.
   */
  async handOver(source: string): Promise<HandedOverPeer | null> {
    if (this.closedReason !== null) return null;
    this.reader.pause();
    let resolveRest!: (rest: Uint8Array | null) => void;
    const rest = new Promise<Uint8Array | null>((r) => resolveRest = r);
    this.handover = resolveRest;
    await this.writer.finish();
    if (this.closedReason !== null) return null;
    this.state.extensions = this.remote;
    return {
      opened: { ...this.opened, leftover: new Uint8Array(0) },
      host: this.host,
      port: this.port,
      source,
      prior: this.state,
      rest,
    };
  }

  close(reason: string, cause: CloseCause = "ended"): void {
    if (this.closedReason !== null || this.handover) return;
    this.closedReason = reason;
    this.writer.stop();
    this.conn.close();
    this.owner.closed(this, reason, cause);
  }

  // --- WireHandler: extension messages are acted on, the rest recorded ---

  extended(id: number, payload: Uint8Array): void {
    if (id === EXTENDED_HANDSHAKE_ID) {
      this.remote = mergeExtensionHandshake(
        this.remote,
        parseExtensionHandshake(payload),
      );
      this.owner.extensionsKnown(this, this.remote);
      return;
    }
    if (id === LOCAL_EXTENSION_IDS.ut_metadata) {
      const message = parseMetadataMessage(payload);
      if (message.type === "request") {
        // We have nothing to serve yet (BEP 9: reject).
        const theirs = this.remote?.messages.get("ut_metadata") ?? 0;
        if (theirs > 0) {
          this.out.extended(theirs, encodeMetadataReject(message.piece));
          this.writer.flush();
        }
        return;
      }
      if (!this.asked.delete(message.piece)) return;
      if (message.type === "data") {
        this.progressAt = performance.now();
        this.owner.metadataPiece(
          this,
          message.piece,
          message.totalSize,
          message.data,
        );
      } else this.owner.metadataRejected(this, message.piece);
      return;
    }
    if (id === LOCAL_EXTENSION_IDS.ut_pex && this.options.pex) {
      this.owner.pexPeers(this, parsePex(payload).added);
    }
  }

  bitfield(bits: Uint8Array): void {
    this.state.bitfield = bits.slice();
  }

  haveAll(): void {
    this.state.haveAll = true;
  }

  haveNone(): void {
    this.state.haveNone = true;
  }

  have(index: number): void {
    if (this.state.haves.length < MAX_RECORDED_HAVES) {
      this.state.haves.push(index);
    }
  }

  allowedFast(index: number): void {
    if (this.state.allowedFast.length < MAX_RECORDED_FAST) {
      this.state.allowedFast.push(index);
    }
  }

  choke(): void {
    this.state.unchoked = false;
  }

  unchoke(): void {
    this.state.unchoked = true;
  }

  interested(): void {
    this.state.interested = true;
  }

  notInterested(): void {
    this.state.interested = false;
  }

  dhtPort(port: number): void {
    // One per connection: a flood of them would only flood the DHT with pings.
    if (this.gotPort || port === 0) return;
    this.gotPort = true;
    this.owner.dhtNodeLearned(this, port);
  }

  keepAlive(): void {}
  // We choke and hold nothing: requests, blocks and suggestions do not apply yet.
  request(): void {}
  piece(): void {}
  cancel(): void {}
  suggest(): void {}
  reject(): void {}
}
