// PortMapper against fake gateways on 127.0.0.1: a PCP / NAT-PMP server on a
// UDP port, an SSDP responder and an IGD on HTTP. Mapping, renewal with the
// same nonce, restart detection, fallback, conflicts, deletion at close, and
// gateways that answer garbage, nothing, or the wrong thing.
//
// The sockets are real; every wait of the mapper (retransmits, renewals,
// timeouts, the SSDP search) and the fake gateways' epochs run on a FakeClock,
// which moves only when a test advances it. So the schedules are asserted to
// the millisecond, and a loaded machine slows the tests down but cannot make
// a retransmit or a renewal come early or late. What the tests wait for in
// real time is I/O on loopback (`until`), bounded only to fail rather than hang.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  PortMapper,
  type PortMapperOptions,
} from "../../src/nat/port_mapper.ts";
import { discoverGateways } from "../../src/nat/upnp_client.ts";
import { FakeClock } from "../helpers/fake_clock.ts";

const LOOPBACK = "127.0.0.1";
/** Epochs start high, so that a restart (back to 0) is plain to both epoch rules. */
const EPOCH_OFFSET = 1000;

interface FakeMapping {
  protocol: number;
  internalPort: number;
  externalPort: number;
  nonce?: string;
}

/** A NAT-PMP and PCP server as RFC 6886 and 6887 describe, on a loopback port. */
class FakePortControl {
  readonly mappings = new Map<string, FakeMapping>();
  /** Every request, with the clock's time it arrived at and the lifetime it asks (0: a delete). */
  readonly requests: {
    version: number;
    opcode: number;
    bytes: Uint8Array;
    at: number;
    lifetime?: number;
  }[] = [];
  /**
   * "full": PCP and NAT-PMP; "natpmp": answers PCP with "unsupported
   * version"; "natpmp-only": never answers PCP; "pcp-header-error": answers
   * PCP with a 24-byte MALFORMED_REQUEST header; "garbage"; "silent".
   */
  mode:
    | "full"
    | "natpmp"
    | "natpmp-only"
    | "pcp-header-error"
    | "garbage"
    | "silent" = "full";
  /** Deletes are answered as if the mapping were renewed, and it stays. */
  keepOnDelete = false;
  /** This many UDP map requests are refused (NO_RESOURCES / out of resources). */
  refuseUdp = 0;
  /** The external address PCP answers carry (IPv4-mapped 10.77.0.1). */
  pcpExternal = new Uint8Array([
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0xff,
    0xff,
    10,
    77,
    0,
    1,
  ]);
  #started: number;
  #nextPort = 40000;

  private constructor(
    readonly socket: dgram.Socket,
    readonly port: number,
    readonly clock: FakeClock,
  ) {
    this.#started = clock.now();
    socket.on("message", (msg, rinfo) => {
      const bytes = new Uint8Array(msg);
      const view = new DataView(bytes.buffer);
      const lifetime = bytes[0] === 2 && bytes.length >= 8
        ? view.getUint32(4)
        : bytes[0] === 0 && bytes[1] !== 0 && bytes.length >= 12
        ? view.getUint32(8)
        : undefined;
      this.requests.push({
        version: bytes[0],
        opcode: bytes[1],
        bytes,
        at: clock.now(),
        lifetime,
      });
      for (const reply of this.#answer(bytes)) {
        socket.send(reply, rinfo.port, rinfo.address);
      }
    });
  }

  static async start(clock: FakeClock): Promise<FakePortControl> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, resolve));
    return new FakePortControl(socket, socket.address().port, clock);
  }

  /** Loses every mapping and starts a new epoch, as a rebooted router does. */
  restart(): void {
    this.mappings.clear();
    this.#started = this.clock.now() + EPOCH_OFFSET * 1000;
  }

  close(): void {
    this.socket.close();
  }

  get #epoch(): number {
    return Math.floor((this.clock.now() - this.#started) / 1000) +
      EPOCH_OFFSET;
  }

  #answer(req: Uint8Array): Uint8Array[] {
    if (this.mode === "silent") return [];
    if (this.mode === "garbage") {
      return [
        new Uint8Array([1, 2, 3]),
        crypto.getRandomValues(new Uint8Array(60)).fill(2, 0, 1),
        new Uint8Array(16), // version 0, opcode 0: not a response
        new Uint8Array(1200).fill(2, 0, 1),
      ];
    }
    if (req[0] === 2 && this.mode === "natpmp") {
      return [this.#header(0, 128 + req[1], 1)];
    }
    if (req[0] === 2 && this.mode === "natpmp-only") return [];
    if (req[0] === 2 && this.mode === "pcp-header-error") {
      const reply = new Uint8Array(24);
      reply.set([2, 0x80 + req[1], 0, 3]); // MALFORMED_REQUEST
      new DataView(reply.buffer).setUint32(8, this.#epoch);
      return [reply];
    }
    if (req[0] === 2) return [this.#pcp(req)];
    if (req[0] === 0 && req[1] === 0) {
      const reply = this.#header(0, 128, 0, 12);
      reply.set([10, 77, 0, 1], 8);
      return [reply];
    }
    return [this.#natPmp(req)];
  }

  #header(version: number, opcode: number, result: number, length = 8) {
    const reply = new Uint8Array(length);
    const view = new DataView(reply.buffer);
    reply[0] = version;
    reply[1] = opcode;
    view.setUint16(2, result);
    view.setUint32(4, this.#epoch);
    return reply;
  }

  #natPmp(req: Uint8Array): Uint8Array {
    const view = new DataView(req.buffer, req.byteOffset);
    const protocol = req[1] === 2 ? 6 : 17;
    const internalPort = view.getUint16(4);
    const lifetime = view.getUint32(8);
    const key = `${protocol}:${internalPort}`;
    const reply = this.#header(0, 128 + req[1], 0, 16);
    const out = new DataView(reply.buffer);
    out.setUint16(8, internalPort);
    if (protocol === 17 && this.refuseUdp > 0) {
      this.refuseUdp--;
      out.setUint16(2, 4); // out of resources
      return reply;
    }
    const kept = this.mappings.get(key);
    if (lifetime === 0 && kept && this.keepOnDelete) {
      out.setUint16(10, kept.externalPort);
      out.setUint32(12, 3600);
      return reply;
    }
    if (lifetime === 0) {
      this.mappings.delete(key);
      return reply;
    }
    const external = this.mappings.get(key)?.externalPort ??
      this.#assign(view.getUint16(6));
    this.mappings.set(key, { protocol, internalPort, externalPort: external });
    out.setUint16(10, external);
    out.setUint32(12, lifetime);
    return reply;
  }

  #pcp(req: Uint8Array): Uint8Array {
    const view = new DataView(req.buffer, req.byteOffset);
    const lifetime = view.getUint32(4);
    const nonce = Array.from(req.subarray(24, 36)).join(",");
    const protocol = req[36];
    const internalPort = view.getUint16(40);
    const key = `${protocol}:${internalPort}`;
    const reply = new Uint8Array(60);
    reply.set(req.subarray(24, 60), 24);
    const out = new DataView(reply.buffer);
    reply[0] = 2;
    reply[1] = 0x81;
    out.setUint32(8, this.#epoch);
    const existing = this.mappings.get(key);
    if (existing && existing.nonce !== nonce) {
      reply[3] = 2; // NOT_AUTHORIZED: someone else's mapping
      return reply;
    }
    if (protocol === 17 && this.refuseUdp > 0) {
      this.refuseUdp--;
      reply[3] = 8; // NO_RESOURCES
      return reply;
    }
    if (lifetime === 0 && existing && this.keepOnDelete) {
      out.setUint32(4, 3600);
      out.setUint16(42, existing.externalPort);
      reply.set(this.pcpExternal, 44);
      return reply;
    }
    if (lifetime === 0) {
      this.mappings.delete(key);
      return reply;
    }
    const external = existing?.externalPort ?? this.#assign(view.getUint16(42));
    this.mappings.set(key, {
      protocol,
      internalPort,
      externalPort: external,
      nonce,
    });
    out.setUint32(4, lifetime);
    out.setUint16(42, external);
    reply.set(this.pcpExternal, 44);
    return reply;
  }

  #assign(suggested: number): number {
    const taken = [...this.mappings.values()].some((m) =>
      m.externalPort === suggested
    );
    return suggested && !taken && suggested !== 6881
      ? suggested
      : this.#nextPort++;
  }
}

/** Collects log lines; waits for one to appear. */
class Log {
  readonly lines: string[] = [];
  readonly line = (text: string) => {
    this.lines.push(text);
  };

  async waitFor(pattern: RegExp): Promise<string> {
    await until(
      `a log line ${pattern} in:\n${this.lines.join("\n")}`,
      () => this.lines.some((l) => pattern.test(l)),
    );
    return this.lines.find((l) => pattern.test(l))!;
  }

  count(pattern: RegExp): number {
    return this.lines.filter((l) => pattern.test(l)).length;
  }
}

function options(
  log: Log,
  clock: FakeClock,
  more: Partial<PortMapperOptions>,
): PortMapperOptions {
  return {
    method: "auto",
    gateway: LOOPBACK,
    tcpPort: 6881,
    leaseSeconds: 4,
    log: log.line,
    clock,
    ...more,
  };
}

/**
 * Waits for I/O on loopback to happen. The bound only turns a hang into a
 * failure; no timing under test depends on it.
 */
async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A promise's outcome, as soon as I/O has settled it (bounded as `until` is). */
async function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  let outcome: { value: T } | { error: unknown } | undefined;
  promise.then((value) => outcome = { value }, (error) => outcome = { error });
  await until(what, () => outcome !== undefined);
  if ("error" in outcome!) throw outcome.error;
  return outcome!.value;
}

/** Moves the clock to `at`, then waits until the fake gateway has `count` requests. */
async function stepTo(
  clock: FakeClock,
  at: number,
  gateway: FakePortControl,
  count: number,
): Promise<void> {
  await clock.advance(at - clock.now());
  await until(`request ${count}`, () => gateway.requests.length === count);
}

Deno.test("PortMapper, PCP: maps TCP and UDP, renews at half the lease with the same nonce, remaps after a restart, deletes at close", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      method: "pcp",
      udpPort: 6881,
      serverPort: gateway.port,
    }),
  );
  try {
    // 6881 is "taken" on the fake, so the gateway assigns another port.
    const mapped = await settled(mapper.ready(3000), "the TCP mapping");
    assert.deepEqual(
      {
        externalAddress: mapped?.externalAddress,
        externalPort: mapped?.externalPort,
        internalPort: mapped?.internalPort,
        method: mapped?.method,
      },
      {
        externalAddress: "10.77.0.1",
        externalPort: 40000,
        internalPort: 6881,
        method: "pcp",
      },
    );
    assert.match(
      log.lines[0],
      /^port mapping: 10\.77\.0\.1:40000 forwards to TCP port 6881 \(PCP via 127\.0\.0\.1, lease 4 s\)$/,
    );
    await log.waitFor(/forwards to UDP port 6881/);
    const first = gateway.requests[0].bytes;
    assert.deepEqual(
      first.subarray(8, 24),
      new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]),
      "the client address is ours",
    );
    const tcpNonce = gateway.mappings.get("6:6881")!.nonce;
    // Both leases renew at half the 4 s lease, and nothing else is due.
    assert.deepEqual(clock.dueTimes, [2000, 2000]);
    const before = gateway.requests.length;
    await clock.advance(2000);
    // answered, each is due again 2 s on (an unanswered one would resend at 5000)
    await until("both renewals", () => clock.dueTimes.join() === "4000,4000");
    const renewals = gateway.requests.slice(before);
    assert.deepEqual(renewals.map((r) => r.at), [2000, 2000]);
    assert.deepEqual(
      renewals.map((r) => r.bytes[36]).sort((a, b) => a - b),
      [6, 17],
      "one renewal each of TCP and UDP",
    );
    const tcpRenewal = renewals.find((r) => r.bytes[36] === 6)!;
    // suggesting the assigned port, with the same nonce
    assert.equal(new DataView(tcpRenewal.bytes.buffer).getUint16(42), 40000);
    assert.equal(gateway.mappings.get("6:6881")!.nonce, tcpNonce);

    gateway.restart();
    await clock.advance(2000);
    await log.waitFor(/lost its mappings \(restarted\?\)/);
    await until("both mapped again", () => gateway.mappings.size === 2);
    assert.equal(gateway.mappings.get("6:6881")!.nonce, tcpNonce);
    assert.equal(log.count(/lost its mappings/), 1, "one restart, one line");
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0, "both deleted with their nonces");
  assert.equal(
    log.count(/^port mapping: deleted (TCP|UDP) 10\.77\.0\.1:\d+$/),
    2,
  );
  assert.equal(clock.pending, 0, "close() left no timer");
});

Deno.test("PortMapper, auto: a NAT-PMP-only gateway is used at once, its mapping deleted at close", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.mode = "natpmp";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      tcpPort: 7000,
      serverPort: gateway.port,
      ssdpTarget: silentTarget(),
    }),
  );
  try {
    // The clock stands still: mapped with no retransmit waited for, as the
    // PCP request was answered "unsupported version".
    const mapped = await settled(mapper.ready(3000), "the mapping");
    assert.deepEqual(
      [mapped?.externalAddress, mapped?.externalPort, mapped?.method],
      ["10.77.0.1", 7000, "natpmp"],
    );
    assert.equal(gateway.requests[0].version, 2);
    assert.deepEqual(
      gateway.requests.slice(1).map((r) => [r.version, r.opcode, r.at]),
      [
        [0, 0, 0], // external address
        [0, 2, 0], // map TCP
      ],
    );
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
  const last = gateway.requests.at(-1)!.bytes;
  assert.deepEqual(Array.from(last), [
    0,
    2,
    0,
    0,
    0x1b,
    0x58,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
});

Deno.test("PortMapper, NAT-PMP: a restarted gateway (epoch back to 0) is noticed at the renewal", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, { method: "natpmp", serverPort: gateway.port }),
  );
  try {
    assert.equal(
      (await settled(mapper.ready(3000), "the mapping"))?.method,
      "natpmp",
    );
    assert.deepEqual(clock.dueTimes, [2000], "the renewal at half the lease");
    gateway.restart();
    const before = gateway.requests.length;
    await clock.advance(2000);
    await log.waitFor(/127\.0\.0\.1 lost its mappings/);
    assert.equal(gateway.mappings.size, 1);
    // §3.7: the external address is asked again, and it has not changed.
    assert.deepEqual(
      gateway.requests.slice(before).map((r) => [r.version, r.opcode, r.at]),
      [[0, 2, 2000], [0, 0, 2000]],
    );
    assert.equal(log.count(/is now reached at/), 0, log.lines.join("\n"));
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});

Deno.test("PortMapper, auto: garbage from the gateway is logged once a kind, the probes resent after 250 and 500 ms, and nothing is mapped", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.mode = "garbage";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      serverPort: gateway.port,
      ssdpTarget: silentTarget(),
    }),
  );
  const ready = mapper.ready(5000);
  try {
    // PCP: sent at 0, 250 and 750 ms, given up at 1750; then NAT-PMP likewise.
    await stepTo(clock, 0, gateway, 1);
    await stepTo(clock, 250, gateway, 2);
    await stepTo(clock, 750, gateway, 3);
    await log.waitFor(/malformed PCP answer/);
    await stepTo(clock, 1750, gateway, 4);
    await stepTo(clock, 2000, gateway, 5);
    await stepTo(clock, 2500, gateway, 6);
    await log.waitFor(/malformed NAT-PMP answer/);
    await clock.advance(1000);
    assert.equal(await settled(ready, "the end of the probes"), null);
    assert.deepEqual(gateway.requests.map((r) => [r.version, r.at]), [
      [2, 0],
      [2, 250],
      [2, 750],
      [0, 1750],
      [0, 2000],
      [0, 2500],
    ]);
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(
    log.count(/ignored a malformed PCP answer from 127\.0\.0\.1/),
    1,
  );
  assert.equal(
    log.count(/ignored a malformed NAT-PMP answer from 127\.0\.0\.1/),
    1,
  );
  assert.match(
    log.lines.at(-1)!,
    /^port mapping: not available \(PCP: no PCP answer from 127\.0\.0\.1; NAT-PMP: no NAT-PMP answer from 127\.0\.0\.1; UPnP: no gateway answered the SSDP search\); peers outside the router may not reach port 6881$/,
  );
});

Deno.test("PortMapper: close() during the first probe returns at once and sends no delete", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.mode = "silent";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, { method: "pcp", serverPort: gateway.port }),
  );
  await until("the MAP request", () => gateway.requests.length === 1);
  // with the clock standing still: close() waits for no retransmit or budget
  await settled(mapper.close(), "close");
  assert.equal(clock.pending, 0, "nothing left to resend");
  assert.equal(await mapper.ready(10), null);
  gateway.close();
  assert.equal(
    gateway.requests.length,
    1,
    "one MAP sent, no retransmit, no delete",
  );
  assert.deepEqual(log.lines, []);
});

Deno.test("PortMapper: no PCP or NAT-PMP without a usable gateway address", async () => {
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, new FakeClock(), {
      method: "natpmp",
      gateway: "router.example",
    }),
  );
  assert.equal(await settled(mapper.ready(1000), "the failure"), null);
  await settled(mapper.close(), "close");
  assert.match(
    log.lines[0],
    /NAT-PMP: gateway router\.example is not an IPv4 address/,
  );
});

/** An Internet Gateway Device on loopback: SSDP answers and a SOAP control URL. */
class FakeIgd {
  /** "TCP:port" -> internal port, lease asked and when (on the clock), for mappings to us. */
  readonly mappings = new Map<
    string,
    { internalPort: number; lease: number; at: number }
  >();
  /** M-SEARCH requests answered. */
  searches = 0;
  readonly actions: string[] = [];
  /** "control path action" of every SOAP call. */
  readonly calls: string[] = [];
  /** External ports someone else holds: AddPortMapping answers 718. */
  readonly taken = new Set<number>([6881]);
  /** AddPortMapping of an entry that exists answers 718, even to its own client. */
  refuseExisting = false;
  /** Also a WANPPPConnection (/ctl/PPP), listed after a WANIPConnection whose link is down. */
  pppBesideDownIp = false;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #ssdp: dgram.Socket;

  private constructor(ssdp: dgram.Socket, readonly clock: FakeClock) {
    this.#ssdp = ssdp;
    this.#server = Deno.serve(
      { hostname: LOOPBACK, port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
    ssdp.on("message", (msg, rinfo) => {
      if (!new TextDecoder().decode(msg).startsWith("M-SEARCH")) return;
      this.searches++;
      const answers = [
        "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n", // not a gateway
        answer(`http://10.9.9.9:${this.httpPort}/desc.xml`), // elsewhere
        answer(`http://${LOOPBACK}:${this.httpPort}/desc.xml`),
      ];
      for (const text of answers) {
        ssdp.send(new TextEncoder().encode(text), rinfo.port, rinfo.address);
      }
    });
  }

  static async start(clock: FakeClock): Promise<FakeIgd> {
    const ssdp = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => ssdp.bind(0, LOOPBACK, resolve));
    return new FakeIgd(ssdp, clock);
  }

  get httpPort(): number {
    return this.#server.addr.port;
  }

  get ssdpTarget() {
    return { address: LOOPBACK, port: this.#ssdp.address().port };
  }

  async close(): Promise<void> {
    this.#ssdp.close();
    await this.#server.shutdown();
  }

  async #handle(request: Request): Promise<Response> {
    const service = (type: string, path: string) =>
      `<service><serviceType>urn:schemas-upnp-org:service:${type}</serviceType>` +
      `<controlURL>${path}</controlURL></service>`;
    if (request.method === "GET") {
      return new Response(
        "<root><device><deviceList><device><serviceList>" +
          service("WANIPConnection:1", "/ctl/IPConn") +
          (this.pppBesideDownIp
            ? service("WANPPPConnection:1", "/ctl/PPP")
            : "") +
          "</serviceList></device></deviceList></device></root>",
      );
    }
    const action =
      /#(\w+)"$/.exec(request.headers.get("SOAPAction") ?? "")?.[1] ?? "";
    const body = await request.text();
    const arg = (name: string) =>
      new RegExp(`<${name}>([^<]*)</${name}>`).exec(body)?.[1] ?? "";
    const path = new URL(request.url).pathname;
    this.actions.push(action);
    this.calls.push(`${path} ${action}`);
    if (this.pppBesideDownIp && path === "/ctl/IPConn") {
      return action === "GetExternalIPAddress"
        ? soap(action, "<NewExternalIPAddress>0.0.0.0</NewExternalIPAddress>")
        : fault(501);
    }
    const key = `${arg("NewProtocol")}:${arg("NewExternalPort")}`;
    if (action === "AddPortMapping") {
      if (this.taken.has(Number(arg("NewExternalPort")))) return fault(718);
      if (this.refuseExisting && this.mappings.has(key)) return fault(718);
      if (arg("NewInternalClient") !== LOOPBACK) return fault(606);
      this.mappings.set(key, {
        internalPort: Number(arg("NewInternalPort")),
        lease: Number(arg("NewLeaseDuration")),
        at: this.clock.now(),
      });
      return soap(action, "");
    }
    if (action === "GetSpecificPortMappingEntry") {
      const mapping = this.mappings.get(key);
      if (!mapping) return fault(714);
      // the seconds left, as a gateway tells them (0: permanent)
      const left = mapping.lease &&
        Math.ceil(mapping.lease - (this.clock.now() - mapping.at) / 1000);
      return soap(
        action,
        `<NewInternalPort>${mapping.internalPort}</NewInternalPort>` +
          `<NewInternalClient>${LOOPBACK}</NewInternalClient>` +
          `<NewLeaseDuration>${left}</NewLeaseDuration>`,
      );
    }
    if (action === "DeletePortMapping") {
      return this.mappings.delete(key) ? soap(action, "") : fault(714);
    }
    if (action === "GetExternalIPAddress") {
      return soap(
        action,
        "<NewExternalIPAddress>10.77.0.1</NewExternalIPAddress>",
      );
    }
    return fault(401);
  }
}

function answer(location: string): string {
  return "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
    `LOCATION: ${location}\r\n\r\n`;
}

function soap(action: string, values: string): Response {
  return new Response(
    `<s:Envelope><s:Body><u:${action}Response>${values}</u:${action}Response></s:Body></s:Envelope>`,
  );
}

function fault(code: number): Response {
  return new Response(
    "<s:Envelope><s:Body><s:Fault><faultstring>UPnPError</faultstring><detail><UPnPError>" +
      `<errorCode>${code}</errorCode><errorDescription>e${code}</errorDescription>` +
      "</UPnPError></detail></s:Fault></s:Body></s:Envelope>",
    { status: 500 },
  );
}

Deno.test("PortMapper, UPnP: a conflict moves to another port, a lost mapping is added again at the renewal, all deleted at close", async () => {
  const clock = new FakeClock();
  const igd = await FakeIgd.start(clock);
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      method: "upnp",
      ssdpTarget: igd.ssdpTarget,
      random: () => 0.25, // the other port: 49152 + 0.25 * 16384
    }),
  );
  try {
    const mapped = await settled(mapper.ready(4000), "the mapping");
    assert.equal(mapped?.method, "upnp");
    assert.equal(mapped?.externalAddress, "10.77.0.1");
    assert.equal(mapped?.externalPort, 53248);
    assert.deepEqual(igd.actions, [
      "GetExternalIPAddress",
      "AddPortMapping", // 6881: 718 ConflictInMappingEntry
      "AddPortMapping",
    ]);
    assert.deepEqual([...igd.mappings.entries()], [["TCP:53248", {
      internalPort: 6881,
      lease: 4,
      at: 0,
    }]]);
    assert.equal(log.count(/ignored a malformed SSDP answer/), 1);
    assert.equal(
      log.count(
        /ignored an SSDP answer from 127\.0\.0\.1 whose description is on 10\.9\.9\.9/,
      ),
      1,
    );
    // The router forgets it: the renewal at half the lease finds it gone and
    // adds it back.
    igd.mappings.clear();
    assert.deepEqual(clock.dueTimes, [2000]);
    await clock.advance(2000);
    await log.waitFor(/127\.0\.0\.1 lost its mappings/);
    assert.equal(igd.mappings.get("TCP:53248")?.at, 2000);
    assert.deepEqual(igd.actions.slice(3, 6), [
      "GetSpecificPortMappingEntry", // 714 NoSuchEntryInArray
      "GetExternalIPAddress",
      "AddPortMapping",
    ]);
  } finally {
    await settled(mapper.close(), "close");
    await igd.close();
  }
  assert.equal(igd.mappings.size, 0);
  assert.equal(igd.actions.at(-1), "DeletePortMapping");
  assert.equal(clock.pending, 0, "close() left no timer");
});

/** An SSDP target on loopback that nobody answers. */
function silentTarget() {
  return { address: LOOPBACK, port: 9 };
}

Deno.test("PortMapper, PCP: a lease with a non-IPv4 external address is refused, and close() still works", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.pcpExternal = new Uint8Array(16); // "::", not IPv4-mapped
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, { method: "pcp", serverPort: gateway.port }),
  );
  try {
    assert.equal(await settled(mapper.ready(3000), "the refusal"), null);
    assert.match(
      log.lines.join("\n"),
      /PCP: 127\.0\.0\.1 gave 0:0:0:0:0:0:0:0, not an IPv4 address, as the external address/,
    );
  } finally {
    await settled(mapper.close(), "close"); // must not throw
    gateway.close();
  }
  assert.doesNotMatch(log.lines.join("\n"), /stopped|RangeError/);
});

Deno.test("PortMapper, auto: when PCP gets no answer at all, UPnP goes before NAT-PMP and maps as PCP's probe ends", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.mode = "silent";
  const igd = await FakeIgd.start(clock);
  igd.taken.clear();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      serverPort: gateway.port,
      ssdpTarget: igd.ssdpTarget,
    }),
  );
  const ready = mapper.ready(4000);
  try {
    // The default gateway's SSDP answer ends the search, and its timers go.
    await until(
      "the SSDP search",
      () => igd.searches === 1 && clock.dueTimes.join() === "250,4000",
    );
    assert.equal(gateway.requests.length, 1);
    await stepTo(clock, 250, gateway, 2);
    await stepTo(clock, 750, gateway, 3);
    // PCP's probe ends at 1.75 s; NAT-PMP's would take another 1.75 s.
    await clock.advance(1000);
    const mapped = await settled(ready, "the UPnP mapping");
    assert.equal(mapped?.method, "upnp", log.lines.join("\n"));
    assert.equal(igd.mappings.get("TCP:6881")?.at, 1750);
    assert.ok(
      gateway.requests.every((r) => r.version === 2),
      "no NAT-PMP request",
    );
  } finally {
    await settled(mapper.close(), "close");
    await igd.close();
    gateway.close();
  }
  assert.equal(igd.mappings.size, 0);
});

Deno.test("PortMapper, auto: a NAT-PMP server that ignores PCP is still found, after UPnP", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.mode = "natpmp-only";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      serverPort: gateway.port,
      ssdpTarget: silentTarget(),
    }),
  );
  const ready = mapper.ready(4000);
  try {
    await stepTo(clock, 0, gateway, 1);
    await stepTo(clock, 250, gateway, 2);
    await stepTo(clock, 750, gateway, 3);
    // at 1750 PCP gives up; the SSDP search found nothing at 1300
    await clock.advance(1000);
    assert.equal((await settled(ready, "the mapping"))?.method, "natpmp");
    assert.deepEqual(
      gateway.requests.map((r) => [r.version, r.at]),
      [[2, 0], [2, 250], [2, 750], [0, 1750], [0, 1750]],
    );
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});

Deno.test("PortMapper, auto: a PCP error answer of the header alone fails PCP at once", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.mode = "pcp-header-error";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      serverPort: gateway.port,
      ssdpTarget: silentTarget(),
    }),
  );
  try {
    // mapped with the clock standing still: PCP waited for no retransmit
    assert.equal(
      (await settled(mapper.ready(3000), "the mapping"))?.method,
      "natpmp",
    );
    assert.equal(
      gateway.requests.filter((r) => r.version === 2).length,
      1,
      "one PCP request",
    );
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
});

Deno.test("PortMapper: a delete answered with a lifetime is not confirmed (PCP and NAT-PMP), after its retransmits", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.keepOnDelete = true;
  const logs = { pcp: new Log(), natpmp: new Log() };
  const mappers = [
    PortMapper.start(
      options(logs.pcp, clock, { method: "pcp", serverPort: gateway.port }),
    ),
    PortMapper.start(
      options(logs.natpmp, clock, {
        method: "natpmp",
        tcpPort: 7001,
        serverPort: gateway.port,
      }),
    ),
  ];
  const deletes = () => gateway.requests.filter((r) => r.lifetime === 0);
  try {
    for (const mapper of mappers) {
      assert.ok(await settled(mapper.ready(3000), "a mapping"));
    }
  } finally {
    const closing = Promise.all(mappers.map((m) => m.close()));
    // each delete goes out at 0, 250 and 750 ms, and is given up at 1750
    for (const [at, count] of [[0, 2], [250, 4], [750, 6]]) {
      await clock.advance(at - clock.now());
      await until(`delete ${count}`, () => deletes().length === count);
    }
    await clock.advance(1000);
    await settled(closing, "close");
    gateway.close();
  }
  assert.deepEqual(deletes().map((r) => r.at), [0, 0, 250, 250, 750, 750]);
  for (const log of [logs.pcp, logs.natpmp]) {
    assert.equal(log.count(/^port mapping: deleted/), 0, log.lines.join("\n"));
    assert.equal(
      log.count(/127\.0\.0\.1 did not confirm deleting TCP 10\.77\.0\.1:/),
      1,
      log.lines.join("\n"),
    );
  }
});

Deno.test("PortMapper: a UDP mapping refused at the start is tried again after a quarter of the lease", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  gateway.refuseUdp = 1;
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      method: "pcp",
      udpPort: 6890,
      serverPort: gateway.port,
    }),
  );
  try {
    assert.ok(await settled(mapper.ready(3000), "the TCP mapping"));
    await log.waitFor(
      /UDP port 6890 not mapped \(127\.0\.0\.1 answered NO_RESOURCES\); retrying every 1 s/,
    );
    // the UDP retry, and the TCP renewal at half the lease
    assert.deepEqual(clock.dueTimes, [1000, 2000]);
    await clock.advance(1000);
    await log.waitFor(/forwards to UDP port 6890/);
    assert.ok(gateway.mappings.has("17:6890"));
    assert.deepEqual(
      gateway.requests.filter((r) => r.bytes[36] === 17).map((r) => r.at),
      [0, 1000],
    );
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});

Deno.test("PortMapper, UPnP: a WAN connection that is down is passed over for the next service", async () => {
  const clock = new FakeClock();
  const igd = await FakeIgd.start(clock);
  igd.pppBesideDownIp = true;
  igd.taken.clear();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, { method: "upnp", ssdpTarget: igd.ssdpTarget }),
  );
  try {
    const mapped = await settled(mapper.ready(4000), "the mapping");
    assert.equal(mapped?.externalAddress, "10.77.0.1", log.lines.join("\n"));
    assert.deepEqual(igd.calls, [
      "/ctl/IPConn GetExternalIPAddress", // 0.0.0.0: not connected
      "/ctl/PPP GetExternalIPAddress",
      "/ctl/PPP AddPortMapping",
    ]);
  } finally {
    await settled(mapper.close(), "close");
    await igd.close();
  }
  assert.equal(igd.mappings.size, 0);
  assert.equal(igd.calls.at(-1), "/ctl/PPP DeletePortMapping");
});

Deno.test("PortMapper, UPnP: a renewal refused with 718 for our own entry keeps it for what is left of it, nothing left behind", async () => {
  const clock = new FakeClock();
  const igd = await FakeIgd.start(clock);
  igd.refuseExisting = true;
  igd.taken.clear();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, {
      method: "upnp",
      ssdpTarget: igd.ssdpTarget,
      leaseSeconds: 10,
    }),
  );
  try {
    assert.equal(
      (await settled(mapper.ready(4000), "the mapping"))?.externalPort,
      6881,
    );
    assert.deepEqual(clock.dueTimes, [5000], "the renewal at half the lease");
    await clock.advance(5000);
    // Our entry with 5 s left, then 718: the lease is kept, and renewed at
    // half of what is left (the HTTP timeouts of the renewal are at 7000).
    await until("the renewal", () => clock.dueTimes.join() === "7500");
    assert.deepEqual(igd.actions, [
      "GetExternalIPAddress",
      "AddPortMapping",
      "GetSpecificPortMappingEntry",
      "AddPortMapping", // 718
    ]);
    assert.deepEqual([...igd.mappings.keys()], ["TCP:6881"]);
    assert.equal(log.count(/is now reached at/), 0, log.lines.join("\n"));
  } finally {
    await settled(mapper.close(), "close");
    await igd.close();
  }
  assert.equal(igd.mappings.size, 0, "no mapping left on the gateway");
});

Deno.test("SSDP search: sent again after 300 ms, over at 1.3 s; each answering address counts once; the default gateway's answer ends it at once", async () => {
  const clock = new FakeClock();
  // One host answers with many descriptions, as a host that wants to crowd
  // out the router would; then a malformed answer, whose report shows that
  // the others arrived.
  const flood = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => flood.bind(0, LOOPBACK, resolve));
  const searchedAt: number[] = [];
  const answering: Promise<void>[] = [];
  flood.on("message", (_msg, rinfo) => {
    searchedAt.push(clock.now());
    const answers = Array.from(
      { length: 8 },
      (_, i) => answer(`http://${LOOPBACK}:9/d${i}.xml`),
    );
    const send = (text: string) =>
      flood.send(new TextEncoder().encode(text), rinfo.port, rinfo.address);
    // one a turn: a burst sent in one turn arrives in reverse order
    answering.push((async () => {
      for (const text of [...answers, "HTTP/1.1 200 OK\r\n\r\n"]) {
        send(text);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    })());
  });
  const target = { address: LOOPBACK, port: flood.address().port };
  try {
    const reports: string[] = [];
    const search = discoverGateways(
      target,
      (key) => reports.push(key),
      new AbortController().signal,
      clock,
    );
    await until("the first answers", () => reports.length === 1);
    await clock.advance(300);
    await until("the answers to the second search", () => reports.length === 2);
    assert.deepEqual(searchedAt, [0, 300]);
    await clock.advance(999);
    assert.deepEqual(clock.dueTimes, [1300], "the search is still on");
    await clock.advance(1);
    const found = await settled(search, "the end of the search");
    assert.deepEqual(found.map((u) => u.pathname), ["/d0.xml"]);
    assert.deepEqual(reports, ["ssdp-malformed", "ssdp-malformed"]);

    const preferred = await settled(
      discoverGateways(
        target,
        () => {},
        new AbortController().signal,
        clock,
        LOOPBACK,
      ),
      "the default gateway's answer",
    );
    // with the clock standing still: it ended at the gateway's answer
    assert.deepEqual(preferred.map((u) => u.pathname), ["/d0.xml"]);
    assert.equal(clock.pending, 0);
  } finally {
    await Promise.all(answering);
    flood.close();
  }
});

Deno.test("PortMapper, PCP: an unanswered renewal is resent after 3 and 6 s, given up after 12 more, and retried after a quarter of the lease", async () => {
  const clock = new FakeClock();
  const gateway = await FakePortControl.start(clock);
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, clock, { method: "pcp", serverPort: gateway.port }),
  );
  try {
    assert.ok(await settled(mapper.ready(3000), "the mapping"));
    gateway.mode = "silent";
    await stepTo(clock, 2000, gateway, 2);
    await stepTo(clock, 5000, gateway, 3);
    await stepTo(clock, 11_000, gateway, 4);
    await clock.advance(12_000);
    await log.waitFor(
      /^port mapping: renewing TCP port 6881 failed \(no PCP answer from 127\.0\.0\.1\); retrying every 1 s$/,
    );
    assert.deepEqual(clock.dueTimes, [24_000]);
    gateway.mode = "full";
    await stepTo(clock, 24_000, gateway, 5);
    // answered: the next renewal at half the lease again
    await until("the renewal", () => clock.dueTimes.join() === "26000");
    assert.deepEqual(
      gateway.requests.map((r) => r.at),
      [0, 2000, 5000, 11_000, 24_000],
    );
    assert.equal(log.count(/lost its mappings/), 0, "no restart seen");
  } finally {
    await settled(mapper.close(), "close");
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});
