// The session's accept loop: a failing accept() is logged with its stack,
// counted and retried after a growing wait (the loop never dies silently);
// a failure of ours while handing an incoming peer to its torrent is logged,
// while a peer that does not speak BitTorrent is not.

import assert from "node:assert/strict";
import { listenTcp } from "../../src/net/tcp.ts";
import type { PeerStream, StreamListener } from "../../src/net/transport.ts";
import { type PeerSink, Session } from "../../src/session.ts";
import { encodeHandshake } from "../../src/wire/handshake.ts";

/** A listener whose accept() fails `failures` times, then waits until closed. */
function failingListener(failures: number) {
  let calls = 0;
  let closeWaiting: (() => void) | null = null;
  const listener: StreamListener = {
    port: 1,
    accept(): Promise<PeerStream> {
      calls++;
      if (calls <= failures) {
        return Promise.reject(new Error("too many open files"));
      }
      return new Promise((_resolve, reject) => {
        closeWaiting = () => reject(new Deno.errors.BadResource("closed"));
      });
    },
    close() {
      closeWaiting?.();
    },
  };
  return { listener, calls: () => calls };
}

Deno.test("session: a failing accept is logged with its stack, counted and retried with a growing wait", async () => {
  const log: string[] = [];
  const waits: number[] = [];
  const session = new Session(1000, (line) => log.push(line), (ms) => {
    waits.push(ms);
    return Promise.resolve();
  });
  const { listener, calls } = failingListener(3);
  session.serve(listener);
  for (let i = 0; i < 20 && calls() < 4; i++) await Promise.resolve();
  assert.equal(calls(), 4, "the loop went on accepting");
  assert.deepEqual(waits, [1000, 2000, 4000]);
  assert.equal(session.internalErrors.count, 3);
  assert.equal(log.length, 3);
  assert.match(
    log[0],
    /^internal error accepting peers \(trying again in 1 s\): Error: too many open files\n\s+at /,
  );
  await session.close();
  assert.equal(session.internalErrors.count, 3, "closing is not an error");
});

Deno.test("session: an exception of ours while taking an incoming peer is logged; a stranger's bytes are not", async () => {
  const infoHash = crypto.getRandomValues(new Uint8Array(20));
  const log: string[] = [];
  let logged!: () => void;
  const entry = new Promise<void>((resolve) => logged = resolve);
  const session = new Session(5000, (line) => {
    log.push(line);
    logged();
  });
  const sink: PeerSink = {
    addPeers: () => {},
    acceptIncoming: () => Promise.reject(new TypeError("sink bug")),
  };
  session.addSink(
    [...infoHash].map((b) => b.toString(16).padStart(2, "0")).join(""),
    sink,
  );
  const listener = listenTcp("127.0.0.1", 0);
  session.serve(listener);
  const port = listener.port;
  try {
    // Not BitTorrent: dropped without a word.
    const stranger = await Deno.connect({ hostname: "127.0.0.1", port });
    await stranger.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    assert.equal(await stranger.read(new Uint8Array(16)), null);
    stranger.close();
    assert.deepEqual(log, []);

    const peer = await Deno.connect({ hostname: "127.0.0.1", port });
    await peer.write(encodeHandshake({
      reserved: new Uint8Array(8),
      infoHash,
      peerId: new Uint8Array(20),
    }));
    await entry;
    assert.equal(await peer.read(new Uint8Array(16)), null, "closed by us");
    peer.close();
    assert.equal(session.internalErrors.count, 1);
    assert.match(
      log[0],
      /^internal error taking an incoming peer: TypeError: sink bug\n\s+at /,
    );
  } finally {
    await session.close();
  }
});
