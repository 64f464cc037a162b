// Iterative lookups: the IterativeLookup state machine alone, then a DhtNode against
// scripted in-process nodes on 127.0.0.1 (bounded concurrency, values streamed out,
// silent nodes timed out, announce_peer to the closest nodes with their own tokens).

import assert from "node:assert/strict";
import dgram from "node:dgram";
import { decode } from "../../src/bencode/decode.ts";
import { encode } from "../../src/bencode/encode.ts";
import type { BDict } from "../../src/bencode/types.ts";
import { encodeNodes, type NodeContact } from "../../src/dht/contacts.ts";
import { DhtNode } from "../../src/dht/dht_node.ts";
import { loadDhtState, saveDhtState } from "../../src/dht/state_file.ts";
import { IterativeLookup } from "../../src/dht/lookup.ts";
import {
  compareDistance,
  type NodeId,
  nodeIdHex,
  randomIdAtPrefix,
  randomNodeId,
} from "../../src/dht/node_id.ts";

Deno.test("IterativeLookup keeps alpha in flight, ends when the K closest answered, and bounds queries", () => {
  const target = new Uint8Array(20) as NodeId;
  const at = (bits: number, port: number): NodeContact => ({
    id: randomIdAtPrefix(target, bits),
    host: "127.0.0.1",
    port,
  });
  const seeds = [at(1, 1), at(2, 2), at(3, 3), at(4, 4)];
  const lookup = new IterativeLookup(target, randomNodeId(), seeds, {
    alpha: 3,
    maxQueries: 20,
    maxCandidates: 50,
  });
  const first = lookup.next();
  assert.deepEqual(first.map((c) => c.port), [4, 3, 2], "closest first");
  assert.deepEqual(lookup.next(), [], "alpha reached");
  // the closest one answers with 10 closer nodes
  const closer = Array.from({ length: 10 }, (_, i) => at(10 + i, 100 + i));
  lookup.replied(first[0], closer, new Uint8Array([1]));
  const second = lookup.next();
  assert.deepEqual(second.map((c) => c.port), [109]);
  lookup.replied(second[0], []);
  lookup.failed(first[1]);
  lookup.failed(first[2]);
  let rounds = 0;
  while (!lookup.done) {
    for (const c of lookup.next()) lookup.replied(c, []);
    assert.ok(++rounds < 20);
  }
  // ports 102..109 are the 8 closest: all asked; 100, 101 and seed 1 never were
  assert.equal(lookup.queried, 11);
  assert.deepEqual(
    lookup.closestWithTokens().map((c) => c.contact.port),
    [4],
    "only the node that gave a token",
  );

  const bounded = new IterativeLookup(target, randomNodeId(), seeds, {
    alpha: 2,
    maxQueries: 3,
    maxCandidates: 50,
  });
  let n = 1000;
  while (!bounded.done) {
    for (const c of bounded.next()) {
      bounded.replied(c, [at(30, n++), at(31, n++)]);
    }
  }
  assert.equal(bounded.queried, 3);
});

/** A node that answers by script: a fixed id, a token of its own, nodes and values. */
interface ScriptedNode {
  contact: NodeContact;
  token: Uint8Array;
  getPeers: number;
  announced: { port: number; token: Uint8Array }[];
  close(): Promise<void>;
}

interface Script {
  silent?: boolean;
  values?: Uint8Array[];
  /** get_peers answers with nodes as well as values. */
  alsoNodes?: boolean;
  /** find_node answers with no nodes. */
  findNothing?: boolean;
  /** The nodes it hands out (decided after all nodes exist). */
  nodes: () => NodeContact[];
  inFlight: { now: number; max: number };
  replyDelayMs: number;
}

async function scriptedNode(id: NodeId, script: Script): Promise<ScriptedNode> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const node: ScriptedNode = {
    contact: { id, host: "127.0.0.1", port: socket.address().port },
    token: new Uint8Array(crypto.getRandomValues(new Uint8Array(6))),
    getPeers: 0,
    announced: [],
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  const timers = new Set<ReturnType<typeof setTimeout>>();
  socket.on("message", (msg, rinfo) => {
    if (script.silent) return;
    const message = decode(new Uint8Array(msg)) as BDict;
    const method = new TextDecoder().decode(message.q as Uint8Array);
    const args = message.a as BDict;
    const r: BDict = { id };
    if (method === "get_peers") {
      node.getPeers++;
      r.token = node.token;
      if (script.values) r.values = script.values;
      if (!script.values || script.alsoNodes) {
        r.nodes = encodeNodes(script.nodes());
      }
    } else if (method === "find_node") {
      r.nodes = encodeNodes(script.findNothing ? [] : script.nodes());
    } else if (method === "announce_peer") {
      node.announced.push({
        port: args.port as number,
        token: args.token as Uint8Array,
      });
    }
    const reply = encode({ t: message.t, y: "r", r });
    if (method !== "get_peers") {
      socket.send(reply, rinfo.port, rinfo.address);
      return;
    }
    script.inFlight.now++;
    script.inFlight.max = Math.max(script.inFlight.max, script.inFlight.now);
    const timer = setTimeout(() => {
      timers.delete(timer);
      script.inFlight.now--;
      socket.send(reply, rinfo.port, rinfo.address);
    }, script.replyDelayMs);
    timers.add(timer);
  });
  const close = node.close;
  node.close = async () => {
    for (const timer of timers) clearTimeout(timer);
    await close();
  };
  return node;
}

Deno.test("a DhtNode looks up through scripted nodes: alpha 3, values streamed, silent nodes skipped, announce to the closest", async () => {
  const target = randomNodeId();
  const inFlight = { now: 0, max: 0 };
  const nodes: ScriptedNode[] = [];
  const closestTo = (ids: ScriptedNode[]) => () =>
    [...ids]
      .sort((a, b) => compareDistance(a.contact.id, b.contact.id, target))
      .slice(0, 8)
      .map((n) => n.contact);
  // 20 nodes at growing closeness; every 5th never answers (the closest among them);
  // the next two have peers
  for (let i = 0; i < 20; i++) {
    nodes.push(
      await scriptedNode(randomIdAtPrefix(target, 2 + i * 3), {
        silent: i % 5 === 4,
        values: i === 17 || i === 18
          ? [new Uint8Array([10, 0, 0, i, 0x1a, 0xe1])]
          : undefined,
        nodes: () => closestTo(nodes)(),
        inFlight,
        replyDelayMs: 20,
      }),
    );
  }
  const bootstrap = nodes[0];
  const dht = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [`127.0.0.1:${bootstrap.contact.port}`],
    stateFile: null,
    log: () => {},
    queryTimeoutMs: 300,
  });
  try {
    const streamed: string[] = [];
    const started = performance.now();
    const result = await dht.lookup(target, (peers) => {
      streamed.push(...peers.map((p) => `${p.host}:${p.port}`));
    }, 6889);
    const elapsed = performance.now() - started;
    assert.deepEqual(streamed.sort(), ["10.0.0.17:6881", "10.0.0.18:6881"]);
    assert.equal(result.peers, 2);
    assert.ok(result.queried >= 8 && result.queried <= 64, `${result.queried}`);
    assert.ok(inFlight.max <= 3, `${inFlight.max} get_peers at once`);
    assert.ok(inFlight.max >= 2, "queries did overlap");
    assert.ok(elapsed < 5000, `${elapsed} ms`);
    // announce_peer went to the closest answering nodes, each with its own token
    const answering = nodes.filter((n) => n.getPeers > 0);
    const closest = [...answering]
      .sort((a, b) => compareDistance(a.contact.id, b.contact.id, target))
      .slice(0, 8);
    for (const node of nodes) {
      const expected = closest.includes(node);
      assert.equal(
        node.announced.length,
        expected ? 1 : 0,
        nodeIdHex(node.contact.id),
      );
      if (expected) {
        assert.equal(node.announced[0].port, 6889);
        assert.deepEqual(node.announced[0].token, node.token);
      }
    }
    // every node that answered is in the routing table, none of the silent ones
    const stats = dht.stats();
    assert.ok(stats.nodes >= closest.length, JSON.stringify(stats));
    assert.equal(stats.goodNodes, stats.nodes);
  } finally {
    await dht.close();
    await Promise.all(nodes.map((n) => n.close()));
  }
});

Deno.test("IterativeLookup takes one candidate per IP, the first seen, except on loopback", () => {
  const target = new Uint8Array(20) as NodeId;
  const at = (host: string, bits: number, port: number): NodeContact => ({
    id: randomIdAtPrefix(target, bits),
    host,
    port,
  });
  const lookup = new IterativeLookup(target, randomNodeId(), [
    at("198.51.100.9", 1, 1),
    at("127.0.0.1", 2, 2),
    at("127.0.0.1", 3, 3),
  ], { alpha: 20, maxQueries: 20, maxCandidates: 50 });
  const first = lookup.next();
  assert.deepEqual(first.map((c) => c.port).sort(), [1, 2, 3]);
  // one host claims the closest ids at many ports: only its first one counts
  lookup.replied(first[0], [
    ...Array.from({ length: 10 }, (_, i) => at("203.0.113.5", 100 + i, 10 + i)),
    at("198.51.100.9", 150, 99), // the seed's IP again
    at("127.0.0.1", 120, 50),
    at("127.0.0.1", 121, 51),
  ]);
  assert.deepEqual(lookup.next().map((c) => c.port).sort((a, b) => a - b), [
    10,
    50,
    51,
  ]);
});

/** 6-byte compact peer. */
function peer(host: string, port: number): Uint8Array {
  return new Uint8Array([
    ...host.split(".").map(Number),
    port >> 8,
    port & 255,
  ]);
}

Deno.test("a lookup drops unusable addresses, reads <= 100 values a reply and reports <= 1000, and survives a throwing onPeers", async () => {
  // the lookup starts from the one saved node and walks the chain below through all
  const own = randomNodeId();
  const target = randomIdAtPrefix(own, 0);
  const dir = await Deno.makeTempDir({ prefix: "dht-values-" });
  const stateFile = `${dir}/dht.dat`;
  const inFlight = { now: 0, max: 0 };
  const nodes: ScriptedNode[] = [];
  const bad = ["0.1.2.3", "224.0.0.251", "239.1.1.1", "240.0.0.1"]
    .concat(["255.255.255.255"]);
  // a chain: each node names the next two, closer ones, so the lookup walks all of them
  for (let i = 0; i < 16; i++) {
    const values = [
      ...bad.map((host) => peer(host, 6881)),
      peer("127.0.0.9", 6881), // usable: the reply came from loopback
      ...Array.from({ length: 150 }, (_, j) => peer(`10.${i}.${j}.1`, 6881)),
    ];
    nodes.push(
      await scriptedNode(randomIdAtPrefix(target, 2 + i * 4), {
        values,
        alsoNodes: true,
        findNothing: true,
        nodes: () => nodes.slice(i + 1, i + 3).map((n) => n.contact),
        inFlight,
        replyDelayMs: 1,
      }),
    );
  }
  await saveDhtState(stateFile, { id: own, nodes: [nodes[0].contact] });
  const logs: string[] = [];
  const dht = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [],
    stateFile,
    log: (line) => logs.push(line),
    queryTimeoutMs: 300,
  });
  try {
    const streamed: string[] = [];
    let calls = 0;
    const result = await dht.lookup(target, (peers) => {
      assert.ok(peers.length <= 100, `${peers.length} from one reply`);
      streamed.push(...peers.map((p) => p.host));
      if (++calls === 1) throw new Error("a consumer bug");
    });
    assert.equal(result.queried, 16); // 16 x 95 values: more than 1000
    assert.equal(result.peers, 1000);
    assert.equal(streamed.length, 1000);
    assert.ok(streamed.includes("127.0.0.9"));
    for (const host of bad) assert.ok(!streamed.includes(host), host);
    assert.ok(logs.some((l) => /a consumer bug/.test(l)), logs.join("\n"));
  } finally {
    await dht.close();
    await Promise.all(nodes.map((n) => n.close()));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bootstrap router (named) seeds the lookup but is kept out of the table and the state file; one given by IP is an ordinary node", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dht-router-" });
  const stateFile = `${dir}/dht.dat`;
  const inFlight = { now: 0, max: 0 };
  const nodes: ScriptedNode[] = [];
  for (let i = 0; i < 5; i++) {
    nodes.push(
      await scriptedNode(randomNodeId(), {
        nodes: () => nodes.map((n) => n.contact),
        inFlight,
        replyDelayMs: 1,
      }),
    );
  }
  const router = nodes[0].contact;
  const dht = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [`router.test:${router.port}`],
    stateFile,
    log: () => {},
    queryTimeoutMs: 300,
    resolve: () => Promise.resolve("127.0.0.1"),
  });
  const byIp = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: [`127.0.0.1:${router.port}`],
    stateFile: null,
    log: () => {},
    queryTimeoutMs: 300,
  });
  try {
    await byIp.lookup(randomNodeId(), () => {});
    assert.equal(byIp.stats().nodes, 5, JSON.stringify(byIp.stats()));
    await dht.lookup(randomNodeId(), () => {});
    assert.equal(dht.stats().nodes, 4, JSON.stringify(dht.stats()));
  } finally {
    await dht.close();
    await byIp.close();
    await Promise.all(nodes.map((n) => n.close()));
  }
  const state = await loadDhtState(stateFile);
  const ports = state!.nodes.map((n) => n.port).sort();
  assert.deepEqual(ports, nodes.slice(1).map((n) => n.contact.port).sort());
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a run that reaches nobody keeps the saved nodes; a run that does drops the silent ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dht-offline-" });
  const stateFile = `${dir}/dht.dat`;
  const inFlight = { now: 0, max: 0 };
  const silent: ScriptedNode[] = [];
  for (let i = 0; i < 5; i++) {
    silent.push(
      await scriptedNode(randomNodeId(), {
        silent: true,
        nodes: () => [],
        inFlight,
        replyDelayMs: 1,
      }),
    );
  }
  const alive = await scriptedNode(randomNodeId(), {
    nodes: () => [],
    inFlight,
    replyDelayMs: 1,
  });
  const start = () =>
    DhtNode.start({
      host: "127.0.0.1",
      port: 0,
      bootstrap: [],
      stateFile,
      log: () => {},
      queryTimeoutMs: 100,
    });
  const savedPorts = async () =>
    (await loadDhtState(stateFile))!.nodes.map((n) => n.port).sort();
  try {
    const id = randomNodeId();
    await saveDhtState(stateFile, { id, nodes: silent.map((n) => n.contact) });
    const offline = await start();
    await offline.lookup(randomNodeId(), () => {}); // waits for the bootstrap
    assert.equal(offline.stats().goodNodes, 0);
    await offline.close();
    assert.deepEqual(
      await savedPorts(),
      silent.map((n) => n.contact.port).sort(),
    );
    assert.deepEqual((await loadDhtState(stateFile))!.id, id);

    await saveDhtState(stateFile, {
      id,
      nodes: [...silent, alive].map((n) => n.contact),
    });
    const online = await start();
    await online.lookup(randomNodeId(), () => {});
    await online.close();
    assert.deepEqual(await savedPorts(), [alive.contact.port]);
  } finally {
    await Promise.all([...silent, alive].map((n) => n.close()));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("close() does not wait for a bootstrap router's name to resolve", async () => {
  const asked: string[] = [];
  const dht = await DhtNode.start({
    host: "127.0.0.1",
    port: 0,
    bootstrap: ["router.example.invalid:6881"],
    stateFile: null,
    log: () => {},
    // a resolver that never answers (no network here)
    resolve: (host) => {
      asked.push(host);
      return new Promise(() => {});
    },
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(asked, ["router.example.invalid"]);
  const started = performance.now();
  await dht.close();
  assert.ok(performance.now() - started < 1000);
});
