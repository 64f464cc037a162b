// A peer connection while a magnet link's info dictionary is unknown (BEP 9):
// it sends our extended handshake (BEP 10), waits for the peer's, and asks
// for metadata pieces when its owner says so. Without the dictionary the
// piece count is unknown, so the peer's bitfield and haves are not kept; the
// torrent dials its peers again once the dictionary is verified.

import { BencodeError } from "../bencode/types.ts";
import { writeAll } from "../peer/handshake_io.ts";
import type { PeerAddress } from "../tracker/types.ts";
import {
  EXTENDED_HANDSHAKE_ID,
  type ExtensionHandshake,
  LOCAL_EXTENSION_IDS,
  parseExtensionHandshake,
} from "../wire/extension.ts";
import { WireError } from "../wire/handshake.ts";
import { MessageId, OutBuffer } from "../wire/messages.ts";
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
  closed(peer: MetadataPeer, reason: string, violation: boolean): void;
}

/** A bitfield of a huge torrent is the largest message before the dictionary is known. */
const MAX_MESSAGE = 2 * 1024 * 1024;
const READ_BUFFER = 64 * 1024;

let nextNumber = 0;

export class MetadataPeer implements WireHandler {
  readonly num = nextNumber++;
  remote: ExtensionHandshake | null = null;
  /** Pieces asked of this peer and not answered yet. */
  readonly asked = new Set<number>();
  askedAt = 0;
  closedReason: string | null = null;
  private reader = new WireReader(this, {
    maxMessageLength: MAX_MESSAGE,
    bufferSize: READ_BUFFER,
  });
  private out = new OutBuffer();
  private writing = false;

  constructor(
    readonly conn: Deno.TcpConn,
    readonly host: string,
    readonly port: number,
    private owner: MetadataPeerOwner,
  ) {}

  /** Sends our greeting and reads until the connection closes; never throws. */
  async run(
    leftover: Uint8Array,
    extensionHandshake: Uint8Array,
    fast: boolean,
  ): Promise<void> {
    this.out.extended(EXTENDED_HANDSHAKE_ID, extensionHandshake);
    // BEP 6: with the fast extension a have-none stands in for the bitfield.
    if (fast) this.out.simple(MessageId.HaveNone);
    this.flush();
    try {
      if (leftover.length > 0) this.reader.feed(leftover);
      while (this.closedReason === null) {
        const n = await this.conn.read(this.reader.space());
        if (n === null) return this.close("peer closed the connection");
        this.reader.commit(n);
      }
    } catch (e) {
      if (e instanceof WireError || e instanceof BencodeError) {
        this.close(e.message, true);
      } else if (this.closedReason === null) {
        this.close(e instanceof Error ? e.message : String(e));
      }
    }
  }

  get supportsMetadata(): boolean {
    return (this.remote?.messages.get("ut_metadata") ?? 0) > 0 &&
      this.remote?.metadataSize !== null;
  }

  requestPiece(piece: number): void {
    const id = this.remote?.messages.get("ut_metadata") ?? 0;
    if (id === 0) return;
    this.asked.add(piece);
    this.askedAt = performance.now();
    this.out.extended(id, encodeMetadataRequest(piece));
    this.flush();
  }

  close(reason: string, violation = false): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    try {
      this.conn.close();
    } catch { /* already gone */ }
    this.owner.closed(this, reason, violation);
  }

  // --- WireHandler: only extension messages matter before the dictionary is known ---

  extended(id: number, payload: Uint8Array): void {
    if (id === EXTENDED_HANDSHAKE_ID) {
      this.remote = parseExtensionHandshake(payload);
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
          this.flush();
        }
        return;
      }
      if (!this.asked.delete(message.piece)) return;
      if (message.type === "data") {
        this.owner.metadataPiece(
          this,
          message.piece,
          message.totalSize,
          message.data,
        );
      } else this.owner.metadataRejected(this, message.piece);
      return;
    }
    if (id === LOCAL_EXTENSION_IDS.ut_pex) {
      this.owner.pexPeers(this, parsePex(payload).added);
    }
  }

  keepAlive(): void {}
  choke(): void {}
  unchoke(): void {}
  interested(): void {}
  notInterested(): void {}
  have(): void {}
  bitfield(): void {}
  request(): void {}
  piece(): void {}
  cancel(): void {}
  dhtPort(): void {}
  haveAll(): void {}
  haveNone(): void {}
  suggest(): void {}
  reject(): void {}
  allowedFast(): void {}

  private flush(): void {
    if (this.writing || this.out.length === 0 || this.closedReason !== null) {
      return;
    }
    this.writing = true;
    (async () => {
      while (this.out.length > 0 && this.closedReason === null) {
        await writeAll(this.conn, this.out.take());
      }
      this.writing = false;
    })().catch((e) =>
      this.close(`write failed: ${e instanceof Error ? e.message : e}`)
    );
  }
}
