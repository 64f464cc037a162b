// NAT-PMP (RFC 6886) and PCP (RFC 6887) messages, byte by byte as the RFCs'
// packet diagrams lay them out; hostile datagrams; the epoch rules.

import assert from "node:assert/strict";
import { EpochWatch } from "../../src/nat/epoch.ts";
import {
  decodeNatPmpResponse,
  encodeExternalAddressRequest,
  encodeMapRequest as encodeNatPmpMap,
} from "../../src/nat/natpmp.ts";
import {
  decodePcpResponse,
  encodeMapRequest as encodePcpMap,
} from "../../src/nat/pcp.ts";

const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);

Deno.test("NAT-PMP: external address request is version 0, opcode 0 (RFC 6886 §3.2)", () => {
  assert.deepEqual(encodeExternalAddressRequest(), new Uint8Array([0, 0]));
});

Deno.test("NAT-PMP: map request fields (RFC 6886 §3.3)", () => {
  assert.deepEqual(
    encodeNatPmpMap("tcp", 6881, 6882, 7200),
    new Uint8Array([
      0,
      2,
      0,
      0, // version, opcode 2 = TCP, reserved
      0x1a,
      0xe1,
      0x1a,
      0xe2, // internal 6881, suggested external 6882
      0x00,
      0x00,
      0x1c,
      0x20, // lifetime 7200
    ]),
  );
  // §3.4: a delete is lifetime 0 with suggested external port 0; UDP is opcode 1.
  assert.deepEqual(
    encodeNatPmpMap("udp", 6881, 0, 0),
    new Uint8Array([0, 1, 0, 0, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]),
  );
});

Deno.test("NAT-PMP: responses decode (RFC 6886 §3.2, §3.3)", () => {
  assert.deepEqual(
    decodeNatPmpResponse(
      new Uint8Array([0, 128, 0, 0, 0, 0, 0, 42, 10, 77, 0, 1]),
    ),
    {
      kind: "address",
      resultCode: 0,
      epoch: 42,
      externalAddress: "10.77.0.1",
    },
  );
  assert.deepEqual(
    decodeNatPmpResponse(
      new Uint8Array([
        0,
        130,
        0,
        0,
        0,
        0,
        1,
        0, // TCP response, success, epoch 256
        0x1a,
        0xe1,
        0x1a,
        0xe2,
        0,
        0,
        0x0e,
        0x10, // 6881 -> 6882, 3600 s
      ]),
    ),
    {
      kind: "map",
      protocol: "tcp",
      resultCode: 0,
      epoch: 256,
      internalPort: 6881,
      externalPort: 6882,
      lifetimeSeconds: 3600,
    },
  );
  // A refusal still carries the ports; result code 2 (§3.5).
  const refused = decodeNatPmpResponse(
    new Uint8Array([0, 129, 0, 2, 0, 0, 0, 9, 0x1a, 0xe1, 0, 0, 0, 0, 0, 0]),
  );
  assert.equal(refused.kind === "map" && refused.resultCode, 2);
  // An error to the address request may stop after the epoch.
  assert.deepEqual(
    decodeNatPmpResponse(new Uint8Array([0, 128, 0, 3, 0, 0, 0, 1])),
    {
      kind: "address",
      resultCode: 3,
      epoch: 1,
      externalAddress: "0.0.0.0",
    },
  );
});

Deno.test("NAT-PMP: short, foreign and wrong datagrams are malformed, never thrown", () => {
  const cases: [number[], RegExp][] = [
    [[], /0 bytes/],
    [[0, 128, 0], /3 bytes/],
    [[2, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], /version 2/],
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], /opcode 0/], // a request echoed back
    [[0, 131, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], /opcode 131/],
    [[0, 128, 0, 0, 0, 0, 0, 1, 10, 0], /address response of 10 bytes/],
    [[0, 130, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1, 0x1a], /map response of 11/],
    [[0, 130, 0, 4, 0, 0, 0, 1], /error 4 without the mapping/],
  ];
  for (const [bytes, reason] of cases) {
    const r = decodeNatPmpResponse(new Uint8Array(bytes));
    assert.equal(r.kind, "malformed", JSON.stringify(bytes));
    assert.match(r.kind === "malformed" ? r.reason : "", reason);
  }
  // Random bytes of every length up to 64 never throw.
  for (let length = 0; length <= 64; length++) {
    const bytes = crypto.getRandomValues(new Uint8Array(length));
    decodeNatPmpResponse(bytes);
    decodePcpResponse(bytes);
  }
});

Deno.test("PCP: MAP request fields (RFC 6887 §7.1, §11.1)", () => {
  const packet = encodePcpMap({
    clientAddress: "192.168.77.2",
    nonce: NONCE,
    protocol: "tcp",
    internalPort: 6881,
    suggestedExternalPort: 6881,
    suggestedExternalAddress: "0.0.0.0",
    lifetimeSeconds: 3600,
  });
  const mapped = (
    a: number[],
  ) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a];
  assert.deepEqual(
    packet,
    new Uint8Array([
      2,
      1,
      0,
      0, // version 2, R=0 opcode MAP, reserved
      0,
      0,
      0x0e,
      0x10, // requested lifetime 3600
      ...mapped([192, 168, 77, 2]), // client address, IPv4-mapped
      ...NONCE,
      6,
      0,
      0,
      0, // protocol TCP, reserved
      0x1a,
      0xe1,
      0x1a,
      0xe1, // internal and suggested external port
      ...mapped([0, 0, 0, 0]), // no preferred external address
    ]),
  );
  assert.equal(packet.length, 60);
  assert.throws(
    () =>
      encodePcpMap({
        clientAddress: "fe80::1",
        nonce: NONCE,
        protocol: "udp",
        internalPort: 1,
        suggestedExternalPort: 0,
        suggestedExternalAddress: "0.0.0.0",
        lifetimeSeconds: 0,
      }),
    RangeError,
  );
});

/** A MAP response as §7.2 and §11.1 lay it out. */
function pcpResponse(fields: {
  version?: number;
  opcode?: number;
  result?: number;
  lifetime?: number;
  epoch?: number;
  protocol?: number;
  length?: number;
}): Uint8Array {
  const bytes = new Uint8Array(fields.length ?? 60);
  const view = new DataView(bytes.buffer);
  bytes[0] = fields.version ?? 2;
  bytes[1] = fields.opcode ?? 0x81;
  bytes[3] = fields.result ?? 0;
  view.setUint32(4, fields.lifetime ?? 120);
  view.setUint32(8, fields.epoch ?? 77);
  if (bytes.length >= 60) {
    bytes.set(NONCE, 24);
    bytes[36] = fields.protocol ?? 6;
    view.setUint16(40, 6881);
    view.setUint16(42, 40000);
    bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 77, 0, 1], 44);
  }
  return bytes;
}

Deno.test("PCP: MAP response decodes, options after it are skipped", () => {
  assert.deepEqual(decodePcpResponse(pcpResponse({})), {
    kind: "map",
    resultCode: 0,
    lifetimeSeconds: 120,
    epoch: 77,
    nonce: NONCE,
    protocol: "tcp",
    internalPort: 6881,
    externalPort: 40000,
    externalAddress: "10.77.0.1",
  });
  const withOption = decodePcpResponse(pcpResponse({ length: 68 }));
  assert.equal(withOption.kind, "map");
  const udp = decodePcpResponse(pcpResponse({ protocol: 17, result: 8 }));
  assert.equal(udp.kind === "map" && udp.protocol, "udp");
  assert.equal(udp.kind === "map" && udp.resultCode, 8);
});

Deno.test("PCP: a NAT-PMP gateway's answer is 'unsupported version' (RFC 6887 §9)", () => {
  // RFC 6886 §3.5: version 0, opcode 128 + the request's, result 1, epoch.
  assert.deepEqual(
    decodePcpResponse(new Uint8Array([0, 129, 0, 1, 0, 0, 0, 5])),
    { kind: "unsupported-version", version: 0 },
  );
  assert.deepEqual(
    decodePcpResponse(pcpResponse({ version: 1, result: 1, length: 24 })),
    { kind: "unsupported-version", version: 1 },
  );
});

Deno.test("PCP: an error answer of the header alone gives its result code (RFC 6887 §7.2, §8.3)", () => {
  // MALFORMED_REQUEST, as a server that could not read the request answers it.
  assert.deepEqual(decodePcpResponse(pcpResponse({ result: 3, length: 24 })), {
    kind: "header-error",
    resultCode: 3,
    opcode: 1,
  });
  assert.deepEqual(
    decodePcpResponse(pcpResponse({ result: 2, length: 28, opcode: 0x82 })),
    { kind: "header-error", resultCode: 2, opcode: 2 },
  );
});

Deno.test("PCP: hostile datagrams are malformed", () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(3), /3 bytes/],
    [pcpResponse({ version: 7 }), /version 7/],
    [pcpResponse({ length: 24 }), /24 bytes, a MAP response has 60/],
    [pcpResponse({ length: 20, result: 3 }), /shorter than a PCP header/],
    [pcpResponse({ length: 62 }), /not a PCP message length/],
    [pcpResponse({ length: 1104 }), /not a PCP message length/],
    [pcpResponse({ opcode: 0x01 }), /a request/],
    [pcpResponse({ opcode: 0x82 }), /opcode 2/], // PEER
    [new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0]), /version 0/], // a request, not an answer
  ];
  for (const [bytes, reason] of cases) {
    const r = decodePcpResponse(bytes);
    assert.equal(r.kind, "malformed");
    assert.match(r.kind === "malformed" ? r.reason : "", reason);
  }
});

Deno.test("epoch, NAT-PMP rule: the gateway's clock must keep up 7/8 of ours, less 2 s (RFC 6886 §3.6)", () => {
  const watch = new EpochWatch("natpmp");
  assert.equal(watch.lostState(1000, 0), false); // the first is valid
  assert.equal(watch.lostState(1100, 100_000), false);
  // 100 s later the epoch must be at least 1100 + 87 - 2.
  assert.equal(watch.lostState(1185, 200_000), false);
  assert.equal(watch.lostState(1185 + 84, 300_000), true);
  // After a restart the small epoch is the new reference.
  assert.equal(watch.lostState(3, 301_000), true);
  assert.equal(watch.lostState(13, 311_000), false);
});

Deno.test("epoch, PCP rule: backwards by more than 1 s, or deltas apart by more than 2 s + 1/16 (RFC 6887 §8.5)", () => {
  const watch = new EpochWatch("pcp");
  assert.equal(watch.lostState(500, 0), false);
  assert.equal(watch.lostState(499, 0), false); // reordering: back by 1 s
  assert.equal(watch.lostState(597, 100_000), false); // 100 vs 98: within 2 + 6
  assert.equal(watch.lostState(697 - 9, 200_000), true); // the server lagged
  assert.equal(watch.lostState(688 + 120, 300_000), true); // ran ahead
  assert.equal(watch.lostState(10, 301_000), true); // went back: a restart
});
