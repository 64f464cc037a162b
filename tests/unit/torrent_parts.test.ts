// The small parts a torrent wires: the upload side (which requests are
// served, the BEP 6 allowed-fast offer, disk errors), when the resume record
// is saved (an injected clock), and discovery keeping a private torrent
// (BEP 27) off the DHT and LSD.

import assert from "node:assert/strict";
import type { PeerAddress } from "../../src/net/address.ts";
import { encode } from "../../src/bencode/encode.ts";
import { DEFAULT_CONFIG } from "../../src/config.ts";
import { TorrentDiscovery } from "../../src/discovery/torrent_discovery.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { BLOCK_SIZE, PieceGeometry } from "../../src/pieces/geometry.ts";
import { ResumeSaver } from "../../src/storage/resume_saver.ts";
import type { ChokerPeer } from "../../src/swarm/choker.ts";
import { MAX_REQUEST, Upload } from "../../src/swarm/upload.ts";
import { allowedFastSet } from "../../src/wire/allowed_fast.ts";

const INFO_HASH = new Uint8Array(20).fill(3);
const PIECE_LENGTH = 2 * BLOCK_SIZE;

function upload(read = (_i: number, _b: number, _o: Uint8Array) => true) {
  const geometry = new PieceGeometry(40, PIECE_LENGTH, 39 * PIECE_LENGTH + 100);
  const have = new Bitfield(40);
  for (let i = 0; i < 40; i += 2) have.set(i);
  have.set(39);
  const log: string[] = [];
  const up = new Upload<ChokerPeer>([], {
    slots: 4,
    geometry,
    have,
    infoHash: INFO_HASH,
    read,
    log: (line) => log.push(line),
  });
  return { up, have, log };
}

Deno.test("upload: a request is served only for a verified piece, inside it, of at most 128 KiB", () => {
  const { up } = upload();
  assert.equal(up.refusal(0, 0, BLOCK_SIZE), null);
  assert.equal(up.refusal(0, PIECE_LENGTH - 10, 10), null);
  assert.equal(up.refusal(39, 0, 100), null);
  assert.equal(up.refusal(40, 0, BLOCK_SIZE), "piece 40 does not exist");
  assert.equal(up.refusal(1, 0, BLOCK_SIZE), "piece 1 is not verified here");
  assert.equal(up.refusal(0, 0, 0), "request of 0 bytes");
  assert.equal(
    up.refusal(0, 0, MAX_REQUEST + 1),
    `request of ${MAX_REQUEST + 1} bytes`,
  );
  assert.equal(up.refusal(39, 0, 101), "request past the end of piece 39");
});

Deno.test("upload: the allowed-fast offer is the peer's BEP 6 set among the pieces we have", () => {
  const { up, have } = upload();
  const set = allowedFastSet("80.4.4.200", INFO_HASH, 40);
  assert.deepEqual(
    up.offeredFast("80.4.4.200"),
    set.filter((i) => have.has(i)),
  );
  assert.ok(up.offeredFast("80.4.4.200").length < set.length);
  assert.deepEqual(up.offeredFast("::1"), []);
});

Deno.test("upload: a disk error while serving is logged and the block refused; served bytes are counted", () => {
  const { up, log } = upload(() => {
    throw new Error("EIO");
  });
  assert.equal(up.read(2, 0, new Uint8Array(BLOCK_SIZE)), false);
  assert.deepEqual(log, ["cannot serve piece 2: EIO"]);
  up.served(BLOCK_SIZE);
  up.served(100);
  assert.equal(up.uploaded, BLOCK_SIZE + 100);
  up.tick(false, 1000, 2);
  assert.equal(up.rate.rate, ((BLOCK_SIZE + 100) / 2) * 0.4);
});

Deno.test("resume saver: saved after a verified piece, at most once an interval; a failed save is retried", () => {
  let saves = 0;
  let failing = false;
  const saver = new ResumeSaver(
    () => {
      if (failing) throw new Error("disk full");
      saves++;
    },
    30_000,
    0,
  );
  saver.tick(60_000);
  assert.equal(saves, 0, "nothing changed");
  saver.changed();
  saver.tick(60_000);
  assert.equal(saves, 1);
  saver.changed();
  saver.tick(80_000);
  assert.equal(saves, 1, "within the interval");
  failing = true;
  assert.throws(() => saver.tick(90_001), /disk full/);
  failing = false;
  saver.tick(90_002);
  assert.equal(saves, 2, "still due after the failure");
  saver.tick(200_000);
  assert.equal(saves, 2);
  saver.saveNow(200_001);
  assert.equal(saves, 3, "asked for: saved at once");
});

function meta(isPrivate: boolean) {
  return parseMetainfo(encode({
    info: {
      name: "x.bin",
      length: 5,
      "piece length": PIECE_LENGTH,
      pieces: new Uint8Array(20),
      ...(isPrivate ? { private: 1 } : {}),
    },
  }));
}

Deno.test("discovery: a public torrent asks the DHT and LSD; a private one never (BEP 27)", async () => {
  for (const isPrivate of [false, true]) {
    const asked: string[] = [];
    const discovery = new TorrentDiscovery(
      meta(isPrivate),
      {
        config: DEFAULT_CONFIG,
        peerId: new Uint8Array(20),
        dht: {
          port: 6881,
          addNode: () => {},
          lookup: (_hash, _onPeers: (p: PeerAddress[]) => void, port) => {
            asked.push(`dht lookup, announcing ${port}`);
            return Promise.resolve();
          },
        },
        lsd: {
          add: () => asked.push("lsd add"),
          remove: () => asked.push("lsd remove"),
        },
        log: () => {},
      },
      () => ({ uploaded: 0, downloaded: 0, left: 5 }),
      () => {},
    );
    discovery.start(7000);
    await discovery.stop();
    assert.deepEqual(
      asked,
      isPrivate ? [] : ["lsd add", "dht lookup, announcing 7000", "lsd remove"],
      isPrivate ? "private" : "public",
    );
  }
});
