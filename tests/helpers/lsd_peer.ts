// Our LocalDiscovery in a process of its own, for tests/interop/lsd.test.ts,
// which runs it inside a network namespace (it multicasts to the real BEP 14
// group). It also listens on TCP as a stand-in BitTorrent port and reports
// the handshakes that arrive there, so a test can see who learnt that port.
//
//   deno run -A tests/helpers/lsd_peer.ts INFOHASH_HEX INTERFACE_IP ANNOUNCE_MS
//
// Lines printed (stdout):
//   READY <tcp port>                 listening, first announce sent
//   PEER <infohash> <host> <port>    LocalDiscovery's onPeer
//   HANDSHAKE <infohash> <host>      a BitTorrent handshake on our TCP port
//   LOG <line>                       LocalDiscovery's log
// It runs until killed.

import { LocalDiscovery } from "../../src/lsd/local_discovery.ts";
import { toHex } from "../../src/metainfo/metainfo.ts";

const [infoHashHex, interfaceAddress, announceMs] = Deno.args;
const PROTOCOL = new TextEncoder().encode("\x13BitTorrent protocol");
const HANDSHAKE_LENGTH = 68; // BEP 3: pstrlen, pstr, 8 reserved, info_hash, peer_id

const listener = Deno.listen({ hostname: interfaceAddress, port: 0 });
const listenPort = (listener.addr as Deno.NetAddr).port;
const lsd = await LocalDiscovery.start({
  listenPort,
  interfaceAddress,
  // The test must not wait the real five minutes for a second announce.
  announceIntervalMs: Number(announceMs),
  minAnnounceGapMs: Number(announceMs),
  log: (line) => console.log("LOG", line),
  onPeer: (hash, host, port) => console.log("PEER", hash, host, port),
});
lsd.add(infoHashHex);
console.log("READY", listenPort);

for await (const conn of listener) readHandshake(conn);

async function readHandshake(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(HANDSHAKE_LENGTH);
  let filled = 0;
  try {
    while (filled < HANDSHAKE_LENGTH) {
      const n = await conn.read(buffer.subarray(filled));
      if (n === null) return;
      filled += n;
    }
    const isBitTorrent = PROTOCOL.every((b, i) => buffer[i] === b);
    const remote = (conn.remoteAddr as Deno.NetAddr).hostname;
    if (isBitTorrent) {
      console.log("HANDSHAKE", toHex(buffer.subarray(28, 48)), remote);
    }
  } finally {
    conn.close();
  }
}
