// Opens the listen port on the user's router and closes it again: picks the
// first protocol the gateway answers (PCP, then NAT-PMP, then UPnP IGD, or
// the one configured), maps the TCP port (and the UDP one when something
// listens on UDP), renews each lease at half its lifetime, maps everything
// again when the gateway shows it restarted, and deletes every mapping at
// close. The start is bounded (ready(timeoutMs)); what the gateway says is
// logged once and never stops the download. See NOTES.md.

import { GatewaySocket } from "./gateway_socket.ts";
import { NatPmpClient } from "./natpmp_client.ts";
import { PcpClient } from "./pcp_client.ts";
import {
  defaultGateway,
  localAddressToward,
  readRoutingTables,
  type RoutingTables,
} from "./routes.ts";
import {
  type Lease,
  type MappingClient,
  METHOD_NAMES,
  PortMappingError,
  type PortMappingMethod,
  type TransportProtocol,
} from "./types.ts";
import {
  discoverGateways,
  SSDP_MULTICAST,
  type SsdpTarget,
  UpnpClient,
} from "./upnp_client.ts";

export interface PortMapperOptions {
  method: "auto" | PortMappingMethod;
  /** The PCP and NAT-PMP server; "" for the default gateway of the routing table. */
  gateway: string;
  tcpPort: number;
  /** Also map this UDP port (the DHT's), when something listens on UDP. */
  udpPort?: number;
  /** The lease asked for; a mapping nobody renews (after a SIGKILL) ends with it. */
  leaseSeconds: number;
  log: (line: string) => void;
  /** The PCP and NAT-PMP server port: 5351 (RFC 6886 §3, RFC 6887 §19); tests use another. */
  serverPort?: number;
  /** Where the SSDP search goes: the multicast group; tests use a unicast address. */
  ssdpTarget?: SsdpTarget;
}

/** The mapping that announces should carry. */
export interface MappedPort {
  externalAddress: string;
  externalPort: number;
  method: PortMappingMethod;
}

/** How long a start waits for the mapping before going on without it. */
export const PORT_MAPPING_START_WAIT_MS = 4000;
const SERVER_PORT = 5351;
const AUTO_ORDER: PortMappingMethod[] = ["pcp", "natpmp", "upnp"];
/** close() waits at most this long for the gateway to confirm the deletes. */
const CLOSE_BUDGET_MS = 2000;
/** Renewals are never closer together than this, whatever lease a gateway grants. */
const MIN_RENEWAL_MS = 2000;

export class PortMapper {
  readonly #options: PortMapperOptions;
  readonly #abort = new AbortController();
  readonly #ready = Promise.withResolvers<MappedPort | null>();
  readonly #leases = new Map<TransportProtocol, Lease>();
  readonly #renewals = new Map<
    TransportProtocol,
    ReturnType<typeof setTimeout>
  >();
  /** Operations in progress, awaited by close(). */
  readonly #work = new Set<Promise<void>>();
  readonly #logged = new Set<string>();
  #client: MappingClient | null = null;
  #closed = false;

  private constructor(options: PortMapperOptions) {
    this.#options = options;
  }

  /** Starts mapping in the background; ready() tells how it went. */
  static start(options: PortMapperOptions): PortMapper {
    const mapper = new PortMapper(options);
    mapper.#track(mapper.#establish());
    return mapper;
  }

  /**
   * The TCP mapping once made, or null if there is none within timeoutMs
   * (mapping goes on in the background, and a later success is logged).
   */
  async ready(timeoutMs: number): Promise<MappedPort | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    try {
      return await Promise.race([this.#ready.promise, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops renewing and deletes every mapping, waiting at most CLOSE_BUDGET_MS. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#renewals.values()) clearTimeout(timer);
    this.#renewals.clear();
    this.#abort.abort();
    await Promise.allSettled([...this.#work]);
    this.#ready.resolve(null);
    const client = this.#client;
    if (!client) return;
    const budget = AbortSignal.timeout(CLOSE_BUDGET_MS);
    await Promise.all([...this.#leases.values()].map(async (lease) => {
      const deleted = await client.unmap(lease, budget);
      this.#options.log(
        deleted
          ? `port mapping: deleted ${describeLease(lease)}`
          : `port mapping: ${client.gateway} did not confirm deleting ${
            describeLease(lease)
          }; it ends with its lease`,
      );
    }));
    client.close();
  }

  async #establish(): Promise<void> {
    const { method, tcpPort, udpPort } = this.#options;
    const tables = readRoutingTables();
    const gateway = this.#options.gateway ||
      (tables && defaultGateway(tables.routes));
    const order = method === "auto" ? AUTO_ORDER : [method];
    // The search takes a second or so: in auto mode it runs while PCP and
    // NAT-PMP are tried, and stops when one of them works.
    const search = new AbortController();
    const gateways = order.includes("upnp")
      ? this.#tracked(
        discoverGateways(
          this.#options.ssdpTarget ?? SSDP_MULTICAST,
          this.#report,
          AbortSignal.any([this.#abort.signal, search.signal]),
        ),
      )
      : Promise.resolve([]);
    const failures: string[] = [];
    for (const candidate of order) {
      if (this.#closed) return;
      try {
        const { client, lease } = await this.#connect(
          candidate,
          gateway,
          tables,
          gateways,
        );
        if (this.#closed) {
          // close() ran while the answer was on its way: undo it here.
          await client.unmap(lease, AbortSignal.timeout(CLOSE_BUDGET_MS));
          client.close();
          return;
        }
        search.abort();
        this.#client = client;
        this.#leases.set("tcp", lease);
        this.#options.log(
          `port mapping: ${lease.externalAddress}:${lease.externalPort} forwards to TCP port ${tcpPort} (${
            METHOD_NAMES[client.method]
          } via ${client.gateway}, lease ${describeLifetime(lease)})`,
        );
        this.#ready.resolve({
          externalAddress: lease.externalAddress,
          externalPort: lease.externalPort,
          method: client.method,
        });
        this.#scheduleRenewal(lease);
        if (udpPort !== undefined) await this.#mapUdp(client, udpPort);
        return;
      } catch (e) {
        if (!(e instanceof PortMappingError)) throw e;
        failures.push(`${METHOD_NAMES[candidate]}: ${e.message}`);
      }
    }
    if (this.#closed) return;
    this.#options.log(
      `port mapping: not available (${
        failures.join("; ")
      }); peers outside the router may not reach port ${tcpPort}`,
    );
    this.#ready.resolve(null);
  }

  /** A client of one method that mapped the TCP port; throws PortMappingError. */
  async #connect(
    method: PortMappingMethod,
    gateway: string | undefined,
    tables: RoutingTables | undefined,
    gateways: Promise<URL[]>,
  ): Promise<{ client: MappingClient; lease: Lease }> {
    const signal = this.#abort.signal;
    const request = {
      protocol: "tcp" as const,
      internalPort: this.#options.tcpPort,
      lifetimeSeconds: this.#options.leaseSeconds,
      probing: true,
    };
    if (method === "upnp") {
      const locations = await gateways;
      if (locations.length === 0) {
        throw new PortMappingError("no gateway answered the SSDP search");
      }
      const errors: string[] = [];
      for (const location of locations) {
        const local = tables && localAddressToward(location.hostname, tables);
        if (!local) {
          errors.push(`no address of ours faces ${location.hostname}`);
          continue;
        }
        try {
          const client = await UpnpClient.open(
            location,
            local,
            this.#report,
            signal,
          );
          return { client, lease: (await client.map(request, signal)).lease };
        } catch (e) {
          if (!(e instanceof PortMappingError)) throw e;
          errors.push(e.message);
        }
      }
      throw new PortMappingError(errors.join("; "));
    }
    if (!gateway) throw new PortMappingError("no default gateway");
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(gateway)) {
      throw new PortMappingError(`gateway ${gateway} is not an IPv4 address`);
    }
    const socket = await GatewaySocket.open(
      gateway,
      this.#options.serverPort ?? SERVER_PORT,
    );
    let client: MappingClient;
    if (method === "natpmp") {
      client = new NatPmpClient(gateway, socket, this.#report);
    } else {
      const local = tables && localAddressToward(gateway, tables);
      if (!local) {
        socket.close();
        throw new PortMappingError(`no address of ours faces ${gateway}`);
      }
      client = new PcpClient(gateway, local, socket, this.#report);
    }
    try {
      return { client, lease: (await client.map(request, signal)).lease };
    } catch (e) {
      client.close();
      throw e;
    }
  }

  async #mapUdp(client: MappingClient, udpPort: number): Promise<void> {
    try {
      const { lease } = await client.map({
        protocol: "udp",
        internalPort: udpPort,
        lifetimeSeconds: this.#options.leaseSeconds,
        probing: true,
      }, this.#abort.signal);
      if (this.#closed) {
        await client.unmap(lease, AbortSignal.timeout(CLOSE_BUDGET_MS));
        return;
      }
      this.#leases.set("udp", lease);
      this.#options.log(
        `port mapping: ${lease.externalAddress}:${lease.externalPort} forwards to UDP port ${udpPort}`,
      );
      this.#scheduleRenewal(lease);
    } catch (e) {
      if (!(e instanceof PortMappingError) || this.#closed) return;
      this.#options.log(
        `port mapping: UDP port ${udpPort} not mapped: ${e.message}`,
      );
    }
  }

  #scheduleRenewal(
    lease: Lease,
    delayMs = renewalDelay(lease, this.#options),
  ): void {
    if (this.#closed) return;
    clearTimeout(this.#renewals.get(lease.protocol));
    this.#renewals.set(
      lease.protocol,
      setTimeout(() => this.#track(this.#renew(lease.protocol)), delayMs),
    );
  }

  async #renew(protocol: TransportProtocol): Promise<void> {
    const client = this.#client!;
    const previous = this.#leases.get(protocol)!;
    try {
      const { lease, gatewayRestarted } = await client.map({
        protocol,
        internalPort: previous.internalPort,
        lifetimeSeconds: this.#options.leaseSeconds,
        previous,
        probing: false,
      }, this.#abort.signal);
      if (this.#closed) {
        this.#leases.set(protocol, lease); // close() deletes it
        return;
      }
      this.#leases.set(protocol, lease);
      if (gatewayRestarted) {
        this.#options.log(
          `port mapping: ${client.gateway} lost its mappings (restarted?); ${protocol.toUpperCase()} port ${previous.internalPort} mapped again`,
        );
        // §3.7 of RFC 6886, §8.5 of RFC 6887: renew all the others now.
        for (const other of this.#leases.values()) {
          if (other.protocol !== protocol) this.#scheduleRenewal(other, 0);
        }
      }
      if (
        lease.externalPort !== previous.externalPort ||
        lease.externalAddress !== previous.externalAddress
      ) {
        this.#options.log(
          `port mapping: ${protocol.toUpperCase()} port ${lease.internalPort} is now reached at ${lease.externalAddress}:${lease.externalPort}`,
        );
      }
      this.#scheduleRenewal(lease);
    } catch (e) {
      if (this.#closed) return;
      if (!(e instanceof PortMappingError)) throw e;
      const retryMs = renewalDelay(previous, this.#options) / 2;
      this.#logOnce(
        `renew:${e.message}`,
        `port mapping: renewing ${protocol.toUpperCase()} port ${previous.internalPort} failed (${e.message}); retrying every ${
          Math.round(retryMs / 1000)
        } s`,
      );
      this.#scheduleRenewal(previous, retryMs);
    }
  }

  /** Bad answers are logged once a kind: a hostile gateway must not flood the log. */
  readonly #report = (key: string, message: string): void =>
    this.#logOnce(key, `port mapping: ignored ${message} (logged once)`);

  #logOnce(key: string, line: string): void {
    if (this.#logged.has(key)) return;
    this.#logged.add(key);
    this.#options.log(line);
  }

  /** Runs an operation close() waits for; an unexpected error is logged, never thrown. */
  #track(operation: Promise<void>): void {
    const tracked = operation.catch((e) => {
      this.#options.log(
        `port mapping stopped: ${e instanceof Error ? e.message : e}`,
      );
      this.#ready.resolve(null);
    }).finally(() => this.#work.delete(tracked));
    this.#work.add(tracked);
  }

  /** The same as #track for an operation with a result. */
  #tracked<T>(operation: Promise<T>): Promise<T> {
    this.#track(operation.then(() => {}));
    return operation;
  }
}

/**
 * Half the granted lifetime (RFC 6886 §3.3, RFC 6887 §11.2.1), and never
 * later than half the lease asked for: a permanent UPnP mapping is refreshed
 * as often as a leased one would be, and a gateway granting 2^32 s does not
 * overflow the timer.
 */
function renewalDelay(lease: Lease, options: PortMapperOptions): number {
  const seconds = Math.min(
    lease.lifetimeSeconds || options.leaseSeconds,
    options.leaseSeconds,
  );
  return Math.max(MIN_RENEWAL_MS, seconds * 500);
}

function describeLease(lease: Lease): string {
  return `${lease.protocol.toUpperCase()} ${lease.externalAddress}:${lease.externalPort}`;
}

function describeLifetime(lease: Lease): string {
  return lease.lifetimeSeconds ? `${lease.lifetimeSeconds} s` : "permanent";
}
