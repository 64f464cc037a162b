// Opening a peer connection: dial or accept, exchange BEP 3 handshakes, and
// check the info-hash, all bounded by one timeout.

import { dialTcp } from "../net/tcp.ts";
import type { PeerStream } from "../net/transport.ts";
import {
  decodeHandshake,
  encodeHandshake,
  type Handshake,
  HANDSHAKE_LENGTH,
  WireError,
} from "../wire/handshake.ts";

export interface OpenedPeer {
  conn: PeerStream;
  remote: Handshake;
  /** Bytes that followed the handshake in the same reads. */
  leftover: Uint8Array;
}

/** The dialled peer's handshake named another torrent than ours. */
export class InfoHashMismatch extends WireError {
  override name = "InfoHashMismatch";
}

/** Dials host:port and handshakes for `ours.infoHash`. */
export async function dialPeer(
  host: string,
  port: number,
  ours: Handshake,
  timeoutMs: number,
): Promise<OpenedPeer> {
  const conn = await dialTcp(host, port, AbortSignal.timeout(timeoutMs));
  try {
    await conn.write(encodeHandshake(ours));
    const { remote, leftover } = await readHandshake(conn, timeoutMs);
    if (!sameBytes(remote.infoHash, ours.infoHash)) {
      throw new InfoHashMismatch("peer answered with another info-hash");
    }
    return { conn, remote, leftover };
  } catch (e) {
    conn.close();
    throw e;
  }
}

/** Reads the remote handshake; the stream is closed when it takes longer than timeoutMs. */
export async function readHandshake(
  conn: PeerStream,
  timeoutMs: number,
): Promise<{ remote: Handshake; leftover: Uint8Array }> {
  const buf = new Uint8Array(HANDSHAKE_LENGTH + 4096);
  let have = 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    while (have < HANDSHAKE_LENGTH) {
      const n = await conn.read(buf.subarray(have));
      if (n === null) {
        throw new WireError("peer closed the connection during the handshake");
      }
      have += n;
      // Fail fast on a non-BitTorrent greeting instead of waiting for 68 bytes.
      if (have >= 1 && buf[0] !== 19) {
        throw new WireError("peer did not send a BitTorrent handshake");
      }
    }
  } catch (e) {
    // Whatever the closed stream said (an end, a failed read), it was our timer.
    if (timedOut) throw new WireError("handshake timed out");
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return {
    remote: decodeHandshake(buf),
    leftover: buf.slice(HANDSHAKE_LENGTH, have),
  };
}

/** A peer id as a map key. */
export function peerIdKey(peerId: Uint8Array): string {
  return String.fromCharCode(...peerId);
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
