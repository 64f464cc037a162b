// The KRPC socket's defences: answers within a per-IP and a global budget (QueryLimiter),
// random transaction ids, and datagrams from port 0 dropped before anything is sent.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import { decodeKrpc, encodeQuery, encodeResponse } from "../../src/dht/krpc.ts";
import { KrpcSocket, transactionId } from "../../src/dht/krpc_socket.ts";
import { randomNodeId } from "../../src/dht/node_id.ts";
import { QueryLimiter } from "../../src/dht/query_limiter.ts";
import { DhtNode } from "../../src/dht/dht_node.ts";

const ascii = new TextEncoder();

Deno.test("QueryLimiter: a burst per IP, then its rate; a global budget; a bounded IP map", () => {
  const clock = { now: 0 };
  const limiter = new QueryLimiter({
    perIpRate: 5,
    perIpBurst: 20,
    globalRate: 50,
    globalBurst: 30,
    maxTrackedIps: 3,
  }, () => clock.now);
  const allowed = (ip: string, n: number) => {
    let ok = 0;
    for (let i = 0; i < n; i++) if (limiter.allow(ip)) ok++;
    return ok;
  };
  assert.equal(allowed("198.51.100.1", 100), 20, "the burst");
  clock.now += 1000; // the global budget is full again (30)
  assert.equal(allowed("198.51.100.1", 100), 5, "5 a second after it");
  assert.equal(allowed("198.51.100.2", 100), 20);
  // 5 global tokens left: they stop another IP early
  assert.equal(allowed("198.51.100.3", 100), 5);
  clock.now += 1000;
  assert.equal(allowed("198.51.100.3", 100), 20, "15 left + 5 a second");
  allowed("198.51.100.4", 1);
  assert.equal(
    limiter.trackedIps,
    3,
    "the least recently used IP was forgotten",
  );
});

async function client() {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const replies: Uint8Array[] = [];
  socket.on("message", (msg) => replies.push(new Uint8Array(msg)));
  return {
    socket,
    replies,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

Deno.test("a flood of queries from one IP gets 20 answers, the rest dropped and counted", async () => {
  const node = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [],
    stateFile: null,
    log: () => {},
    queryTimeoutMs: 200,
  });
  const peer = await client();
  try {
    for (let i = 0; i < 60; i++) {
      const t = ascii.encode(`q${i}`);
      peer.socket.send(
        encodeQuery(t, { method: "ping", id: randomNodeId() }),
        node.port,
        "127.0.0.1",
      );
    }
    const deadline = Date.now() + 5000;
    while (node.stats().queriesAnswered + node.stats().rateLimited < 60) {
      assert.ok(Date.now() < deadline, JSON.stringify(node.stats()));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const { queriesAnswered, rateLimited } = node.stats();
    // the burst, plus what trickled in at 5 a second meanwhile
    assert.ok(
      queriesAnswered >= 20 && queriesAnswered <= 25,
      `${queriesAnswered}`,
    );
    assert.equal(rateLimited, 60 - queriesAnswered);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const responses = peer.replies.filter((r) =>
      decodeKrpc(r).type === "response"
    );
    assert.equal(responses.length, queriesAnswered, "dropped means no answer");
  } finally {
    await peer.close();
    await node.close();
  }
});

Deno.test("transaction ids are 4 random bytes, drawn again when taken", async () => {
  const draws = [[1, 2, 3, 4], [1, 2, 3, 4], [9, 9, 9, 9]];
  const t = transactionId(
    (t) => t.join() === "1,2,3,4",
    (into) => into.set(draws.shift()!),
  );
  assert.deepEqual([...t], [9, 9, 9, 9]);
  assert.equal(draws.length, 0);

  // on the wire: 4 bytes, not a counter
  const peer = await client();
  const seen: Uint8Array[] = [];
  peer.socket.on("message", (msg, from) => {
    const message = decodeKrpc(new Uint8Array(msg));
    if (message.type !== "query") return;
    seen.push(message.t);
    peer.socket.send(
      encodeResponse(message.t, { id: randomNodeId() }),
      from.port,
      from.address,
    );
  });
  const socket = await KrpcSocket.bind({
    host: "127.0.0.1",
    port: 0,
    queryTimeoutMs: 1000,
    maxPending: 16,
    onQuery: () => undefined,
    log: () => {},
  });
  try {
    const to = { host: "127.0.0.1", port: peer.socket.address().port };
    for (let i = 0; i < 8; i++) {
      const outcome = await socket.query(to, {
        method: "ping",
        id: randomNodeId(),
      });
      assert.equal(outcome.kind, "reply");
    }
    assert.ok(seen.every((t) => t.length === 4));
    const numbers = seen.map((t) =>
      new DataView(t.buffer, t.byteOffset).getUint32(0)
    );
    const steps = numbers.slice(1).filter((n, i) => n - numbers[i] === 1);
    assert.ok(steps.length < 7, `sequential ids: ${numbers}`);
  } finally {
    await socket.close();
    await peer.close();
  }
});

Deno.test("a datagram from port 0 is dropped before anything is sent", async () => {
  const queries: unknown[] = [];
  const socket = await KrpcSocket.bind({
    host: "127.0.0.1",
    port: 0,
    queryTimeoutMs: 1000,
    maxPending: 16,
    onQuery: (query) => {
      queries.push(query);
      return encodeResponse(query.t, { id: randomNodeId() });
    },
    log: () => {},
  });
  try {
    const ping = encodeQuery(ascii.encode("aa"), {
      method: "ping",
      id: randomNodeId(),
    });
    const broken = ascii.encode("d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe");
    for (const datagram of [ping, broken]) {
      // as node:dgram would deliver it; sending anything to port 0 throws
      socket.socket.emit("message", Buffer.from(datagram), {
        address: "127.0.0.1",
        family: "IPv4",
        port: 0,
        size: datagram.length,
      });
    }
    assert.equal(queries.length, 0);
    assert.equal(socket.malformedPackets, 0);
  } finally {
    await socket.close();
  }
});

Deno.test("a datagram longer than one KRPC message, or not a dictionary, is counted and never answered", async () => {
  const socket = await KrpcSocket.bind({
    host: "127.0.0.1",
    port: 0,
    queryTimeoutMs: 1000,
    maxPending: 16,
    onQuery: (query) => encodeResponse(query.t, { id: randomNodeId() }),
    log: () => {},
  });
  const peer = await client();
  /** A ping padded with an unknown key "z" to `size` bytes. */
  const paddedPing = (t: string, size: number) => {
    const head = `d1:ad2:id20:${"i".repeat(20)}e1:q4:ping1:t2:${t}1:y1:q1:z`;
    const room = size - head.length - 1;
    const pad = room - `${room}:`.length;
    return ascii.encode(`${head}${pad}:${"x".repeat(pad)}e`);
  };
  const answeredWith = (t: string) =>
    peer.replies.some((reply) =>
      new TextDecoder().decode(decodeKrpc(reply).t) === t
    );
  /** Sends, then waits until `done` holds (5 s at most). */
  const sendAndWait = async (datagram: Uint8Array, done: () => boolean) => {
    peer.socket.send(datagram, socket.port, "127.0.0.1");
    const deadline = Date.now() + 5000;
    while (!done()) {
      assert.ok(Date.now() < deadline, "nothing happened");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  try {
    assert.equal(paddedPing("aa", 1400).length, 1400);
    // (first, as Deno reads the very first datagram before the buffer size applies)
    await sendAndWait(paddedPing("aa", 1400), () => answeredWith("aa"));
    assert.equal(socket.malformedPackets, 0);
    // read cut short (the receive buffer is sized for KRPC), so not bencode
    await sendAndWait(
      paddedPing("bb", 8000),
      () => socket.malformedPackets > 0,
    );
    const garbage = ["i1e", "le", "4:spam", "d1:t2:cc1:y1:q"];
    for (const [i, text] of garbage.entries()) {
      await sendAndWait(
        ascii.encode(text),
        () => socket.malformedPackets > i + 1,
      );
    }
    // an answer would have been sent at once, before the count was read
    await sendAndWait(paddedPing("dd", 100), () => answeredWith("dd"));
    assert.ok(!answeredWith("bb") && !answeredWith("cc"));
    assert.equal(socket.malformedPackets, 1 + garbage.length);
  } finally {
    await peer.close();
    await socket.close();
  }
});
