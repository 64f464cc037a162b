// BEP 27: a private torrent uses its trackers (and --peer) only. Against a
// recording peer and a recording DHT node, the client downloading a private
// torrent sets no DHT bit, offers no ut_pex, sends no `port` message and
// never asks the DHT for the info-hash; the same download of a public torrent
// does all four, which shows the recorders would notice.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import * as fs from "node:fs";
import { decode } from "../../src/bencode/decode.ts";
import { encode } from "../../src/bencode/encode.ts";
import { isDict } from "../../src/bencode/access.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";
import { decodeHandshake, encodeHandshake } from "../../src/wire/handshake.ts";
import { parseExtensionHandshake } from "../../src/wire/extension.ts";
import { ClientProcess } from "../helpers/client.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import {
  assertSameTree,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";

interface SeenByPeer {
  reserved: Uint8Array;
  extensions: string[];
  sentPort: boolean;
}

/** Accepts one connection, claims BEP 10 and DHT support, records what the client says. */
function recordingPeer(infoHash: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const seen = (async (): Promise<SeenByPeer> => {
    const conn = await listener.accept();
    const buf = new Uint8Array(65536);
    let have = 0;
    const deadline = Date.now() + 2000;
    try {
      let replied = false;
      while (Date.now() < deadline) {
        const n = await Promise.race([
          conn.read(buf.subarray(have)),
          new Promise<null>((r) => setTimeout(() => r(null), 300)),
        ]);
        if (n === null) {
          if (replied) break;
          continue;
        }
        have += n;
        if (!replied && have >= 68) {
          const reserved = new Uint8Array(8);
          reserved[5] = 0x10;
          reserved[7] = 0x05;
          await conn.write(encodeHandshake({
            reserved,
            infoHash,
            peerId: crypto.getRandomValues(new Uint8Array(20)),
          }));
          replied = true;
        }
      }
    } finally {
      conn.close();
      listener.close();
    }
    const result: SeenByPeer = {
      reserved: decodeHandshake(buf).reserved,
      extensions: [],
      sentPort: false,
    };
    const view = new DataView(buf.buffer);
    for (let at = 68; at + 4 <= have;) {
      const length = view.getUint32(at);
      const id = buf[at + 4];
      if (length > 0 && id === 9) result.sentPort = true;
      if (length > 1 && id === 20 && buf[at + 5] === 0) {
        const hs = parseExtensionHandshake(buf.slice(at + 6, at + 4 + length));
        result.extensions = [...hs.messages.keys()];
      }
      at += 4 + length;
    }
    return result;
  })();
  return { port: (listener.addr as Deno.NetAddr).port, seen };
}

/**
 * Two DHT nodes that answer every query and keep the info-hashes asked
 * about: a bootstrap router (which a DHT node asks but does not keep) that
 * names the second, ordinary node in its replies.
 */
async function recordingDht() {
  const asked = new Set<string>();
  const bind = async (nodes: () => Uint8Array) => {
    const socket = dgram.createSocket("udp4");
    const id = crypto.getRandomValues(new Uint8Array(20));
    socket.on("message", (msg, from) => {
      try {
        const query = decode(new Uint8Array(msg));
        if (!isDict(query) || !(query["t"] instanceof Uint8Array)) return;
        const args = query["a"];
        if (isDict(args) && args["info_hash"] instanceof Uint8Array) {
          asked.add(Buffer.from(args["info_hash"]).toString("hex"));
        }
        const reply = encode({
          t: query["t"],
          y: "r",
          r: { id, nodes: nodes(), token: "tok" },
        });
        socket.send(reply, from.port, from.address);
      } catch { /* not for this test */ }
    });
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
    return { socket, id, port: socket.address().port };
  };
  const node = await bind(() => new Uint8Array(0));
  // BEP 5 compact node info: id, IPv4 address, port.
  const contact = new Uint8Array(26);
  contact.set(node.id);
  contact.set([127, 0, 0, 1], 20);
  new DataView(contact.buffer).setUint16(24, node.port);
  const router = await bind(() => contact);
  return {
    routerPort: router.port,
    asked,
    close: () =>
      Promise.all(
        [node, router].map(({ socket }) =>
          new Promise<void>((r) => socket.close(() => r()))
        ),
      ),
  };
}

for (const isPrivate of [true, false]) {
  const kind = isPrivate ? "private" : "public";
  Deno.test(`a ${kind} torrent ${isPrivate ? "stays off" : "uses"} the DHT and PEX (BEP 27)`, async () => {
    const fixture = await makeFixture({
      kind: "single",
      size: 1024 * 1024 + 9,
      private: isPrivate,
    });
    const meta = parseMetainfo(fs.readFileSync(fixture.torrent));
    assert.equal(meta.private, isPrivate);
    const peer = recordingPeer(meta.infoHash);
    const dht = await recordingDht();
    const seeder = await startLibtorrentSeeder({
      torrent: fixture.torrent,
      dataDir: fixture.dataDir,
    });
    try {
      const config = await writeConfig(fixture, {
        dhtBootstrap: [`127.0.0.1:${dht.routerPort}`],
        lsd: false,
        portMapping: "off",
      });
      const client = new ClientProcess([
        "download",
        fixture.torrent,
        "--dir",
        fixture.downloadDir,
        "--port",
        "0",
        "--config",
        config,
        "--peer",
        `127.0.0.1:${peer.port}`,
        "--peer",
        `127.0.0.1:${seeder.port}`,
        "--seed-minutes",
        "0.05",
      ], { cwd: fixture.root, network: true, lifetimeSec: 60 });
      const run = await client.wait();
      assert.equal(run.code, 0, run.output);
      await assertSameTree(fixture);
      const seen = await peer.seen;
      assert.equal((seen.reserved[7] & 0x01) !== 0, !isPrivate, "DHT bit");
      assert.ok(
        seen.extensions.includes("ut_metadata"),
        seen.extensions.join(),
      );
      assert.equal(
        seen.extensions.includes("ut_pex"),
        !isPrivate,
        "ut_pex offered",
      );
      assert.equal(seen.sentPort, !isPrivate, "port message");
      assert.equal(
        dht.asked.has(meta.infoHashHex),
        !isPrivate,
        `DHT asked about ${[...dht.asked].join(", ") || "nothing"}`,
      );
    } finally {
      await seeder.stop();
      await dht.close();
      await fixture.remove();
    }
  });
}
