// DHT fuzz: thousands of random and malformed KRPC datagrams sent to a DhtNode on
// 127.0.0.1. None is fatal, each is counted, the only answers are KRPC errors (as many as
// the per-IP reply budget allows: the rest are dropped and counted), and the node still
// answers a valid ping afterwards, once the budget has refilled.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { encodeQuery } from "../../src/dht/krpc.ts";
import { decodeKrpc } from "../../src/dht/krpc.ts";
import { DhtNode } from "../../src/dht/dht_node.ts";
import { randomNodeId } from "../../src/dht/node_id.ts";

const ascii = new TextEncoder();

/** A deterministic generator, so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
}

const VALID = [
  encodeQuery(ascii.encode("aa"), { method: "ping", id: randomNodeId() }),
  encodeQuery(ascii.encode("bb"), {
    method: "find_node",
    id: randomNodeId(),
    target: randomNodeId(),
  }),
  encodeQuery(ascii.encode("cc"), {
    method: "get_peers",
    id: randomNodeId(),
    infoHash: randomNodeId(),
  }),
  encodeQuery(ascii.encode("dd"), {
    method: "announce_peer",
    id: randomNodeId(),
    infoHash: randomNodeId(),
    port: 6881,
    impliedPort: false,
    token: ascii.encode("forged!!"),
  }),
];

/** Datagrams no well-formed KRPC reading can accept. */
function malformed(random: () => number, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const id = "a".repeat(20);
  const fixed = [
    "",
    "d",
    "de",
    "le",
    "i1e",
    "4:spam",
    "d1:t2:aae", // no y
    "d1:y1:qe", // no t
    "d1:t2:aa1:y1:ze",
    "d1:q4:ping1:t2:aa1:y1:qe", // no a
    "d1:ad2:id19:aaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe",
    `d1:ad2:idi5ee1:q4:ping1:t2:aa1:y1:qe`,
    `d1:ad2:id20:${id}e1:q9:find_node1:t2:aa1:y1:qe`,
    `d1:ad2:id20:${id}6:target3:abce1:q9:find_node1:t2:aa1:y1:qe`,
    `d1:ad2:id20:${id}9:info_hashi1ee1:q9:get_peers1:t2:aa1:y1:qe`,
    `d1:ad2:id20:${id}9:info_hash20:${id}4:port3:abc5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe`,
    `d1:ad2:id20:${id}12:implied_porti7e9:info_hash20:${id}5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe`,
    `d1:rd2:id20:${id}5:nodes25:${"x".repeat(25)}e1:t2:zz1:y1:re`,
    `d1:rd2:id20:${id}6:valuesi3ee1:t2:zz1:y1:re`,
    "d1:eli201ee1:t2:zz1:y1:ee",
    "d1:e4:oops1:t2:zz1:y1:ee",
    `d1:t${"9".repeat(15)}:x1:y1:qe`, // a string length past the end
    "l".repeat(5000) + "e".repeat(5000), // nesting far too deep
    "d1:ti-0e1:y1:qe",
    `d1:t40:${"t".repeat(40)}1:y1:qe`, // transaction id too long to answer
    "d1:t2:aa1:t2:aa1:y1:qe", // duplicate key
  ];
  out.push(...fixed.map((s) => ascii.encode(s)));
  while (out.length < count) {
    const kind = random();
    if (kind < 0.4) {
      // random bytes, a quarter of them starting like a dictionary
      const bytes = new Uint8Array(Math.floor(random() * 300));
      for (let i = 0; i < bytes.length; i++) bytes[i] = random() * 256;
      if (random() < 0.25 && bytes.length > 0) bytes[0] = 0x64;
      out.push(bytes);
    } else if (kind < 0.8) {
      // a valid query cut short
      const valid = VALID[Math.floor(random() * VALID.length)];
      out.push(valid.subarray(0, Math.floor(random() * valid.length)));
    } else {
      // a valid query with trailing bytes
      const valid = VALID[Math.floor(random() * VALID.length)];
      const extra = new Uint8Array(1 + Math.floor(random() * 8)).fill(0x78);
      out.push(new Uint8Array([...valid, ...extra]));
    }
  }
  return out;
}

/** Valid queries with a few bytes changed: some stay valid, none may hurt. */
function mutated(random: () => number, count: number): Uint8Array[] {
  return Array.from({ length: count }, () => {
    const copy = new Uint8Array(VALID[Math.floor(random() * VALID.length)]);
    const flips = 1 + Math.floor(random() * 3);
    for (let i = 0; i < flips; i++) {
      copy[Math.floor(random() * copy.length)] = random() * 256;
    }
    return copy;
  });
}

Deno.test("thousands of malformed datagrams are counted and never fatal; a ping still gets its answer", async () => {
  const node = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [],
    stateFile: null,
    log: () => {},
    queryTimeoutMs: 200,
  });
  const client = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => client.bind(0, "127.0.0.1", resolve));
  const replies: Uint8Array[] = [];
  client.on("message", (msg) => replies.push(new Uint8Array(msg)));
  const waitUntil = async (what: string, done: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(`${what}: ${JSON.stringify(node.stats())}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  };
  try {
    const random = prng(42);
    const bad = malformed(random, 4000);
    // in batches, each counted before the next goes, so the receive buffer never overflows
    for (let i = 0; i < bad.length; i += 50) {
      const batch = bad.slice(i, i + 50);
      for (const d of batch) client.send(d, node.port, "127.0.0.1");
      await waitUntil(
        `malformed datagrams ${i}..${i + batch.length} counted`,
        () => node.stats().malformedPackets >= i + batch.length,
      );
    }
    assert.equal(node.stats().malformedPackets, bad.length);
    assert.equal(node.stats().queriesAnswered, 0);
    // the only answers to malformed datagrams are KRPC errors (BEP 5: 203)
    for (const reply of replies) {
      const message = decodeKrpc(reply);
      assert.equal(message.type, "error");
      assert.ok(message.type === "error" && message.code === 203);
    }
    assert.ok(replies.length > 0, "queries with a readable t were told");

    const noise = mutated(random, 2000);
    for (let i = 0; i < noise.length; i += 50) {
      for (const d of noise.slice(i, i + 50)) {
        client.send(d, node.port, "127.0.0.1");
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(node.stats().rateLimited > 0, "the flood was rate limited");
    replies.length = 0;
    const ping = encodeQuery(ascii.encode("zz"), {
      method: "ping",
      id: randomNodeId(),
    });
    // the flood spent this IP's budget: a ping may be dropped until it refills (5/s),
    // so it is sent again, as a real node retries a query that timed out
    const retry = setInterval(
      () => client.send(ping, node.port, "127.0.0.1"),
      100,
    );
    try {
      await waitUntil("the ping answered", () =>
        replies.some((r) => {
          const message = decodeKrpc(r);
          return message.type === "response" &&
            new TextDecoder().decode(message.t) === "zz";
        }));
    } finally {
      clearInterval(retry);
    }
    const stats = node.stats();
    assert.ok(
      stats.malformedPackets <= bad.length + noise.length,
      JSON.stringify(stats),
    );
    assert.ok(stats.queriesAnswered >= 1);
  } finally {
    await new Promise<void>((resolve) => client.close(() => resolve()));
    await node.close();
  }
});
