import assert from "node:assert/strict";
import {
  decodeHandshake,
  encodeHandshake,
  HANDSHAKE_LENGTH,
  WireError,
} from "../../src/wire/handshake.ts";
import { MessageId, OutBuffer } from "../../src/wire/messages.ts";
import { type WireHandler, WireReader } from "../../src/wire/reader.ts";

const PSTR = [...new TextEncoder().encode("BitTorrent protocol")];

function fill(n: number, start: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
}

Deno.test("handshake: encode is byte-exact (BEP 3)", () => {
  const reserved = new Uint8Array([0, 0, 0, 0, 0, 0x10, 0, 0x05]);
  const infoHash = fill(20, 100);
  const peerId = fill(20, 200);
  const out = encodeHandshake({ reserved, infoHash, peerId });
  assert.equal(HANDSHAKE_LENGTH, 68);
  assert.deepEqual(
    out,
    new Uint8Array([19, ...PSTR, ...reserved, ...infoHash, ...peerId]),
  );
});

Deno.test("handshake: decode returns copies of the fields", () => {
  const reserved = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const bytes = new Uint8Array([
    19,
    ...PSTR,
    ...reserved,
    ...fill(20, 7),
    ...fill(20, 77),
    0xaa, // extra bytes after the handshake are not its business
  ]);
  const h = decodeHandshake(bytes);
  assert.deepEqual(h.reserved, reserved);
  assert.deepEqual(h.infoHash, fill(20, 7));
  assert.deepEqual(h.peerId, fill(20, 77));
  bytes.fill(0);
  assert.deepEqual(
    h.infoHash,
    fill(20, 7),
    "decoded fields must not alias input",
  );
  // Round trip.
  assert.deepEqual(decodeHandshake(encodeHandshake(h)), h);
});

Deno.test("handshake: rejects non-BitTorrent bytes", () => {
  const good = encodeHandshake({
    reserved: new Uint8Array(8),
    infoHash: fill(20, 1),
    peerId: fill(20, 2),
  });
  assert.throws(() => decodeHandshake(good.subarray(0, 67)), WireError);
  assert.throws(() => decodeHandshake(good.subarray(0, 67)), /too short/);
  const http = new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: x\r\n\r\n".padEnd(68, "x"),
  );
  assert.throws(() => decodeHandshake(http), /not send a BitTorrent handshake/);
  const wrongLen = good.slice();
  wrongLen[0] = 18;
  assert.throws(() => decodeHandshake(wrongLen), WireError);
  for (const at of [1, 10, 19]) {
    const bad = good.slice();
    bad[at] ^= 0x20; // case change in the protocol string
    assert.throws(() => decodeHandshake(bad), WireError, `byte ${at}`);
  }
});

Deno.test("OutBuffer: each message is byte-exact (BEP 3, BEP 6)", () => {
  const cases: [string, (b: OutBuffer) => void, number[]][] = [
    ["keep-alive", (b) => b.keepAlive(), [0, 0, 0, 0]],
    ["choke", (b) => b.simple(MessageId.Choke), [0, 0, 0, 1, 0]],
    ["unchoke", (b) => b.simple(MessageId.Unchoke), [0, 0, 0, 1, 1]],
    ["interested", (b) => b.simple(MessageId.Interested), [0, 0, 0, 1, 2]],
    ["not interested", (b) => b.simple(MessageId.NotInterested), [
      0,
      0,
      0,
      1,
      3,
    ]],
    ["have all", (b) => b.simple(MessageId.HaveAll), [0, 0, 0, 1, 0x0e]],
    ["have none", (b) => b.simple(MessageId.HaveNone), [0, 0, 0, 1, 0x0f]],
    ["have", (b) => b.have(0x01020304), [0, 0, 0, 5, 4, 1, 2, 3, 4]],
    ["have max", (b) => b.have(0xffffffff), [
      0,
      0,
      0,
      5,
      4,
      255,
      255,
      255,
      255,
    ]],
    [
      "bitfield",
      (b) => b.bitfield(new Uint8Array([0b10100000, 0xff, 0x80])),
      [0, 0, 0, 4, 5, 0xa0, 0xff, 0x80],
    ],
    ["empty bitfield", (b) => b.bitfield(new Uint8Array(0)), [0, 0, 0, 1, 5]],
    [
      "request",
      (b) => b.blockMessage(MessageId.Request, 1, 0x4000, 0x4000),
      [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
    ],
    [
      "cancel",
      (b) => b.blockMessage(MessageId.Cancel, 0x0a0b0c0d, 0x10203040, 7),
      [
        0,
        0,
        0,
        13,
        8,
        0x0a,
        0x0b,
        0x0c,
        0x0d,
        0x10,
        0x20,
        0x30,
        0x40,
        0,
        0,
        0,
        7,
      ],
    ],
    [
      "reject",
      (b) => b.blockMessage(MessageId.Reject, 2, 0, 16384),
      [0, 0, 0, 13, 0x10, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0x40, 0],
    ],
    [
      "piece",
      (b) => b.pieceSlot(3, 0x8000, 3).set(new Uint8Array([9, 8, 7])),
      [0, 0, 0, 12, 7, 0, 0, 0, 3, 0, 0, 0x80, 0, 9, 8, 7],
    ],
    [
      "empty piece",
      (b) => b.pieceSlot(0, 0, 0),
      [0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0],
    ],
  ];
  for (const [name, write, expected] of cases) {
    const b = new OutBuffer();
    write(b);
    assert.deepEqual(b.take(), new Uint8Array(expected), name);
    assert.equal(b.length, 0, `${name}: take() empties`);
  }
  // Message ids per BEP 3 / BEP 5 / BEP 6 / BEP 10.
  assert.deepEqual(MessageId, {
    Choke: 0,
    Unchoke: 1,
    Interested: 2,
    NotInterested: 3,
    Have: 4,
    Bitfield: 5,
    Request: 6,
    Piece: 7,
    Cancel: 8,
    Port: 9,
    Suggest: 13,
    HaveAll: 14,
    HaveNone: 15,
    Reject: 16,
    AllowedFast: 17,
    Extended: 20,
  });
});

Deno.test("OutBuffer: appends messages and grows past its capacity", () => {
  const b = new OutBuffer(8);
  b.simple(MessageId.Interested);
  b.have(1);
  const block = fill(100, 3);
  b.pieceSlot(1, 2, block.length).set(block);
  b.simple(MessageId.HaveNone);
  const out = b.take();
  assert.deepEqual(
    out,
    new Uint8Array([
      0,
      0,
      0,
      1,
      2,
      0,
      0,
      0,
      5,
      4,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      109,
      7,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      2,
      ...block,
      0,
      0,
      0,
      1,
      15,
    ]),
  );
  // take() returns a copy: later writes do not change it.
  b.simple(MessageId.Choke);
  assert.equal(out[4], 2);
  assert.deepEqual(b.take(), new Uint8Array([0, 0, 0, 1, 0]));
  assert.deepEqual(b.take(), new Uint8Array(0));
});

// BUG (src/wire/messages.ts:57): keepAlive() evaluates `this.view` before
// `this.reserve(4)` replaces it, so when the keep-alive is what makes the
// buffer grow it writes through the old DataView and throws a RangeError.
Deno.test("OutBuffer: keepAlive when the buffer must grow", () => {
  const b = new OutBuffer(4);
  b.keepAlive(); // fits exactly
  b.keepAlive(); // must grow
  const c = new OutBuffer(5);
  c.simple(MessageId.Choke); // fills it
  c.keepAlive(); // must grow
  assert.deepEqual(b.take(), new Uint8Array(8));
  assert.deepEqual(c.take(), new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0]));
});

Deno.test("OutBuffer: every encoder survives growth from a tiny buffer", () => {
  const writes: [(b: OutBuffer) => void, number][] = [
    [(b) => b.simple(MessageId.Unchoke), 5],
    [(b) => b.have(9), 9],
    [(b) => b.bitfield(new Uint8Array(3)), 8],
    [(b) => b.blockMessage(MessageId.Request, 1, 2, 3), 17],
    [(b) => b.pieceSlot(1, 2, 30), 43],
  ];
  for (const [write, size] of writes) {
    const b = new OutBuffer(1);
    write(b);
    write(b);
    assert.equal(b.take().length, 2 * size);
  }
});

type Event = [string, ...unknown[]];

function recorder(events: Event[]): WireHandler {
  const copy = (b: Uint8Array) => [...b];
  return {
    keepAlive: () => events.push(["keepAlive"]),
    choke: () => events.push(["choke"]),
    unchoke: () => events.push(["unchoke"]),
    interested: () => events.push(["interested"]),
    notInterested: () => events.push(["notInterested"]),
    have: (i) => events.push(["have", i]),
    bitfield: (bits) => events.push(["bitfield", copy(bits)]),
    request: (i, b, l) => events.push(["request", i, b, l]),
    piece: (i, b, block) => events.push(["piece", i, b, copy(block)]),
    cancel: (i, b, l) => events.push(["cancel", i, b, l]),
    dhtPort: (p) => events.push(["port", p]),
    haveAll: () => events.push(["haveAll"]),
    haveNone: () => events.push(["haveNone"]),
    suggest: (i) => events.push(["suggest", i]),
    reject: (i, b, l) => events.push(["reject", i, b, l]),
    allowedFast: (i) => events.push(["allowedFast", i]),
    extended: (id, payload) => events.push(["extended", id, copy(payload)]),
  };
}

/** Feeds `bytes` through space()/commit() in chunks of the given sizes (cycled). */
function feed(reader: WireReader, bytes: Uint8Array, chunk: number): void {
  let at = 0;
  while (at < bytes.length) {
    const space = reader.space();
    assert.ok(space.length > 0, "space() must never be empty");
    const n = Math.min(chunk, space.length, bytes.length - at);
    space.set(bytes.subarray(at, at + n));
    reader.commit(n);
    at += n;
  }
}

const LIMITS = { maxMessageLength: 1 << 17, bufferSize: 64 };

/** A stream holding one of every message, written by hand per BEP 3/5/6/10. */
function sampleStream(): { bytes: Uint8Array; events: Event[] } {
  const block = fill(40, 50);
  const bytes = new Uint8Array([
    0,
    0,
    0,
    0, // keep-alive
    0,
    0,
    0,
    1,
    0, // choke
    0,
    0,
    0,
    1,
    1, // unchoke
    0,
    0,
    0,
    1,
    2, // interested
    0,
    0,
    0,
    1,
    3, // not interested
    0,
    0,
    0,
    5,
    4,
    0,
    0,
    1,
    2, // have 258
    0,
    0,
    0,
    3,
    5,
    0xf0,
    0x01, // bitfield
    0,
    0,
    0,
    13,
    6,
    0,
    0,
    0,
    9,
    0,
    0,
    0x40,
    0,
    0,
    0,
    0x40,
    0, // request
    0,
    0,
    0,
    49,
    7,
    0,
    0,
    0,
    9,
    0,
    0,
    0x40,
    0,
    ...block, // piece
    0,
    0,
    0,
    13,
    8,
    0,
    0,
    0,
    9,
    0,
    0,
    0x40,
    0,
    0,
    0,
    0x40,
    0, // cancel
    0,
    0,
    0,
    3,
    9,
    0x1a,
    0xe1, // port 6881
    0,
    0,
    0,
    5,
    13,
    0,
    0,
    0,
    4, // suggest 4
    0,
    0,
    0,
    1,
    14, // have all
    0,
    0,
    0,
    1,
    15, // have none
    0,
    0,
    0,
    13,
    16,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    0x40,
    0, // reject
    0,
    0,
    0,
    5,
    17,
    0xff,
    0xff,
    0xff,
    0xfe, // allowed fast
    0,
    0,
    0,
    4,
    20,
    0,
    0x64,
    0x65, // extended handshake "de"
    0,
    0,
    0,
    2,
    20,
    3, // extended id 3, empty payload
    0,
    0,
    0,
    3,
    99,
    1,
    2, // unknown id 99: ignored
    0,
    0,
    0,
    1,
    10, // unknown id 10: ignored
    0,
    0,
    0,
    0, // keep-alive
  ]);
  const events: Event[] = [
    ["keepAlive"],
    ["choke"],
    ["unchoke"],
    ["interested"],
    ["notInterested"],
    ["have", 258],
    ["bitfield", [0xf0, 0x01]],
    ["request", 9, 16384, 16384],
    ["piece", 9, 16384, [...block]],
    ["cancel", 9, 16384, 16384],
    ["port", 6881],
    ["suggest", 4],
    ["haveAll"],
    ["haveNone"],
    ["reject", 1, 0, 16384],
    ["allowedFast", 0xfffffffe],
    ["extended", 0, [0x64, 0x65]],
    ["extended", 3, []],
    ["keepAlive"],
  ];
  return { bytes, events };
}

Deno.test("WireReader: every message in one chunk", () => {
  const { bytes, events: expected } = sampleStream();
  const events: Event[] = [];
  const reader = new WireReader(recorder(events), {
    ...LIMITS,
    bufferSize: 1024,
  });
  feed(reader, bytes, bytes.length);
  assert.deepEqual(events, expected);
});

Deno.test("WireReader: one byte at a time and every chunk size", () => {
  const { bytes, events: expected } = sampleStream();
  for (const bufferSize of [5, 17, 64, 1024]) {
    for (let chunk = 1; chunk <= bytes.length; chunk++) {
      const events: Event[] = [];
      const reader = new WireReader(recorder(events), {
        ...LIMITS,
        bufferSize,
      });
      feed(reader, bytes, chunk);
      assert.deepEqual(
        events,
        expected,
        `bufferSize ${bufferSize} chunk ${chunk}`,
      );
    }
  }
});

Deno.test("WireReader: a split at every byte boundary gives the same messages", () => {
  const { bytes, events: expected } = sampleStream();
  for (let cut = 0; cut <= bytes.length; cut++) {
    const events: Event[] = [];
    const reader = new WireReader(recorder(events), {
      ...LIMITS,
      bufferSize: 32,
    });
    feed(reader, bytes.subarray(0, cut), bytes.length);
    feed(reader, bytes.subarray(cut), bytes.length);
    assert.deepEqual(events, expected, `cut at ${cut}`);
  }
});

Deno.test("WireReader: OutBuffer output reads back", () => {
  const out = new OutBuffer(4);
  const block = fill(16384, 9);
  out.simple(MessageId.Unchoke);
  out.have(7);
  out.blockMessage(MessageId.Request, 1, 2, 3);
  out.pieceSlot(5, 16384, block.length).set(block);
  out.bitfield(new Uint8Array([0xaa]));
  const events: Event[] = [];
  const reader = new WireReader(recorder(events), LIMITS);
  feed(reader, out.take(), 1000);
  assert.deepEqual(events, [
    ["unchoke"],
    ["have", 7],
    ["request", 1, 2, 3],
    ["piece", 5, 16384, [...block]],
    ["bitfield", [0xaa]],
  ]);
});

Deno.test("WireReader: a message longer than the buffer grows it", () => {
  const block = fill(20000, 1);
  const out = new OutBuffer();
  out.pieceSlot(0, 0, block.length).set(block);
  out.have(1);
  const events: Event[] = [];
  const reader = new WireReader(recorder(events), {
    maxMessageLength: 1 << 15,
    bufferSize: 16,
  });
  feed(reader, out.take(), 7);
  assert.deepEqual(events, [["piece", 0, 0, [...block]], ["have", 1]]);
});

Deno.test("WireReader: piece payload is a view of exactly the block", () => {
  const block = fill(300, 17);
  const out = new OutBuffer();
  out.have(1);
  out.pieceSlot(2, 600, block.length).set(block);
  out.have(3);
  let seen: Uint8Array | undefined;
  const events: Event[] = [];
  const handler = recorder(events);
  handler.piece = (index, begin, data) => {
    assert.equal(index, 2);
    assert.equal(begin, 600);
    assert.equal(data.length, 300);
    assert.deepEqual(data, block);
    seen = data;
  };
  const reader = new WireReader(handler, {
    maxMessageLength: 1024,
    bufferSize: 2048,
  });
  feed(reader, out.take(), 5000);
  assert.ok(seen);
  assert.deepEqual(events, [["have", 1], ["have", 3]]);
});

Deno.test("WireReader: a message longer than maxMessageLength throws WireError", () => {
  const reader = new WireReader(recorder([]), {
    maxMessageLength: 100,
    bufferSize: 64,
  });
  const space = reader.space();
  space.set([0, 0, 0, 101]);
  assert.throws(() => reader.commit(4), WireError);
  const r2 = new WireReader(recorder([]), {
    maxMessageLength: 100,
    bufferSize: 64,
  });
  r2.space().set([0xff, 0xff, 0xff, 0xff]);
  assert.throws(() => r2.commit(4), /exceeds the limit of 100/);
  // Exactly the limit is fine.
  const events: Event[] = [];
  const r3 = new WireReader(recorder(events), {
    maxMessageLength: 100,
    bufferSize: 16,
  });
  feed(r3, new Uint8Array([0, 0, 0, 100, 20, 1, ...new Uint8Array(98)]), 13);
  assert.equal(events.length, 1);
  assert.equal(events[0][0], "extended");
  // The check happens as soon as the length prefix is in, not after the body.
  const r4 = new WireReader(recorder([]), {
    maxMessageLength: 100,
    bufferSize: 64,
  });
  r4.space().set([0, 0]);
  r4.commit(2);
  r4.space().set([1, 0]);
  assert.throws(() => r4.commit(2), WireError);
});

Deno.test("WireReader: wrong fixed lengths throw WireError", () => {
  const bad: [string, number[]][] = [
    ["choke with payload", [0, 0, 0, 2, 0, 0]],
    ["unchoke with payload", [0, 0, 0, 2, 1, 0]],
    ["interested with payload", [0, 0, 0, 2, 2, 0]],
    ["not interested with payload", [0, 0, 0, 2, 3, 0]],
    ["short have", [0, 0, 0, 4, 4, 0, 0, 0]],
    ["long have", [0, 0, 0, 6, 4, 0, 0, 0, 0, 0]],
    ["short request", [0, 0, 0, 12, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
    ["long cancel", [0, 0, 0, 14, 8, ...new Array(13).fill(0)]],
    ["short reject", [0, 0, 0, 9, 16, ...new Array(8).fill(0)]],
    ["long port", [0, 0, 0, 4, 9, 0, 0, 0]],
    ["short port", [0, 0, 0, 2, 9, 0]],
    ["have all with payload", [0, 0, 0, 2, 14, 0]],
    ["have none with payload", [0, 0, 0, 2, 15, 0]],
    ["short suggest", [0, 0, 0, 1, 13]],
    ["short allowed fast", [0, 0, 0, 3, 17, 0, 0]],
    ["short piece", [0, 0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0]],
    ["extended without id", [0, 0, 0, 1, 20]],
  ];
  for (const [name, bytes] of bad) {
    const reader = new WireReader(recorder([]), LIMITS);
    assert.throws(
      () => feed(reader, new Uint8Array(bytes), bytes.length),
      WireError,
      name,
    );
  }
  const reader = new WireReader(recorder([]), LIMITS);
  assert.throws(
    () => feed(reader, new Uint8Array([0, 0, 0, 4, 4, 0, 0, 0]), 8),
    /message 4 has length 4, expected 5/,
  );
});

Deno.test("WireReader: a piece with an empty block and an empty bitfield are delivered", () => {
  const events: Event[] = [];
  const reader = new WireReader(recorder(events), LIMITS);
  feed(
    reader,
    new Uint8Array([0, 0, 0, 9, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 5]),
    100,
  );
  assert.deepEqual(events, [["piece", 1, 2, []], ["bitfield", []]]);
});

Deno.test("WireReader: many keep-alives with a tiny buffer", () => {
  const events: Event[] = [];
  const reader = new WireReader(recorder(events), {
    maxMessageLength: 100,
    bufferSize: 4,
  });
  feed(reader, new Uint8Array(4 * 50), 3);
  assert.equal(events.length, 50);
  assert.ok(events.every((e) => e[0] === "keepAlive"));
});

Deno.test("WireReader: space() after a partial message leaves room for the rest", () => {
  const events: Event[] = [];
  const reader = new WireReader(recorder(events), {
    maxMessageLength: 1 << 16,
    bufferSize: 32,
  });
  // A have fills the first 9 bytes, then 20 bytes of a 1000-byte piece.
  const out = new OutBuffer();
  out.have(5);
  const block = fill(991, 4);
  out.pieceSlot(1, 0, block.length).set(block);
  const bytes = out.take();
  let s = reader.space();
  s.set(bytes.subarray(0, 29));
  reader.commit(29);
  assert.deepEqual(events, [["have", 5]]);
  s = reader.space();
  assert.ok(
    s.length >= bytes.length - 29,
    `space ${s.length} too small for the rest`,
  );
  s.set(bytes.subarray(29));
  reader.commit(bytes.length - 29);
  assert.deepEqual(events, [["have", 5], ["piece", 1, 0, [...block]]]);
});
