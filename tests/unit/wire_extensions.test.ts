// BEP 10 extended handshake, BEP 9 ut_metadata and BEP 11 ut_pex codecs, the
// BEP 9 metadata assembly, and the reader's pause for a connection handover.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { BencodeError } from "../../src/bencode/types.ts";
import { MetadataAssembly } from "../../src/metadata/assembly.ts";
import {
  encodeExtensionHandshake,
  mergeExtensionHandshake,
  parseExtensionHandshake,
} from "../../src/wire/extension.ts";
import { type WireHandler, WireReader } from "../../src/wire/reader.ts";
import { MessageId, OutBuffer } from "../../src/wire/messages.ts";
import {
  encodeMetadataData,
  encodeMetadataReject,
  encodeMetadataRequest,
  METADATA_PIECE_SIZE,
  parseMetadataMessage,
} from "../../src/wire/ut_metadata.ts";
import { encodePex, parsePex } from "../../src/wire/ut_pex.ts";

const text = (s: string) => new TextEncoder().encode(s);
const latin1 = (b: Uint8Array) => new TextDecoder("latin1").decode(b);

Deno.test("extended handshake: ours is canonical bencode with m, p, v, reqq, metadata_size", () => {
  const bytes = encodeExtensionHandshake({
    extensions: ["ut_metadata", "ut_pex"],
    listenPort: 6881,
    client: "btclient 0.1.0",
    maxRequests: 500,
    metadataSize: 31235,
  });
  assert.equal(
    latin1(bytes),
    "d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e1:v14:btclient 0.1.0e",
  );
});

Deno.test("extended handshake: a libtorrent-style handshake is read; odd fields count as absent", () => {
  const hs = parseExtensionHandshake(
    text(
      "d1:md11:lt_donthavei7e11:upload_onlyi0e11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei5000e1:pi50321e4:reqqi500e1:v18:libtorrent 2.0.8.06:yourip4:\x7f\x00\x00\x01e",
    ),
  );
  assert.equal(hs.messages.get("ut_metadata"), 3);
  assert.equal(hs.messages.get("ut_pex"), 1);
  assert.equal(hs.listenPort, 50321);
  assert.equal(hs.maxRequests, 500);
  assert.equal(hs.metadataSize, 5000);
  assert.equal(hs.client, "libtorrent 2.0.8.0");
  const odd = parseExtensionHandshake(
    text("d1:m3:bad13:metadata_sizei-5e1:pi70000e4:reqq1:xe"),
  );
  assert.equal(odd.messages.size, 0);
  assert.equal(odd.listenPort, null);
  assert.equal(odd.maxRequests, null);
  assert.equal(odd.metadataSize, null);
  assert.throws(() => parseExtensionHandshake(text("d1:m")), BencodeError);
  assert.throws(() => parseExtensionHandshake(text("li1ee")), BencodeError);
});

Deno.test("extended message framing: <len><20><id><payload>", () => {
  const out = new OutBuffer();
  out.extended(3, text("de"));
  assert.deepEqual(out.take(), new Uint8Array([0, 0, 0, 4, 20, 3, 0x64, 0x65]));
  out.dhtPort(6881);
  assert.deepEqual(
    out.take(),
    new Uint8Array([0, 0, 0, 3, MessageId.Port, 0x1a, 0xe1]),
  );
});

Deno.test("ut_metadata: request, reject and data round-trip; the data trails the dictionary", () => {
  assert.equal(latin1(encodeMetadataRequest(2)), "d8:msg_typei0e5:piecei2ee");
  assert.deepEqual(parseMetadataMessage(encodeMetadataRequest(2)), {
    type: "request",
    piece: 2,
  });
  assert.deepEqual(parseMetadataMessage(encodeMetadataReject(1)), {
    type: "reject",
    piece: 1,
  });
  const info = Uint8Array.from(
    { length: METADATA_PIECE_SIZE + 100 },
    (_, i) => i & 0xff,
  );
  const last = parseMetadataMessage(encodeMetadataData(1, info));
  assert.equal(last.type, "data");
  if (last.type !== "data") return;
  assert.equal(last.totalSize, info.length);
  assert.deepEqual(last.data, info.subarray(METADATA_PIECE_SIZE));
  assert.throws(
    () => parseMetadataMessage(text("d8:msg_typei9e5:piecei0ee")),
    BencodeError,
  );
  assert.throws(
    () => parseMetadataMessage(text("d8:msg_typei1e5:piecei0ee")),
    BencodeError,
  );
  assert.throws(
    () => parseMetadataMessage(text("d8:msg_typei0ee")),
    BencodeError,
  );
  assert.throws(() => parseMetadataMessage(text("i5e")), BencodeError);
});

Deno.test("ut_pex: IPv4 and IPv6 peers with flags round-trip; partial entries are refused", () => {
  const payload = encodePex(
    [
      { host: "10.1.2.3", port: 6881, flags: 0x12 },
      { host: "2001:db8::1", port: 51413, flags: 0 },
    ],
    [{ host: "192.168.0.9", port: 1 }],
  );
  assert.ok(
    latin1(payload).startsWith(
      "d5:added6:\x0a\x01\x02\x03\x1a\xe17:added.f1:\x12",
    ),
  );
  assert.deepEqual(parsePex(payload), {
    added: [{ host: "10.1.2.3", port: 6881 }, {
      host: "2001:db8::1",
      port: 51413,
    }],
    dropped: [{ host: "192.168.0.9", port: 1 }],
  });
  assert.throws(() => parsePex(text("d5:added5:abcdee")), BencodeError);
  assert.throws(() => parsePex(text("d5:addedi1ee")), BencodeError);
  assert.deepEqual(parsePex(text("de")), { added: [], dropped: [] });
});

Deno.test("metadata assembly: pieces in any order verify against the info-hash", () => {
  const info = crypto.getRandomValues(
    new Uint8Array(2 * METADATA_PIECE_SIZE + 7),
  );
  const hash = new Uint8Array(createHash("sha1").update(info).digest());
  const a = new MetadataAssembly(hash, info.length);
  assert.equal(a.pieceCount, 3);
  const piece = (i: number) =>
    info.subarray(
      i * METADATA_PIECE_SIZE,
      Math.min(info.length, (i + 1) * METADATA_PIECE_SIZE),
    );
  assert.equal(a.receive(2, info.length, piece(2), 1), "stored");
  assert.equal(a.receive(2, info.length, piece(2), 1), "ignored");
  assert.equal(
    a.receive(0, info.length, piece(1).subarray(1), 1),
    "ignored",
    "short piece",
  );
  assert.equal(
    a.receive(0, info.length + 1, piece(0), 1),
    "ignored",
    "other total size",
  );
  assert.equal(a.receive(0, info.length, piece(0), 1), "stored");
  assert.deepEqual(a.missing(), [1]);
  assert.equal(a.receive(1, info.length, piece(1), 2), "complete");
  assert.deepEqual(a.bytes, info);
  assert.deepEqual([...a.senders], [1, 2]);
});

Deno.test("metadata assembly: a corrupt dictionary is detected and the attempt starts over", () => {
  const info = crypto.getRandomValues(new Uint8Array(METADATA_PIECE_SIZE + 1));
  const hash = new Uint8Array(createHash("sha1").update(info).digest());
  const a = new MetadataAssembly(hash, info.length);
  const bad = info.slice();
  bad[5] ^= 1;
  assert.equal(
    a.receive(0, info.length, bad.subarray(0, METADATA_PIECE_SIZE), 7),
    "stored",
  );
  assert.equal(
    a.receive(1, info.length, bad.subarray(METADATA_PIECE_SIZE), 7),
    "corrupt",
  );
  assert.deepEqual([...a.senders], [7]);
  a.reset();
  assert.deepEqual(a.missing(), [0, 1]);
  assert.equal(
    a.receive(0, info.length, info.subarray(0, METADATA_PIECE_SIZE), 8),
    "stored",
  );
  assert.equal(
    a.receive(1, info.length, info.subarray(METADATA_PIECE_SIZE), 8),
    "complete",
  );
  assert.throws(() => new MetadataAssembly(hash, 0), RangeError);
  assert.throws(() => new MetadataAssembly(hash, 5 * 1024 * 1024), RangeError);
});

Deno.test("extended handshake: a later one updates the earlier (BEP 10); id 0 switches an extension off", () => {
  const first = parseExtensionHandshake(
    text(
      "d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei99e1:pi7000e4:reqqi250ee",
    ),
  );
  const merged = mergeExtensionHandshake(
    first,
    parseExtensionHandshake(text("d1:md6:ut_pexi0ee4:reqqi10ee")),
  );
  assert.deepEqual([...merged.messages], [["ut_metadata", 3]]);
  assert.equal(merged.maxRequests, 10);
  assert.equal(merged.listenPort, 7000);
  assert.equal(merged.metadataSize, 99);
});

Deno.test("wire reader: pause() stops dispatch mid-buffer; takeUnparsed() gives the rest", () => {
  const seen: number[] = [];
  const handler = new Proxy({}, {
    get: (_t, name) => (index: number) => {
      if (name === "have") {
        seen.push(index);
        if (index === 2) reader.pause();
      }
    },
  }) as unknown as WireHandler;
  const reader = new WireReader(handler, {
    maxMessageLength: 1024,
    bufferSize: 64,
  });
  const out = new OutBuffer();
  for (const i of [1, 2, 3, 4]) out.have(i);
  reader.feed(out.take());
  assert.deepEqual(seen, [1, 2]);
  const rest = reader.takeUnparsed();
  assert.equal(rest.length, 18);
  assert.deepEqual([...rest.subarray(0, 9)], [0, 0, 0, 5, 4, 0, 0, 0, 3]);
});
