// The KRPC socket: query timeouts on its clock, answers within a per-IP and a global
// budget (QueryLimiter), random transaction ids, and datagrams from port 0 dropped before
// anything is sent. The sockets are real (on 127.0.0.1); time is a FakeClock, so that
// nothing here depends on how fast a loaded machine runs.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import dgram from "node:dgram";
import { decodeKrpc, encodeQuery, encodeResponse } from "../../src/dht/krpc.ts";
import {
  KrpcSocket,
  type QueryOutcome,
  transactionId,
} from "../../src/dht/krpc_socket.ts";
import { randomNodeId } from "../../src/dht/node_id.ts";
import { QueryLimiter } from "../../src/dht/query_limiter.ts";
import { DhtNode } from "../../src/dht/dht_node.ts";
import { FakeClock } from "../helpers/fake_clock.ts";

const ascii = new TextEncoder();
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Waits for datagrams to arrive: a bound on I/O, not on any timing under test. */
async function until(what: string, condition: () => boolean) {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

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

Deno.test("a flood of queries from one IP gets the burst of 20 answers, then 5 a second; the rest dropped, counted and unanswered", async () => {
  const clock = new FakeClock();
  const node = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [],
    stateFile: null,
    log: () => {},
    clock,
  });
  const peer = await client();
  const ping = (t: string) =>
    peer.socket.send(
      encodeQuery(ascii.encode(t), { method: "ping", id: randomNodeId() }),
      node.port,
      "127.0.0.1",
    );
  const counted = () => node.stats().queriesAnswered + node.stats().rateLimited;
  const answered = () =>
    peer.replies.map((r) => decodeKrpc(r)).filter((m) => m.type === "response")
      .map((m) => text(m.t));
  try {
    for (let i = 0; i < 60; i++) ping(`q${i}`);
    await until("60 queries counted", () => counted() === 60);
    assert.equal(node.stats().queriesAnswered, 20, "the burst");
    assert.equal(node.stats().rateLimited, 40);

    await clock.advance(1000);
    for (let i = 0; i < 10; i++) ping(`r${i}`);
    await until("70 queries counted", () => counted() === 70);
    assert.equal(node.stats().queriesAnswered, 25, "5 more a second later");
    assert.equal(node.stats().rateLimited, 45);

    // One more token in 200 ms; its answer comes after any the dropped ones got.
    await clock.advance(200);
    ping("last");
    await until("the last answer", () => answered().includes("last"));
    await until("every answer", () => answered().length >= 26);
    // Which queries of a batch got the tokens is the order they arrived in
    // (node:dgram in Deno sends a burst from one tick last first).
    const batch = (prefix: string) =>
      new Set(answered().filter((t) => t.startsWith(prefix)));
    assert.equal(batch("q").size, 20);
    assert.equal(batch("r").size, 5);
    assert.equal(answered().length, 26, "dropped: no answer");
  } finally {
    await peer.close();
    await node.close();
  }
  assert.equal(clock.pending, 0, "no timer left after close");
});

Deno.test("a query times out when queryTimeoutMs has passed on the clock, not before; an answer or close() ends it first", async () => {
  const clock = new FakeClock();
  const peer = await client();
  /** Transaction id of each query the peer got, answered only when `answer` is set. */
  const asked: Uint8Array[] = [];
  let answer = false;
  peer.socket.on("message", (msg, from) => {
    const message = decodeKrpc(new Uint8Array(msg));
    if (message.type !== "query") return;
    asked.push(message.t);
    if (!answer) return;
    peer.socket.send(
      encodeResponse(message.t, { id: randomNodeId() }),
      from.port,
      from.address,
    );
  });
  const socket = await KrpcSocket.bind({
    host: "127.0.0.1",
    port: 0,
    queryTimeoutMs: 3000,
    maxPending: 2,
    onQuery: () => undefined,
    log: () => {},
    clock,
  });
  const to = { host: "127.0.0.1", port: peer.socket.address().port };
  const query = () => {
    const outcome: { value?: QueryOutcome } = {};
    socket.query(to, { method: "ping", id: randomNodeId() }).then((o) =>
      outcome.value = o
    );
    return outcome;
  };
  try {
    const silent = query();
    await until("the first query", () => asked.length === 1);
    assert.deepEqual(clock.dueTimes, [3000]);
    await clock.advance(2999);
    assert.equal(silent.value, undefined);
    assert.equal(socket.pendingCount, 1);
    await clock.advance(1);
    assert.deepEqual(silent.value, { kind: "timeout" });
    assert.equal(socket.pendingCount, 0);

    answer = true;
    const answered = query();
    await until("the answer", () => answered.value !== undefined);
    assert.equal(answered.value?.kind, "reply");
    assert.equal(clock.pending, 0, "the answer cleared its timeout");

    answer = false;
    const open = [query(), query()];
    await until("two more queries", () => asked.length === 4);
    assert.deepEqual(clock.dueTimes, [6000, 6000]);
    const busy = query();
    await clock.advance(0);
    assert.deepEqual(busy.value, { kind: "busy" }, "maxPending outstanding");
    await socket.close();
    await clock.advance(0);
    assert.deepEqual(open.map((o) => o.value?.kind), ["timeout", "timeout"]);
    assert.equal(clock.pending, 0, "close() cleared the timeouts");
  } finally {
    await socket.close();
    await peer.close();
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
    queryTimeoutMs: 10_000, // a bound on loopback I/O only
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
