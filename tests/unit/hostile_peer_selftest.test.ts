// The hostile peer sends what each attack promises: read with a bare socket, no client code.

import assert from "node:assert/strict";
import {
  BLOCK_LENGTH,
  HOSTILE_PEER_ID,
  type HostileAttack,
  type HostilePeer,
  HUGE_LENGTH,
  REQUEST_FLOOD_COUNT,
  rssKiB,
  SECOND_HANDSHAKE_REQQ,
  startHostilePeer,
} from "../helpers/hostile_peer.ts";

const INFO_HASH = crypto.getRandomValues(new Uint8Array(20));
// 10 pieces: the bitfield's last byte has spare bits
const PIECE_COUNT = 10;
const PIECE_LENGTH = 64 * 1024;
const BITFIELD_LENGTH = 2;
const READ_TIMEOUT_MS = 5_000;

/** Runs body against a hostile peer, connected and handshaken, then closes everything. */
async function withAttack(
  attack: HostileAttack,
  body: (client: RawClient, peer: HostilePeer) => Promise<void>,
  payload?: Uint8Array,
): Promise<void> {
  const peer = startHostilePeer({
    infoHash: INFO_HASH,
    pieceCount: PIECE_COUNT,
    pieceLength: PIECE_LENGTH,
    attack,
    payload,
  });
  const client = await RawClient.connect(peer.port);
  try {
    if (attack !== "other-torrent") await client.handshake(INFO_HASH);
    await body(client, peer);
  } finally {
    await client.close();
    await peer.stop();
  }
}

Deno.test("hostile peer: handshakes for its info-hash only", async () => {
  const peer = startHostilePeer({
    infoHash: INFO_HASH,
    pieceCount: PIECE_COUNT,
    pieceLength: PIECE_LENGTH,
    attack: "silent",
  });
  const stranger = await RawClient.connect(peer.port);
  const member = await RawClient.connect(peer.port);
  try {
    await stranger.write(handshake(new Uint8Array(20)));
    assert.equal(await stranger.hungUpWithin(READ_TIMEOUT_MS), true);
    const reply = await member.handshake(INFO_HASH);
    assert.deepEqual(reply.subarray(48), HOSTILE_PEER_ID);
    assert.equal(peer.connections, 2);
  } finally {
    await stranger.close();
    await member.close();
    await peer.stop();
  }
});

Deno.test("hostile peer: garbage streams random bytes", async () => {
  await withAttack("garbage", async (client) => {
    const bytes = await client.read(64 * 1024);
    assert.ok(new Set(bytes).size > 200, "bytes look random");
  });
});

Deno.test("hostile peer: huge-length sends a 4 GiB prefix, then a trickle", async () => {
  await withAttack("huge-length", async (client) => {
    const prefix = await client.read(4);
    assert.equal(new DataView(prefix.buffer).getUint32(0), HUGE_LENGTH);
    await client.read(2); // the trickle goes on
  });
});

Deno.test("hostile peer: bad-bitfield is one byte too long, then silence", async () => {
  await withAttack("bad-bitfield", async (client) => {
    const { id, payload } = await client.readMessage();
    assert.equal(id, 5);
    assert.equal(payload.length, BITFIELD_LENGTH + 1);
    assert.equal(await client.hungUpWithin(300), false);
  });
});

Deno.test("hostile peer: request-flood mixes valid and invalid requests", async () => {
  await withAttack("request-flood", async (client) => {
    assert.deepEqual(await client.readMessage(), {
      id: 5,
      payload: new Uint8Array(BITFIELD_LENGTH),
    });
    assert.equal((await client.readMessage()).id, 2);
    const kinds = new Map<string, number>();
    for (let i = 0; i < REQUEST_FLOOD_COUNT; i++) {
      const { id, payload } = await client.readMessage();
      assert.equal(id, 6);
      const kind = requestKind(payload);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    assert.deepEqual([...kinds.keys()].sort(), [
      "begin past the piece",
      "index out of range",
      "length 1 MiB",
      "valid",
    ]);
    for (const count of kinds.values()) assert.ok(count >= 1000);
  });
});

Deno.test("hostile peer: silent keeps the socket open and says nothing", async () => {
  await withAttack("silent", async (client) => {
    await client.write(message(2, new Uint8Array(0))); // interested: still no reply
    assert.equal(await client.hungUpWithin(500), false);
  });
});

Deno.test("hostile peer: wrong-data answers each request with fresh random data", async () => {
  await withAttack("wrong-data", async (client) => {
    await expectEverythingAndUnchoke(client);
    const ask = request(3, BLOCK_LENGTH, BLOCK_LENGTH);
    await client.write(message(2, new Uint8Array(0)));
    await client.write(ask);
    await client.write(ask);
    const first = await client.readMessage();
    const second = await client.readMessage();
    for (const answer of [first, second]) {
      assert.equal(answer.id, 7);
      const view = new DataView(
        answer.payload.buffer,
        answer.payload.byteOffset,
      );
      assert.deepEqual([view.getUint32(0), view.getUint32(4)], [
        3,
        BLOCK_LENGTH,
      ]);
      assert.equal(answer.payload.length, 8 + BLOCK_LENGTH);
    }
    assert.notDeepEqual(first.payload, second.payload);
  });
});

Deno.test("hostile peer: unsolicited sends blocks nobody requested", async () => {
  await withAttack("unsolicited", async (client) => {
    // piece 1's first block is due after piece 0's four: this request comes long before
    await client.write(request(1, 0, BLOCK_LENGTH));
    await expectEverythingAndUnchoke(client);
    const sent = [];
    for (let i = 0; i < 8; i++) {
      const { id, payload } = await client.readMessage();
      assert.equal(id, 7);
      const view = new DataView(payload.buffer, payload.byteOffset);
      sent.push(`${view.getUint32(0)}:${view.getUint32(4)}`);
      assert.equal(payload.length, 8 + BLOCK_LENGTH);
    }
    assert.ok(!sent.includes("1:0"), `sent ${sent}`);
    assert.ok(sent.includes("1:16384"), `sent ${sent}`);
  });
});

Deno.test("hostile peer: second-handshake sends a full, then a partial extended handshake, asks for metadata and serves requests from the payload", async () => {
  const content = new Uint8Array(PIECE_COUNT * PIECE_LENGTH).map((_, i) =>
    i % 251
  );
  await withAttack("second-handshake", async (client, peer) => {
    const latin1 = (b: Uint8Array) => new TextDecoder("latin1").decode(b);
    const first = await client.readMessage();
    assert.equal(first.id, 20);
    assert.equal(
      latin1(first.payload),
      `\x00d1:md11:ut_metadatai3e6:ut_pexi4ee4:reqqi${SECOND_HANDSHAKE_REQQ}ee`,
    );
    await expectEverythingAndUnchoke(client);
    const second = await client.readMessage();
    assert.equal(
      latin1(second.payload),
      "\x00d1:md11:lt_donthavei7ee1:v7:hostilee",
    );
    // Our handshake names ut_metadata 9: the metadata request comes under it.
    await client.write(
      message(20, new TextEncoder().encode("\x00d1:md11:ut_metadatai9eee")),
    );
    const ask = await client.readMessage();
    assert.equal(ask.payload[0], 9);
    assert.equal(latin1(ask.payload.subarray(1)), "d8:msg_typei0e5:piecei0ee");
    await client.write(request(2, BLOCK_LENGTH, BLOCK_LENGTH));
    const block = await client.readMessage();
    assert.equal(block.id, 7);
    const at = 2 * PIECE_LENGTH + BLOCK_LENGTH;
    assert.deepEqual(
      block.payload.subarray(8),
      content.subarray(at, at + BLOCK_LENGTH),
    );
    await client.write(
      message(20, new TextEncoder().encode("\x03d8:msg_typei1e5:piecei0ee")),
    );
    await client.write(message(20, new TextEncoder().encode("\x04de")));
    await peer.waitForNote(/^pex$/, READ_TIMEOUT_MS);
    assert.deepEqual(peer.notes.map((n) => n.text), [
      "in flight 1",
      "metadata 1",
      "pex",
    ]);
  }, content);
});

Deno.test("hostile peer: other-torrent answers with another info-hash", async () => {
  await withAttack("other-torrent", async (client) => {
    await client.write(handshake(INFO_HASH));
    const reply = await client.read(68);
    assert.deepEqual(reply.subarray(28, 48), INFO_HASH.map((b) => b ^ 0xff));
    assert.equal(await client.hungUpWithin(500), false);
  });
});

Deno.test("hostile peer: slot-hog is interested, asks for nothing, notes chokes", async () => {
  await withAttack("slot-hog", async (client, peer) => {
    assert.deepEqual(await client.readMessage(), {
      id: 5,
      payload: new Uint8Array(BITFIELD_LENGTH),
    });
    assert.equal((await client.readMessage()).id, 2);
    await client.write(message(1, new Uint8Array(0)));
    await client.write(message(0, new Uint8Array(0)));
    await peer.waitForNote(/^choked$/, READ_TIMEOUT_MS);
    assert.deepEqual(peer.notes.map((n) => n.text), ["unchoked", "choked"]);
    assert.equal(await client.hungUpWithin(300), false, "no request came");
  });
});

Deno.test("hostile peer: repeats its attack on every connection", async () => {
  const peer = startHostilePeer({
    infoHash: INFO_HASH,
    pieceCount: PIECE_COUNT,
    pieceLength: PIECE_LENGTH,
    attack: "huge-length",
  });
  try {
    for (let round = 1; round <= 2; round++) {
      const client = await RawClient.connect(peer.port);
      await client.handshake(INFO_HASH);
      const prefix = await client.read(4);
      assert.equal(new DataView(prefix.buffer).getUint32(0), HUGE_LENGTH);
      await client.close();
      assert.equal(peer.connections, round);
    }
  } finally {
    await peer.stop();
  }
});

Deno.test("rssKiB reads this process's resident set", () => {
  const kib = rssKiB(Deno.pid);
  assert.ok(kib > 1024 && kib < 16 * 1024 * 1024, `${kib} KiB`);
});

async function expectEverythingAndUnchoke(client: RawClient): Promise<void> {
  // pieces 0-9 set, the six spare bits of the last byte clear
  assert.deepEqual(await client.readMessage(), {
    id: 5,
    payload: new Uint8Array([0xff, 0xc0]),
  });
  assert.equal((await client.readMessage()).id, 1);
}

function requestKind(payload: Uint8Array): string {
  const view = new DataView(payload.buffer, payload.byteOffset);
  const [index, begin, length] = [0, 4, 8].map((at) => view.getUint32(at));
  if (index >= PIECE_COUNT) return "index out of range";
  if (length === 1024 * 1024) return "length 1 MiB";
  if (begin >= PIECE_LENGTH) return "begin past the piece";
  assert.ok(length <= BLOCK_LENGTH && begin + length <= PIECE_LENGTH);
  return "valid";
}

/** A bare TCP client: one background read loop, so no read is left pending at close. */
class RawClient {
  #conn: Deno.Conn;
  #queued: Uint8Array = new Uint8Array(0);
  #ended = false;
  #wake: () => void = () => {};
  #pumping: Promise<void>;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#pumping = this.#pump();
  }

  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Sends our handshake and returns the peer's, after checking its info-hash. */
  async handshake(infoHash: Uint8Array): Promise<Uint8Array> {
    await this.write(handshake(infoHash));
    const reply = await this.read(68);
    assert.deepEqual(
      reply.subarray(0, 20),
      handshake(infoHash).subarray(0, 20),
    );
    assert.deepEqual(reply.subarray(28, 48), infoHash);
    return reply;
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.#conn.write(bytes.subarray(offset));
    }
  }

  async read(length: number): Promise<Uint8Array> {
    const deadline = Date.now() + READ_TIMEOUT_MS;
    while (this.#queued.length < length) {
      if (this.#ended) throw new Error("the hostile peer hung up");
      if (!await this.#arrival(deadline - Date.now())) {
        throw new Error(`no ${length} bytes within ${READ_TIMEOUT_MS} ms`);
      }
    }
    const bytes = this.#queued.slice(0, length);
    this.#queued = this.#queued.subarray(length);
    return bytes;
  }

  async readMessage(): Promise<{ id: number; payload: Uint8Array }> {
    const length = new DataView((await this.read(4)).buffer).getUint32(0);
    const body = await this.read(length);
    return { id: body[0], payload: body.subarray(1) };
  }

  /** True when the peer closes the connection within ms; false when it stays open and quiet. */
  async hungUpWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.#ended && Date.now() < deadline) {
      await this.#arrival(deadline - Date.now());
      assert.equal(this.#queued.length, 0, "the peer sent bytes");
    }
    return this.#ended;
  }

  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch { /* the pump saw it closed already */ }
    await this.#pumping;
  }

  /** Resolves true when bytes arrive or the peer hangs up, false after ms. */
  #arrival(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max(0, ms));
      this.#wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  async #pump(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const count = await this.#conn.read(chunk);
        if (count === null) break;
        const grown = new Uint8Array(this.#queued.length + count);
        grown.set(this.#queued);
        grown.set(chunk.subarray(0, count), this.#queued.length);
        this.#queued = grown;
        this.#wake();
      }
    } catch { /* closed by close() */ }
    this.#ended = true;
    this.#wake();
  }
}

function handshake(infoHash: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(68);
  bytes.set(new TextEncoder().encode("\x13BitTorrent protocol"));
  bytes.set(infoHash, 28);
  bytes.set(new TextEncoder().encode("-ZZ0000-selftestpeer"), 48);
  return bytes;
}

function message(id: number, payload: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(5 + payload.length);
  new DataView(bytes.buffer).setUint32(0, 1 + payload.length);
  bytes[4] = id;
  bytes.set(payload, 5);
  return bytes;
}

function request(piece: number, begin: number, length: number): Uint8Array {
  const payload = new Uint8Array(12);
  const view = new DataView(payload.buffer);
  [piece, begin, length].forEach((value, i) => view.setUint32(i * 4, value));
  return message(6, payload);
}
