// A scripted peer that offers a torrent's info dictionary through BEP 9
// ut_metadata but sends a corrupted copy (one byte changed, same size): the
// client must reject it by its SHA-1 and fetch the dictionary elsewhere. It
// has no pieces and never unchokes.

import {
  decodeHandshake,
  encodeHandshake,
  reservedWith,
} from "../../src/wire/handshake.ts";
import { parseExtensionHandshake } from "../../src/wire/extension.ts";
import { MessageId, OutBuffer } from "../../src/wire/messages.ts";
import { encode } from "../../src/bencode/encode.ts";
import {
  encodeMetadataData,
  parseMetadataMessage,
} from "../../src/wire/ut_metadata.ts";

/** The id this peer asks the client to use for ut_metadata. */
const LIAR_METADATA_ID = 3;

export interface MetadataLiar {
  port: number;
  /** Metadata pieces served so far (all of them wrong as a whole). */
  piecesServed: number;
  stop(): Promise<void>;
}

export function startMetadataLiar(
  infoHash: Uint8Array,
  infoBytes: Uint8Array,
): MetadataLiar {
  const wrong = infoBytes.slice();
  wrong[Math.floor(wrong.length / 2)] ^= 0xff;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const liar: MetadataLiar = {
    port: (listener.addr as Deno.NetAddr).port,
    piecesServed: 0,
    stop: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by the client */ }
      }
      await accepting;
    },
  };
  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      const input = new Uint8Array(1 << 20);
      let have = 0;
      const readAtLeast = async (n: number) => {
        while (have < n) {
          const got = await conn.read(input.subarray(have));
          if (got === null) throw new Error("closed");
          have += got;
        }
      };
      await readAtLeast(68);
      decodeHandshake(input); // throws unless it is a BitTorrent handshake
      const reserved = reservedWith(["extension"]);
      const out = new OutBuffer();
      out.extended(
        0,
        encode({
          m: { ut_metadata: LIAR_METADATA_ID },
          metadata_size: wrong.length,
          v: "metadata liar",
        }),
      );
      await write(
        conn,
        encodeHandshake({
          reserved,
          infoHash,
          peerId: crypto.getRandomValues(new Uint8Array(20)),
        }),
      );
      await write(conn, out.take());
      input.copyWithin(0, 68, have);
      have -= 68;
      let clientMetadataId = 0;
      for (;;) {
        await readAtLeast(4);
        const length = new DataView(input.buffer).getUint32(0);
        await readAtLeast(4 + length);
        const message = input.slice(4, 4 + length);
        input.copyWithin(0, 4 + length, have);
        have -= 4 + length;
        if (length < 2 || message[0] !== MessageId.Extended) continue;
        const payload = message.subarray(2);
        if (message[1] === 0) {
          clientMetadataId =
            parseExtensionHandshake(payload).messages.get("ut_metadata") ?? 0;
          continue;
        }
        if (message[1] !== LIAR_METADATA_ID || clientMetadataId === 0) continue;
        const request = parseMetadataMessage(payload);
        if (request.type !== "request") continue;
        const reply = new OutBuffer();
        reply.extended(
          clientMetadataId,
          encodeMetadataData(request.piece, wrong),
        );
        await write(conn, reply.take());
        liar.piecesServed++;
      }
    } catch {
      /* the client hung up, as it should */
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };
  const accepting = (async () => {
    const sessions: Promise<void>[] = [];
    try {
      for await (const conn of listener) sessions.push(serve(conn));
    } catch { /* listener closed */ }
    await Promise.allSettled(sessions);
  })();
  return liar;
}

async function write(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}
