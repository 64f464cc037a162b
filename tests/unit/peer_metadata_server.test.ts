// The BEP 9 serving side: pieces of our info dictionary go out under the
// peer's ut_metadata id, an index past the end is rejected, and one
// connection gets twice the piece count of sends at most, and none while
// the send buffer is over the watermark.

import assert from "node:assert/strict";
import { MetadataServer } from "../../src/peer/metadata_server.ts";
import { SEND_WATERMARK } from "../../src/peer/upload_server.ts";
import { OutBuffer } from "../../src/wire/messages.ts";
import {
  METADATA_PIECE_SIZE,
  type MetadataMessage,
  parseMetadataMessage,
} from "../../src/wire/ut_metadata.ts";
import { decodeMessages } from "../helpers/fake_conn.ts";

/** The ut_metadata messages in `out`, each with the extended id it went under. */
function answers(out: OutBuffer): { id: number; message: MetadataMessage }[] {
  return decodeMessages(out.take()).map(([name, id, payload]) => {
    assert.equal(name, "extended");
    return {
      id: id as number,
      message: parseMetadataMessage(payload as Uint8Array),
    };
  });
}

/** A stand-in info dictionary of 2.5 metadata pieces. */
const METADATA = new Uint8Array(METADATA_PIECE_SIZE * 2.5).map((_, i) => i);

Deno.test("metadata server: each piece is sent under the peer's id, with the total size; a piece past the end is rejected", () => {
  const out = new OutBuffer();
  const server = new MetadataServer(METADATA, out);
  assert.equal(server.answer(2, 7), true);
  assert.equal(server.answer(3, 7), false);
  const [data, reject] = answers(out);
  assert.equal(data.id, 7);
  assert.deepEqual(
    data.message,
    {
      type: "data",
      piece: 2,
      totalSize: METADATA.length,
      data: METADATA.subarray(2 * METADATA_PIECE_SIZE),
    },
  );
  assert.deepEqual(reject, { id: 7, message: { type: "reject", piece: 3 } });
});

Deno.test("metadata server: a connection gets twice the piece count of sends, then rejects", () => {
  const out = new OutBuffer();
  const server = new MetadataServer(METADATA, out);
  const results = [];
  for (let i = 0; i < 7; i++) results.push(server.answer(i % 3, 2));
  out.take();
  assert.deepEqual(results, [true, true, true, true, true, true, false]);
  assert.equal(server.answer(0, 2), false);
  assert.deepEqual(answers(out), [{
    id: 2,
    message: { type: "reject", piece: 0 },
  }]);
});

Deno.test("metadata server: nothing is sent while the send buffer is over the watermark", () => {
  const out = new OutBuffer();
  const server = new MetadataServer(METADATA, out);
  out.pieceSlot(0, 0, SEND_WATERMARK);
  assert.equal(server.answer(0, 2), false);
  out.take();
  assert.equal(
    server.answer(0, 2),
    true,
    "room again: the refusal cost no send",
  );
});
