// Opens the listen port on the user's router and closes it again: picks the
// first protocol the gateway answers (PCP, then NAT-PMP, then UPnP IGD, or
// the one configured), maps the TCP port (and the UDP one when something
// listens on UDP), renews each lease at half its lifetime, maps everything
// again when the gateway shows it restarted, and deletes every mapping at
// close. Nothing waits for it: onExternalPort tells the caller when the
// mapped port is known or moves (ready(timeoutMs) bounds a wait for it); what
// the gateway says is logged once and never stops the download. See NOTES.md.

import {
  type Clock,
  clockTimeout,
  systemClock,
  type Timer,
} from "../net/clock.ts";
import { GatewaySocket } from "./gateway_socket.ts";
import { NatPmpClient } from "./natpmp_client.ts";
import { PcpClient } from "./pcp_client.ts";
import {
  defaultGateway,
  isOnLink,
  localAddressToward,
  readRoutingTables,
  type RoutingTables,
} from "./routes.ts";
import { orderGateways } from "./ssdp.ts";
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
  /**
   * Called when the TCP port is first mapped, and again whenever the gateway
   * moves it: announces should carry this port from then on.
   */
  onExternalPort?: (mapped: MappedPort) => void;
  /** Where the SSDP search goes: the multicast group; tests use a unicast address. */
  ssdpTarget?: SsdpTarget;
  /** Every wait (retransmits, renewals, timeouts) runs on it; the system clock unless given (tests). */
  clock?: Clock;
  /** Numbers in [0, 1), for the port tried when UPnP reports a conflict; Math.random unless given (tests). */
  random?: () => number;
}

/** The mapping that announces should carry. */
export interface MappedPort {
  externalAddress: string;
  externalPort: number;
  internalPort: number;
  method: PortMappingMethod;
  gateway: string;
  /** Seconds granted; 0: until deleted. */
  lifetimeSeconds: number;
}

const SERVER_PORT = 5351;
const AUTO_ORDER: PortMappingMethod[] = ["pcp", "natpmp", "upnp"];
/**
 * When nothing at all came back to PCP, UPnP goes before NAT-PMP: a NAT-PMP
 * server answers PCP with "unsupported version" (RFC 6886 §3.5, RFC 6887
 * §9), so silence means none listens on 5351, and a UPnP-only router (the
 * common case) still fits in the start wait. NAT-PMP is still tried last,
 * for a server that ignores other versions.
 */
const AFTER_SILENT_PCP: PortMappingMethod[] = ["upnp", "natpmp"];
/** All that close() does (waiting for requests in flight, the deletes) ends within this. */
const CLOSE_BUDGET_MS = 2000;
/** Renewals are never closer together than this, whatever lease a gateway grants. */
const MIN_RENEWAL_MS = 2000;

export class PortMapper {
  readonly #options: PortMapperOptions;
  readonly #clock: Clock;
  readonly #abort = new AbortController();
  readonly #ready = Promise.withResolvers<MappedPort | null>();
  readonly #leases = new Map<TransportProtocol, Lease>();
  readonly #renewals = new Map<TransportProtocol, Timer>();
  /** Operations in progress, awaited by close(). */
  readonly #work = new Set<Promise<void>>();
  readonly #logged = new Set<string>();
  #client: MappingClient | null = null;
  #closed = false;
  /** Set by close(): every delete it waits for ends by then. */
  #closeDeadline: AbortSignal | null = null;
  private constructor(options: PortMapperOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
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
    let timer: Timer | undefined;
    const late = new Promise<null>((resolve) => {
      timer = this.#clock.setTimer(() => resolve(null), timeoutMs);
    });
    try {
      return await Promise.race([this.#ready.promise, late]);
    } finally {
      this.#clock.clearTimer(timer);
    }
  }

  /**
   * Stops renewing and deletes every mapping. Everything it does, waiting
   * for requests in flight included, ends within CLOSE_BUDGET_MS; it never
   * throws.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const budget = clockTimeout(this.#clock, CLOSE_BUDGET_MS);
    this.#closeDeadline = budget.signal;
    try {
      await this.#stop(budget.signal);
    } finally {
      budget.cancel();
    }
  }

  /** close() but for its budget: `deadline` aborts when that is spent. */
  async #stop(deadline: AbortSignal): Promise<void> {
    for (const timer of this.#renewals.values()) this.#clock.clearTimer(timer);
    this.#renewals.clear();
    this.#abort.abort();
    this.#resolveReady(null);
    await untilAborted(Promise.allSettled([...this.#work]), deadline);
    const client = this.#client;
    if (!client) return;
    try {
      const leases = [...this.#leases.values()];
      const results = await Promise.allSettled(
        leases.map((lease) => client.unmap(lease, deadline)),
      );
      results.forEach((result, i) => {
        const lease = describeLease(leases[i]);
        this.#options.log(
          result.status === "rejected"
            ? `port mapping: deleting ${lease} failed (${
              errorText(result.reason)
            }); it ends with its lease`
            : result.value
            ? `port mapping: deleted ${lease}`
            : `port mapping: ${client.gateway} did not confirm deleting ${lease}; it ends with its lease`,
        );
      });
    } finally {
      client.close();
    }
  }

  async #establish(): Promise<void> {
    const { method, tcpPort, udpPort } = this.#options;
    const tables = readRoutingTables();
    const gateway = this.#options.gateway ||
      (tables && defaultGateway(tables.routes));
    const queue = method === "auto" ? [...AUTO_ORDER] : [method];
    // The search takes a second or so: in auto mode it runs while PCP and
    // NAT-PMP are tried, and stops when one of them works.
    const search = new AbortController();
    const gateways = queue.includes("upnp")
      ? this.#tracked(
        discoverGateways(
          this.#options.ssdpTarget ?? SSDP_MULTICAST,
          this.#report,
          AbortSignal.any([this.#abort.signal, search.signal]),
          this.#clock,
          gateway,
        ),
      ).then((found) =>
        orderGateways(
          found,
          gateway,
          (host) => tables !== undefined && isOnLink(host, tables),
        )
      )
      : Promise.resolve([]);
    const failures: string[] = [];
    for (let candidate; (candidate = queue.shift());) {
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
          try {
            await client.unmap(lease, this.#closeDeadline!);
          } finally {
            client.close();
          }
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
        this.#notePermanent(lease);
        this.#resolveReady(mappedPort(lease, client));
        this.#scheduleRenewal(lease);
        if (udpPort !== undefined) await this.#mapUdp(client, udpPort);
        return;
      } catch (e) {
        if (!(e instanceof PortMappingError)) throw e;
        failures.push(`${METHOD_NAMES[candidate]}: ${e.message}`);
        if (
          e instanceof GatewaySilentError && candidate === "pcp" &&
          queue.length > 1
        ) {
          queue.splice(0, queue.length, ...AFTER_SILENT_PCP);
        }
      }
    }
    if (this.#closed) return;
    this.#options.log(
      `port mapping: not available (${
        failures.join("; ")
      }); peers outside the router may not reach port ${tcpPort}`,
    );
    this.#resolveReady(null);
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
        let clients: UpnpClient[];
        try {
          clients = await UpnpClient.open(
            location,
            local,
            this.#report,
            signal,
            this.#clock,
            this.#options.random ?? Math.random,
          );
        } catch (e) {
          if (!(e instanceof PortMappingError)) throw e;
          errors.push(e.message);
          continue;
        }
        // Each WAN connection service in turn, until one maps the port.
        for (const client of clients) {
          try {
            return { client, lease: (await client.map(request, signal)).lease };
          } catch (e) {
            if (!(e instanceof PortMappingError)) throw e;
            errors.push(e.message);
          }
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
      this.#clock,
    );
    let client: MappingClient;
    if (method === "natpmp") {
      client = new NatPmpClient(gateway, socket, this.#report, this.#clock);
    } else {
      const local = tables && localAddressToward(gateway, tables);
      if (!local) {
        socket.close();
        throw new PortMappingError(`no address of ours faces ${gateway}`);
      }
      client = new PcpClient(
        gateway,
        local,
        socket,
        this.#report,
        this.#clock,
      );
    }
    try {
      return { client, lease: (await client.map(request, signal)).lease };
    } catch (e) {
      client.close();
      if (e instanceof PortMappingError && !socket.heard) {
        throw new GatewaySilentError(e.message);
      }
      throw e;
    }
  }

  /** Maps the UDP port; a failure is retried as a failed renewal is. */
  async #mapUdp(client: MappingClient, udpPort: number): Promise<void> {
    try {
      const { lease } = await client.map({
        protocol: "udp",
        internalPort: udpPort,
        lifetimeSeconds: this.#options.leaseSeconds,
        probing: true,
      }, this.#abort.signal);
      if (this.#closed) {
        await client.unmap(lease, this.#closeDeadline!);
        return;
      }
      this.#leases.set("udp", lease);
      this.#options.log(
        `port mapping: ${lease.externalAddress}:${lease.externalPort} forwards to UDP port ${udpPort}`,
      );
      this.#notePermanent(lease);
      this.#scheduleRenewal(lease);
    } catch (e) {
      if (!(e instanceof PortMappingError) || this.#closed) return;
      const retryMs = retryDelay(this.#options);
      this.#logOnce(
        `udp:${e.message}`,
        `port mapping: UDP port ${udpPort} not mapped (${e.message}); retrying every ${
          Math.round(retryMs / 1000)
        } s`,
      );
      this.#renewals.set(
        "udp",
        this.#clock.setTimer(
          () => this.#track(this.#mapUdp(client, udpPort)),
          retryMs,
        ),
      );
    }
  }

  #scheduleRenewal(
    lease: Lease,
    delayMs = renewalDelay(lease, this.#options),
  ): void {
    if (this.#closed) return;
    this.#clock.clearTimer(this.#renewals.get(lease.protocol));
    this.#renewals.set(
      lease.protocol,
      this.#clock.setTimer(
        () => this.#track(this.#renew(lease.protocol)),
        delayMs,
      ),
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
        if (protocol === "tcp") {
          this.#options.onExternalPort?.(mappedPort(lease, client));
        }
      }
      this.#notePermanent(lease);
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

  #resolveReady(mapped: MappedPort | null): void {
    this.#ready.resolve(mapped);
    if (mapped) this.#options.onExternalPort?.(mapped);
  }

  /** UPnP error 725 leaves only permanent mappings: say once what a kill then costs. */
  #notePermanent(lease: Lease): void {
    if (lease.lifetimeSeconds !== 0) return;
    this.#logOnce(
      "permanent",
      `port mapping: ${
        this.#client?.gateway ?? "the gateway"
      } grants only permanent mappings; they are deleted at exit, but a run that is killed (SIGKILL, a crash) leaves ${
        describeLease(lease)
      } open until someone deletes it on the router`,
    );
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
      this.#options.log(`port mapping stopped: ${errorText(e)}`);
      this.#resolveReady(null);
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

/** A UDP mapping that failed is tried again as a failed renewal is: after a quarter of the lease. */
function retryDelay(options: PortMapperOptions): number {
  return Math.max(MIN_RENEWAL_MS, options.leaseSeconds * 500) / 2;
}

/** No PCP or NAT-PMP datagram at all came back: nothing listens on the port. */
class GatewaySilentError extends PortMappingError {}

/** Resolves when `work` settles or `deadline` aborts, whichever is first. */
async function untilAborted(
  work: Promise<unknown>,
  deadline: AbortSignal,
): Promise<void> {
  if (deadline.aborted) return;
  const { promise, resolve } = Promise.withResolvers<void>();
  const onAbort = () => resolve();
  deadline.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.race([work, promise]);
  } finally {
    deadline.removeEventListener("abort", onAbort);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function describeLease(lease: Lease): string {
  return `${lease.protocol.toUpperCase()} ${lease.externalAddress}:${lease.externalPort}`;
}

function describeLifetime(lease: Lease): string {
  return lease.lifetimeSeconds ? `${lease.lifetimeSeconds} s` : "permanent";
}

function mappedPort(lease: Lease, client: MappingClient): MappedPort {
  return {
    externalAddress: lease.externalAddress,
    externalPort: lease.externalPort,
    internalPort: lease.internalPort,
    method: client.method,
    gateway: client.gateway,
    lifetimeSeconds: lease.lifetimeSeconds,
  };
}
