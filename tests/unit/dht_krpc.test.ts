// KRPC codec (BEP 5) against the message examples of BEP 5, compact contacts, node ids
// and the XOR metric, and BEP 42 ids against the examples of BEP 42.

import assert from "node:assert/strict";
import {
  decodeKrpc,
  encodeError,
  encodeQuery,
  encodeResponse,
  ErrorCode,
  KrpcError,
} from "../../src/dht/krpc.ts";
import {
  decodeNodes,
  encodeNodes,
  type NodeContact,
} from "../../src/dht/contacts.ts";
import {
  asNodeId,
  bep42NodeId,
  compareDistance,
  isBep42NodeId,
  type NodeId,
  randomIdAtPrefix,
  randomNodeId,
  sharedPrefixBits,
} from "../../src/dht/node_id.ts";

const ascii = new TextEncoder();
const text = new TextDecoder("latin1");
const bytes = (s: string) => ascii.encode(s);
const id = (s: string) => asNodeId(bytes(s))!;
const t = bytes("aa");

// BEP 5 "KRPC Protocol" examples, byte for byte
const PING = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
const PONG = "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
const FIND_NODE =
  "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe";
const GET_PEERS =
  "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";
const GET_PEERS_VALUES =
  "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re";
const ANNOUNCE =
  "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
const ERROR = "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";

Deno.test("encodes the BEP 5 example queries exactly", () => {
  const me = id("abcdefghij0123456789");
  const other = id("mnopqrstuvwxyz123456");
  assert.equal(text.decode(encodeQuery(t, { method: "ping", id: me })), PING);
  assert.equal(
    text.decode(
      encodeQuery(t, { method: "find_node", id: me, target: other }),
    ),
    FIND_NODE,
  );
  assert.equal(
    text.decode(
      encodeQuery(t, { method: "get_peers", id: me, infoHash: other }),
    ),
    GET_PEERS,
  );
  assert.equal(
    text.decode(encodeQuery(t, {
      method: "announce_peer",
      id: me,
      infoHash: other,
      port: 6881,
      impliedPort: true,
      token: bytes("aoeusnth"),
    })),
    ANNOUNCE,
  );
  assert.equal(
    text.decode(encodeError(t, ErrorCode.generic, "A Generic Error Ocurred")),
    ERROR,
  );
  assert.equal(text.decode(encodeResponse(t, { id: other })), PONG);
});

Deno.test("decodes the BEP 5 example messages", () => {
  const ping = decodeKrpc(bytes(PING));
  assert.equal(ping.type, "query");
  assert.ok(ping.type === "query" && ping.query.method === "ping");
  assert.deepEqual(ping.t, t);

  const announce = decodeKrpc(bytes(ANNOUNCE));
  assert.ok(announce.type === "query");
  assert.deepEqual(announce.query, {
    method: "announce_peer",
    id: id("abcdefghij0123456789"),
    infoHash: id("mnopqrstuvwxyz123456"),
    port: 6881,
    impliedPort: true,
    token: bytes("aoeusnth"),
  });

  const values = decodeKrpc(bytes(GET_PEERS_VALUES));
  assert.ok(values.type === "response");
  assert.deepEqual(values.reply.token, bytes("aoeusnth"));
  // "axje.u" and "idhtnm" as 4 address bytes and a big-endian port
  assert.deepEqual(values.reply.values, [
    { host: "97.120.106.101", port: 0x2e75 },
    { host: "105.100.104.116", port: 0x6e6d },
  ]);

  const error = decodeKrpc(bytes(ERROR));
  assert.deepEqual(error, {
    type: "error",
    t,
    code: 201,
    message: "A Generic Error Ocurred",
  });
});

Deno.test("BEP 5's find_node response example is a placeholder (9 bytes of nodes) and is rejected", () => {
  const example =
    "d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re";
  assert.throws(() => decodeKrpc(bytes(example)), /multiple of 26/);
});

Deno.test("a response echoes the requester's address as ip (BEP 42) and round-trips nodes", () => {
  const nodes: NodeContact[] = [
    { id: randomNodeId(), host: "127.0.0.1", port: 6881 },
    { id: randomNodeId(), host: "10.1.2.3", port: 65535 },
  ];
  const datagram = encodeResponse(t, {
    id: randomNodeId(),
    nodes,
    token: bytes("tok"),
  }, { host: "1.2.3.4", port: 0x1a2b });
  const message = decodeKrpc(datagram);
  assert.ok(message.type === "response");
  assert.deepEqual(message.reply.nodes, nodes);
  assert.deepEqual(message.ip, { host: "1.2.3.4", port: 0x1a2b });
  assert.equal(encodeNodes(nodes).length, 52);
  assert.equal(decodeNodes(new Uint8Array(25)), undefined);
});

Deno.test("malformed messages throw KrpcError; readable queries carry the BEP 5 error code", () => {
  const cases: [string, number | undefined, RegExp][] = [
    ["", undefined, /not bencode/],
    ["i5e", undefined, /not a dictionary/],
    ["d1:y1:qe", undefined, /transaction id/],
    ["d1:t2:aa1:y1:xe", undefined, /not q, r or e/],
    // non-canonical bencode (a zero-padded integer) is dropped, not guessed at
    ["d1:ai03e1:t2:aa1:y1:qe", undefined, /not bencode/],
    ["d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", 203, /id is not 20 bytes/],
    ["d1:ad2:id20:abcdefghij0123456789e1:q3:put1:t2:aa1:y1:qe", 204, /unknown/],
    [
      "d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe",
      203,
      /target/,
    ],
    [
      "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
      203,
      /port/,
    ],
    ["d1:rd2:id2:xxe1:t2:aa1:y1:re", undefined, /response id/],
    ["d1:eli201ee1:t2:aa1:y1:ee", undefined, /\[code, message\]/],
  ];
  for (const [message, code, why] of cases) {
    try {
      decodeKrpc(bytes(message));
      assert.fail(`${message} was accepted`);
    } catch (error) {
      assert.ok(error instanceof KrpcError, `${message}: ${error}`);
      assert.match(error.message, why, message);
      assert.equal(error.query?.code, code, message);
    }
  }
});

Deno.test("XOR distance orders ids; shared prefixes and ids at a prefix", () => {
  const target = new Uint8Array(20) as NodeId;
  const near = new Uint8Array(20);
  near[19] = 1;
  const far = new Uint8Array(20);
  far[0] = 0x80;
  assert.ok(compareDistance(near, far, target) < 0);
  assert.ok(compareDistance(far, near, target) > 0);
  assert.equal(compareDistance(far, far, target), 0);
  assert.equal(sharedPrefixBits(target, far), 0);
  assert.equal(sharedPrefixBits(target, near), 159);
  assert.equal(sharedPrefixBits(target, target), 160);
  const base = randomNodeId();
  for (const bits of [0, 1, 7, 8, 13, 100, 159]) {
    assert.equal(sharedPrefixBits(base, randomIdAtPrefix(base, bits)), bits);
  }
});

Deno.test("BEP 42 ids: the examples of BEP 42 validate, and generated ids do", () => {
  const examples: [string, string][] = [
    ["124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"],
    ["21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"],
    ["65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"],
    ["84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"],
    ["43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"],
  ];
  for (const [ip, hex] of examples) {
    const address = new Uint8Array(ip.split(".").map(Number));
    const nodeId = new Uint8Array(
      hex.match(/../g)!.map((b) => parseInt(b, 16)),
    );
    assert.ok(isBep42NodeId(nodeId, address), ip);
    const wrong = new Uint8Array(address);
    wrong[3] ^= 1;
    assert.ok(!isBep42NodeId(nodeId, wrong), `${ip} with another last byte`);
    const generated = bep42NodeId(address, nodeId[19]);
    assert.deepEqual(generated.subarray(0, 2), nodeId.subarray(0, 2), ip);
    assert.equal(generated[2] & 0xf8, nodeId[2] & 0xf8, ip);
    assert.equal(generated[19], nodeId[19]);
  }
});
