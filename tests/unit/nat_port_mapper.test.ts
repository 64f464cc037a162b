// PortMapper against fake gateways on 127.0.0.1: a PCP / NAT-PMP server on a
// UDP port, an SSDP responder and an IGD on HTTP. Mapping, renewal with the
// same nonce, restart detection, fallback, conflicts, deletion at close, and
// gateways that answer garbage, nothing, or the wrong thing.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  PortMapper,
  type PortMapperOptions,
} from "../../src/nat/port_mapper.ts";
import { discoverGateways } from "../../src/nat/upnp_client.ts";

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
  readonly requests: { version: number; opcode: number; bytes: Uint8Array }[] =
    [];
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
  #started = performance.now();
  #nextPort = 40000;

  private constructor(readonly socket: dgram.Socket, readonly port: number) {
    socket.on("message", (msg, rinfo) => {
      const bytes = new Uint8Array(msg);
      this.requests.push({ version: bytes[0], opcode: bytes[1], bytes });
      for (const reply of this.#answer(bytes)) {
        socket.send(reply, rinfo.port, rinfo.address);
      }
    });
  }

  static async start(): Promise<FakePortControl> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, LOOPBACK, resolve));
    return new FakePortControl(socket, socket.address().port);
  }

  /** Loses every mapping and starts a new epoch, as a rebooted router does. */
  restart(): void {
    this.mappings.clear();
    this.#started = performance.now() + EPOCH_OFFSET * 1000;
  }

  close(): void {
    this.socket.close();
  }

  get #epoch(): number {
    return Math.floor((performance.now() - this.#started) / 1000) +
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

  async waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const found = this.lines.find((l) => pattern.test(l));
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no log line ${pattern} in:\n${this.lines.join("\n")}`);
  }

  count(pattern: RegExp): number {
    return this.lines.filter((l) => pattern.test(l)).length;
  }
}

function options(
  log: Log,
  more: Partial<PortMapperOptions>,
): PortMapperOptions {
  return {
    method: "auto",
    gateway: LOOPBACK,
    tcpPort: 6881,
    leaseSeconds: 4,
    log: log.line,
    ...more,
  };
}

Deno.test("PortMapper, PCP: maps TCP and UDP, renews with the same nonce, remaps after a restart, deletes at close", async () => {
  const gateway = await FakePortControl.start();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "pcp", udpPort: 6881, serverPort: gateway.port }),
  );
  try {
    // 6881 is "taken" on the fake, so the gateway assigns another port.
    const mapped = await mapper.ready(3000);
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
    await log.waitFor(/forwards to UDP port 6881/, 2000);
    const first = gateway.requests[0].bytes;
    assert.deepEqual(
      first.subarray(8, 24),
      new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]),
      "the client address is ours",
    );
    const tcpNonce = gateway.mappings.get("6:6881")!.nonce;
    // The renewal comes at half the 4 s lease, suggesting the assigned port.
    const before = gateway.requests.length;
    await waitUntil(() => gateway.requests.length >= before + 2, 3500);
    const renewal = gateway.requests.slice(before).find((r) =>
      r.bytes[36] === 6
    )!;
    assert.equal(new DataView(renewal.bytes.buffer).getUint16(42), 40000);
    assert.equal(gateway.mappings.get("6:6881")!.nonce, tcpNonce);

    gateway.restart();
    await log.waitFor(/lost its mappings \(restarted\?\)/, 3500);
    await waitUntil(() => gateway.mappings.size === 2, 1000);
    assert.equal(gateway.mappings.get("6:6881")!.nonce, tcpNonce);
    assert.equal(log.count(/lost its mappings/), 1, "one restart, one line");
  } finally {
    await mapper.close();
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0, "both deleted with their nonces");
  assert.equal(
    log.count(/^port mapping: deleted (TCP|UDP) 10\.77\.0\.1:\d+$/),
    2,
  );
});

Deno.test("PortMapper, auto: a NAT-PMP-only gateway is used at once, its mapping deleted at close", async () => {
  const gateway = await FakePortControl.start();
  gateway.mode = "natpmp";
  const log = new Log();
  const began = performance.now();
  const mapper = PortMapper.start(
    options(log, {
      tcpPort: 7000,
      serverPort: gateway.port,
      ssdpTarget: silentTarget(),
    }),
  );
  try {
    const mapped = await mapper.ready(3000);
    assert.deepEqual(
      [mapped?.externalAddress, mapped?.externalPort, mapped?.method],
      ["10.77.0.1", 7000, "natpmp"],
    );
    // The PCP request was answered "unsupported version": no waiting for retries.
    assert.ok(
      performance.now() - began < 1000,
      `${performance.now() - began} ms`,
    );
    assert.equal(gateway.requests[0].version, 2);
    assert.deepEqual(
      gateway.requests.slice(1).map((r) => [r.version, r.opcode]),
      [
        [0, 0], // external address
        [0, 2], // map TCP
      ],
    );
  } finally {
    await mapper.close();
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
  const gateway = await FakePortControl.start();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "natpmp", serverPort: gateway.port }),
  );
  try {
    assert.equal((await mapper.ready(3000))?.method, "natpmp");
    gateway.restart();
    const before = gateway.requests.length;
    await log.waitFor(/127\.0\.0\.1 lost its mappings/, 3500);
    assert.equal(gateway.mappings.size, 1);
    // §3.7: the external address is asked again, and it has not changed.
    assert.deepEqual(
      gateway.requests.slice(before).map((r) => [r.version, r.opcode]),
      [[0, 2], [0, 0]],
    );
    assert.equal(log.count(/is now reached at/), 0, log.lines.join("\n"));
  } finally {
    await mapper.close();
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});

Deno.test("PortMapper, auto: garbage from the gateway is logged once a kind, and nothing is mapped", async () => {
  const gateway = await FakePortControl.start();
  gateway.mode = "garbage";
  const log = new Log();
  const began = performance.now();
  const mapper = PortMapper.start(
    options(log, { serverPort: gateway.port, ssdpTarget: silentTarget() }),
  );
  try {
    assert.equal(await mapper.ready(5000), null);
    assert.ok(
      performance.now() - began < 4500,
      `${performance.now() - began} ms`,
    );
  } finally {
    await mapper.close();
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
  assert.ok(gateway.requests.length >= 6, "each probe was retransmitted");
});

Deno.test("PortMapper: close() during the first probe returns at once and sends no delete", async () => {
  const gateway = await FakePortControl.start();
  gateway.mode = "silent";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "pcp", serverPort: gateway.port }),
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  const began = performance.now();
  await mapper.close();
  assert.ok(performance.now() - began < 200);
  assert.equal(await mapper.ready(10), null);
  await new Promise((resolve) => setTimeout(resolve, 300));
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
    options(log, { method: "natpmp", gateway: "router.example" }),
  );
  assert.equal(await mapper.ready(1000), null);
  await mapper.close();
  assert.match(
    log.lines[0],
    /NAT-PMP: gateway router\.example is not an IPv4 address/,
  );
});

/** An Internet Gateway Device on loopback: SSDP answers and a SOAP control URL. */
class FakeIgd {
  /** "TCP:port" -> internal port, for mappings to us. */
  readonly mappings = new Map<
    string,
    { internalPort: number; lease: number }
  >();
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

  private constructor(ssdp: dgram.Socket) {
    this.#ssdp = ssdp;
    this.#server = Deno.serve(
      { hostname: LOOPBACK, port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
    ssdp.on("message", (msg, rinfo) => {
      if (!new TextDecoder().decode(msg).startsWith("M-SEARCH")) return;
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

  static async start(): Promise<FakeIgd> {
    const ssdp = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => ssdp.bind(0, LOOPBACK, resolve));
    return new FakeIgd(ssdp);
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
      });
      return soap(action, "");
    }
    if (action === "GetSpecificPortMappingEntry") {
      const mapping = this.mappings.get(key);
      if (!mapping) return fault(714);
      return soap(
        action,
        `<NewInternalPort>${mapping.internalPort}</NewInternalPort>` +
          `<NewInternalClient>${LOOPBACK}</NewInternalClient>` +
          `<NewLeaseDuration>${mapping.lease}</NewLeaseDuration>`,
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

Deno.test("PortMapper, UPnP: a conflict moves to another port, a lost mapping is added again, all deleted at close", async () => {
  const igd = await FakeIgd.start();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "upnp", ssdpTarget: igd.ssdpTarget }),
  );
  try {
    const mapped = await mapper.ready(4000);
    assert.equal(mapped?.method, "upnp");
    assert.equal(mapped?.externalAddress, "10.77.0.1");
    assert.ok(mapped!.externalPort >= 49152, `port ${mapped?.externalPort}`);
    assert.deepEqual(igd.actions, [
      "GetExternalIPAddress",
      "AddPortMapping", // 6881: 718 ConflictInMappingEntry
      "AddPortMapping",
    ]);
    assert.deepEqual([...igd.mappings.values()], [{
      internalPort: 6881,
      lease: 4,
    }]);
    assert.equal(log.count(/ignored a malformed SSDP answer/), 1);
    assert.equal(
      log.count(
        /ignored an SSDP answer from 127\.0\.0\.1 whose description is on 10\.9\.9\.9/,
      ),
      1,
    );
    // The router forgets it: the renewal finds it gone and adds it back.
    igd.mappings.clear();
    await log.waitFor(/127\.0\.0\.1 lost its mappings/, 3500);
    assert.equal(igd.mappings.size, 1);
    assert.deepEqual(igd.actions.slice(3, 6), [
      "GetSpecificPortMappingEntry", // 714 NoSuchEntryInArray
      "GetExternalIPAddress",
      "AddPortMapping",
    ]);
  } finally {
    await mapper.close();
    await igd.close();
  }
  assert.equal(igd.mappings.size, 0);
  assert.equal(igd.actions.at(-1), "DeletePortMapping");
});

/** An SSDP target on loopback that nobody answers. */
function silentTarget() {
  return { address: LOOPBACK, port: 9 };
}

async function waitUntil(condition: () => boolean, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("PortMapper, PCP: a lease with a non-IPv4 external address is refused, and close() still works", async () => {
  const gateway = await FakePortControl.start();
  gateway.pcpExternal = new Uint8Array(16); // "::", not IPv4-mapped
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "pcp", serverPort: gateway.port }),
  );
  try {
    assert.equal(await mapper.ready(3000), null);
    assert.match(
      log.lines.join("\n"),
      /PCP: 127\.0\.0\.1 gave 0:0:0:0:0:0:0:0, not an IPv4 address, as the external address/,
    );
  } finally {
    await mapper.close(); // must not throw
    gateway.close();
  }
  assert.doesNotMatch(log.lines.join("\n"), /stopped|RangeError/);
});

Deno.test("PortMapper, auto: when PCP gets no answer at all, UPnP goes before NAT-PMP and maps within the start wait", async () => {
  const gateway = await FakePortControl.start();
  gateway.mode = "silent";
  const igd = await FakeIgd.start();
  igd.taken.clear();
  const log = new Log();
  const began = performance.now();
  const mapper = PortMapper.start(
    options(log, { serverPort: gateway.port, ssdpTarget: igd.ssdpTarget }),
  );
  try {
    const mapped = await mapper.ready(4000);
    const ms = performance.now() - began;
    assert.equal(mapped?.method, "upnp", log.lines.join("\n"));
    // PCP's probe is 1.75 s; NAT-PMP's would be another 1.75 s.
    assert.ok(ms < 2800, `${ms} ms`);
    assert.ok(
      gateway.requests.every((r) => r.version === 2),
      "no NAT-PMP request",
    );
  } finally {
    await mapper.close();
    await igd.close();
    gateway.close();
  }
  assert.equal(igd.mappings.size, 0);
});

Deno.test("PortMapper, auto: a NAT-PMP server that ignores PCP is still found, after UPnP", async () => {
  const gateway = await FakePortControl.start();
  gateway.mode = "natpmp-only";
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { serverPort: gateway.port, ssdpTarget: silentTarget() }),
  );
  try {
    assert.equal((await mapper.ready(4000))?.method, "natpmp");
  } finally {
    await mapper.close();
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});

Deno.test("PortMapper, auto: a PCP error answer of the header alone fails PCP at once", async () => {
  const gateway = await FakePortControl.start();
  gateway.mode = "pcp-header-error";
  const log = new Log();
  const began = performance.now();
  const mapper = PortMapper.start(
    options(log, { serverPort: gateway.port, ssdpTarget: silentTarget() }),
  );
  try {
    assert.equal((await mapper.ready(3000))?.method, "natpmp");
    const ms = performance.now() - began;
    assert.ok(ms < 1000, `${ms} ms: PCP waited for its retransmits`);
    assert.equal(
      gateway.requests.filter((r) => r.version === 2).length,
      1,
      "one PCP request",
    );
  } finally {
    await mapper.close();
    gateway.close();
  }
});

Deno.test("PortMapper: a delete answered with a lifetime is not confirmed (PCP and NAT-PMP)", async () => {
  const gateway = await FakePortControl.start();
  gateway.keepOnDelete = true;
  const logs = { pcp: new Log(), natpmp: new Log() };
  const mappers = [
    PortMapper.start(
      options(logs.pcp, { method: "pcp", serverPort: gateway.port }),
    ),
    PortMapper.start(
      options(logs.natpmp, {
        method: "natpmp",
        tcpPort: 7001,
        serverPort: gateway.port,
      }),
    ),
  ];
  try {
    for (const mapper of mappers) assert.ok(await mapper.ready(3000));
  } finally {
    await Promise.all(mappers.map((m) => m.close()));
    gateway.close();
  }
  for (const log of [logs.pcp, logs.natpmp]) {
    assert.equal(log.count(/^port mapping: deleted/), 0, log.lines.join("\n"));
    assert.equal(
      log.count(/127\.0\.0\.1 did not confirm deleting TCP 10\.77\.0\.1:/),
      1,
      log.lines.join("\n"),
    );
  }
});

Deno.test("PortMapper: a UDP mapping refused at the start is tried again", async () => {
  const gateway = await FakePortControl.start();
  gateway.refuseUdp = 1;
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "pcp", udpPort: 6890, serverPort: gateway.port }),
  );
  try {
    assert.ok(await mapper.ready(3000));
    await log.waitFor(
      /UDP port 6890 not mapped \(127\.0\.0\.1 answered NO_RESOURCES\); retrying every 1 s/,
      1000,
    );
    await log.waitFor(/forwards to UDP port 6890/, 2500);
    assert.ok(gateway.mappings.has("17:6890"));
  } finally {
    await mapper.close();
    gateway.close();
  }
  assert.equal(gateway.mappings.size, 0);
});

Deno.test("PortMapper, UPnP: a WAN connection that is down is passed over for the next service", async () => {
  const igd = await FakeIgd.start();
  igd.pppBesideDownIp = true;
  igd.taken.clear();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "upnp", ssdpTarget: igd.ssdpTarget }),
  );
  try {
    const mapped = await mapper.ready(4000);
    assert.equal(mapped?.externalAddress, "10.77.0.1", log.lines.join("\n"));
    assert.deepEqual(igd.calls, [
      "/ctl/IPConn GetExternalIPAddress", // 0.0.0.0: not connected
      "/ctl/PPP GetExternalIPAddress",
      "/ctl/PPP AddPortMapping",
    ]);
  } finally {
    await mapper.close();
    await igd.close();
  }
  assert.equal(igd.mappings.size, 0);
  assert.equal(igd.calls.at(-1), "/ctl/PPP DeletePortMapping");
});

Deno.test("PortMapper, UPnP: a renewal refused with 718 for our own entry keeps it, nothing left behind", async () => {
  const igd = await FakeIgd.start();
  igd.refuseExisting = true;
  igd.taken.clear();
  const log = new Log();
  const mapper = PortMapper.start(
    options(log, { method: "upnp", ssdpTarget: igd.ssdpTarget }),
  );
  try {
    assert.equal((await mapper.ready(4000))?.externalPort, 6881);
    // The renewal at half the 4 s lease: our entry, then 718.
    await waitUntil(
      () => igd.actions.filter((a) => a === "AddPortMapping").length >= 2,
      3500,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual([...igd.mappings.keys()], ["TCP:6881"]);
    assert.equal(log.count(/is now reached at/), 0, log.lines.join("\n"));
  } finally {
    await mapper.close();
    await igd.close();
  }
  assert.equal(igd.mappings.size, 0, "no mapping left on the gateway");
});

Deno.test("SSDP search: each answering address counts once; the default gateway's answer ends the search", async () => {
  // One host answers with many descriptions, as a host that wants to crowd out the router would.
  const flood = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => flood.bind(0, LOOPBACK, resolve));
  flood.on("message", (_msg, rinfo) => {
    for (let i = 0; i < 8; i++) {
      flood.send(
        new TextEncoder().encode(answer(`http://${LOOPBACK}:9/d${i}.xml`)),
        rinfo.port,
        rinfo.address,
      );
    }
  });
  const target = { address: LOOPBACK, port: flood.address().port };
  try {
    const found = await discoverGateways(
      target,
      () => {},
      new AbortController().signal,
    );
    assert.deepEqual(found.map((u) => u.pathname), ["/d0.xml"]);
    const began = performance.now();
    const preferred = await discoverGateways(
      target,
      () => {},
      new AbortController().signal,
      LOOPBACK,
    );
    assert.deepEqual(preferred.map((u) => u.pathname), ["/d0.xml"]);
    assert.ok(performance.now() - began < 300, "ended at the gateway's answer");
  } finally {
    flood.close();
  }
});
