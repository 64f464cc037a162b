// The TCP transport behind the transport seam, on loopback: bytes cross
// both ways into the caller's buffer, a large write goes out whole, the
// remote address is the other end's, closing twice is harmless and ends a
// pending read, and a dial is bounded by its signal. The handshake reader
// over any stream reports its own timeout as such.

import assert from "node:assert/strict";
import { dialTcp, listenTcp } from "../../src/net/tcp.ts";
import { readHandshake } from "../../src/peer/handshake_io.ts";
import { WireError } from "../../src/wire/handshake.ts";
import { FakeConn } from "../helpers/fake_conn.ts";

async function readExactly(
  stream: { read(into: Uint8Array): Promise<number | null> },
  n: number,
): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  let have = 0;
  while (have < n) {
    const got = await stream.read(buf.subarray(have));
    if (got === null) throw new Error(`stream ended after ${have} bytes`);
    have += got;
  }
  return buf;
}

Deno.test("tcp transport: dial and accept give streams that carry bytes both ways", async () => {
  const listener = listenTcp("127.0.0.1", 0);
  try {
    const [dialled, accepted] = await Promise.all([
      dialTcp("127.0.0.1", listener.port, AbortSignal.timeout(5000)),
      listener.accept(),
    ]);
    assert.equal(dialled.kind, "tcp");
    assert.deepEqual(dialled.remote, {
      host: "127.0.0.1",
      port: listener.port,
    });
    assert.equal(accepted.remote.host, "127.0.0.1");
    assert.notEqual(accepted.remote.port, listener.port);

    // More than a socket buffer: write() resolves only when all of it is out.
    const big = new Uint8Array(4 << 20);
    for (let i = 0; i < big.length; i++) big[i] = i * 7;
    const [, received] = await Promise.all([
      dialled.write(big),
      readExactly(accepted, big.length),
    ]);
    assert.deepEqual(received, big);

    await accepted.write(new Uint8Array([1, 2, 3]));
    const into = new Uint8Array(8);
    let n = 0;
    while (n < 3) n += (await dialled.read(into.subarray(n)))!;
    assert.deepEqual(into.subarray(0, 3), new Uint8Array([1, 2, 3]));

    accepted.close();
    assert.equal(await dialled.read(into), null, "end of stream");
    accepted.close();
    dialled.close();
  } finally {
    listener.close();
    listener.close();
  }
});

Deno.test("tcp transport: closing a stream ends its pending read", async () => {
  const listener = listenTcp("127.0.0.1", 0);
  try {
    const [dialled, accepted] = await Promise.all([
      dialTcp("127.0.0.1", listener.port, AbortSignal.timeout(5000)),
      listener.accept(),
    ]);
    const pending = dialled.read(new Uint8Array(16));
    dialled.close();
    const ended = await pending.then((n) => n, () => "rejected");
    assert.ok(ended === null || ended === "rejected", String(ended));
    accepted.close();
  } finally {
    listener.close();
  }
});

Deno.test("tcp transport: a dial whose signal has aborted fails; so does accept on a closed listener", async () => {
  const listener = listenTcp("127.0.0.1", 0);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(
    dialTcp("127.0.0.1", listener.port, controller.signal),
  );
  const accepting = listener.accept();
  listener.close();
  await assert.rejects(accepting);
});

Deno.test("tcp transport: a taken port is refused with AddrInUse", () => {
  const listener = listenTcp("127.0.0.1", 0);
  try {
    assert.throws(
      () => listenTcp("127.0.0.1", listener.port),
      Deno.errors.AddrInUse,
    );
  } finally {
    listener.close();
  }
});

Deno.test("handshake: a stream closed by the timeout is a timeout, whatever the stream then says", async () => {
  // FakeConn answers a read with null (an orderly end) once closed.
  const silent = new FakeConn();
  await assert.rejects(
    readHandshake(silent, 1),
    (e: unknown) =>
      e instanceof WireError && e.message === "handshake timed out",
  );
  assert.equal(silent.closed, true);

  const gone = new FakeConn();
  gone.close();
  await assert.rejects(
    readHandshake(gone, 60_000),
    /peer closed the connection during the handshake/,
  );
});
