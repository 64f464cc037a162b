// UPnP IGD client: an SSDP search for the gateway (UDA 1.1 §1.3), its
// description fetched over HTTP (§2.1), then SOAP actions on its WAN
// connection service (§3.2): GetExternalIPAddress, AddPortMapping with a
// lease, GetSpecificPortMappingEntry before each renewal (a mapping gone
// means the gateway restarted), DeletePortMapping at the end. HTTP goes only
// to the address that answered the search, and to nowhere it redirects.

import {
  httpExchange,
  type HttpExchangeRequest,
  type HttpExchangeResponse,
} from "./http_exchange.ts";
import dgram from "node:dgram";
import { isIPv4 } from "node:net";
import { type Clock, clockTimeout, type Timer } from "../net/clock.ts";
import {
  type ConnectionService,
  decodeSoapResponse,
  encodeSoapRequest,
  findConnectionServices,
  type SoapResult,
  UPNP_ERRORS,
} from "./igd.ts";
import {
  decodeSearchResponse,
  encodeMSearch,
  IGD_SEARCH_TARGET,
  SSDP_ADDRESS,
  SSDP_PORT,
} from "./ssdp.ts";
import {
  type Lease,
  type MappingClient,
  type MapRequest,
  PortMappingError,
  type ReportProblem,
  type TransportProtocol,
} from "./types.ts";

export interface SsdpTarget {
  address: string;
  port: number;
}

export const SSDP_MULTICAST: SsdpTarget = {
  address: SSDP_ADDRESS,
  port: SSDP_PORT,
};
/** Devices answer within MX seconds (§1.3.2); the search is sent twice, as UDP may lose one. */
const MX_SECONDS = 1;
const SEARCH_RESEND_MS = 300;
const SEARCH_WAIT_MS = MX_SECONDS * 1000 + 300;
const MAX_GATEWAYS = 4;
/** UDA 1.1 §1.1.2: multicast TTL "SHOULD default to 2". */
const MULTICAST_TTL = 2;
const HTTP_TIMEOUT_MS = 2000;
const MAX_BODY_BYTES = 64 * 1024;
/** Other external ports tried when the one asked for is taken (error 718). */
const CONFLICT_RETRIES = 4;
const DESCRIPTION = "btclient";

/**
 * Searches for gateways; resolves with the description URLs of those that
 * answered within the wait, each from the address its URL names, in the
 * order they came. Any host on the LAN can answer, so each address counts
 * once (its first answer) and at most MAX_GATEWAYS of them, except
 * `preferred` (the default gateway), which is always kept and ends the
 * search at once: nobody else need be heard. The waits run on `clock`.
 */
export async function discoverGateways(
  target: SsdpTarget,
  report: ReportProblem,
  signal: AbortSignal,
  clock: Clock,
  preferred?: string,
): Promise<URL[]> {
  if (signal.aborted) return [];
  const socket = dgram.createSocket({
    type: "udp4",
    // Deno's node:dgram reads each datagram into a new buffer of this size
    // (64 KiB by default); an SSDP answer is a few hundred bytes.
    recvBufferSize: 1500,
  });
  /** By the address that answered. */
  const found = new Map<string, URL>();
  const { promise: done, resolve } = Promise.withResolvers<void>();
  socket.on("message", (msg, rinfo) => {
    const answer = decodeSearchResponse(new Uint8Array(msg));
    if (answer.kind === "malformed") {
      report(
        "ssdp-malformed",
        `a malformed SSDP answer from ${rinfo.address} (${answer.reason})`,
      );
    } else if (answer.location.hostname !== rinfo.address) {
      report(
        "ssdp-elsewhere",
        `an SSDP answer from ${rinfo.address} whose description is on ${answer.location.host}`,
      );
    } else if (rinfo.address === preferred) {
      if (!found.has(rinfo.address)) found.set(rinfo.address, answer.location);
      resolve();
    } else if (!found.has(rinfo.address) && found.size < MAX_GATEWAYS) {
      found.set(rinfo.address, answer.location);
    }
  });
  socket.on("error", () => {});
  const timers: Timer[] = [];
  const onAbort = () => resolve();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await new Promise<void>((bound, failed) => {
      socket.once("error", failed);
      socket.bind(0, () => {
        socket.off("error", failed);
        bound();
      });
    });
    socket.setMulticastTTL(MULTICAST_TTL);
    const search = encodeMSearch(IGD_SEARCH_TARGET, MX_SECONDS);
    const send = () =>
      socket.send(search, target.port, target.address, () => {});
    send();
    timers.push(clock.setTimer(send, SEARCH_RESEND_MS));
    timers.push(clock.setTimer(resolve, SEARCH_WAIT_MS));
    await done;
  } catch (e) {
    report(
      "ssdp-socket",
      `no SSDP search: ${e instanceof Error ? e.message : e}`,
    );
  } finally {
    signal.removeEventListener("abort", onAbort);
    for (const t of timers) clock.clearTimer(t);
    socket.close();
  }
  return [...found.values()];
}

export class UpnpClient implements MappingClient {
  readonly method = "upnp";
  readonly gateway: string;
  #externalAddress?: string;

  private constructor(
    readonly service: ConnectionService,
    /** Our LAN address: secure gateways map only to the address that asks. */
    readonly internalClient: string,
    private readonly report: ReportProblem,
    /** The HTTP timeouts run on it. */
    private readonly clock: Clock,
    /** Numbers in [0, 1) that pick another port for a conflicting one. */
    private readonly random: () => number,
  ) {
    this.gateway = service.controlUrl.hostname;
  }

  /**
   * Reads the description at `location`: a client for each of its WAN
   * connection services, to be tried in turn.
   */
  static async open(
    location: URL,
    internalClient: string,
    report: ReportProblem,
    signal: AbortSignal,
    clock: Clock,
    random: () => number,
  ): Promise<UpnpClient[]> {
    const { status, body } = await httpRequest(
      location,
      { method: "GET" },
      signal,
      clock,
    );
    if (status !== 200) {
      throw new PortMappingError(
        `${location.host} answered HTTP ${status} for its description`,
      );
    }
    const services = findConnectionServices(body, location);
    if ("error" in services) {
      report(
        "upnp-description",
        `the UPnP description at ${location.href}: ${services.error}`,
      );
      throw new PortMappingError(`${location.host}: ${services.error}`);
    }
    return services.map((service) =>
      new UpnpClient(service, internalClient, report, clock, random)
    );
  }

  async map(
    request: MapRequest,
    signal: AbortSignal,
  ): Promise<{ lease: Lease; gatewayRestarted: boolean }> {
    const { protocol, internalPort, previous } = request;
    let gatewayRestarted = false;
    let externalPort = previous?.externalPort ?? internalPort;
    let entry: MappingState | undefined;
    if (previous) {
      entry = await this.#stillMapped(previous, signal);
      if (entry.state === "gone") {
        gatewayRestarted = true;
        this.#externalAddress = undefined;
      }
      if (entry.state === "taken") {
        externalPort = otherPort(previous.externalPort, this.random);
      }
    }
    // Asked first: it shows the control URL works before anything is mapped.
    this.#externalAddress ??= await this.#externalIp(signal);
    let lifetimeSeconds = request.lifetimeSeconds;
    for (let tries = 0;; tries++) {
      const added = await this.#call(
        "AddPortMapping",
        addPortMappingArgs(
          protocol,
          externalPort,
          internalPort,
          this.internalClient,
          lifetimeSeconds,
        ),
        signal,
      );
      if (added.kind === "ok") break;
      if (
        added.code === UPNP_ERRORS.conflict && previous && entry &&
        externalPort === previous.externalPort &&
        (entry.state === "ours" || entry.state === "unknown")
      ) {
        // Some gateways refuse to add an entry that exists, even for the
        // client that holds it. Moving to another port would leave this
        // one behind: keep it, for what is left of its lease.
        return {
          lease: {
            ...previous,
            lifetimeSeconds: entry.remainingSeconds ?? previous.lifetimeSeconds,
          },
          gatewayRestarted: false,
        };
      }
      if (added.code === UPNP_ERRORS.onlyPermanentLeases && lifetimeSeconds) {
        lifetimeSeconds = 0; // then deleted at exit, or never if we are killed
      } else if (
        added.code === UPNP_ERRORS.conflict && tries < CONFLICT_RETRIES
      ) {
        externalPort = otherPort(externalPort, this.random);
      } else {
        throw new PortMappingError(
          `${this.gateway} refused AddPortMapping for ${protocol.toUpperCase()} ${externalPort}: ${
            describe(added)
          }`,
        );
      }
    }
    return {
      lease: {
        protocol,
        internalPort,
        externalPort,
        externalAddress: this.#externalAddress,
        lifetimeSeconds,
      },
      gatewayRestarted,
    };
  }

  async unmap(lease: Lease, signal: AbortSignal): Promise<boolean> {
    try {
      const deleted = await this.#call("DeletePortMapping", [
        ["NewRemoteHost", ""],
        ["NewExternalPort", String(lease.externalPort)],
        ["NewProtocol", lease.protocol.toUpperCase()],
      ], signal);
      return deleted.kind === "ok";
    } catch (e) {
      if (e instanceof PortMappingError) return false;
      throw e;
    }
  }

  close(): void {}

  /**
   * Whether the gateway still has a renewed mapping: "gone" after a restart,
   * "taken" when it now points at another client. A gateway without the
   * action, or with a garbled answer, just gets the mapping added again.
   */
  async #stillMapped(
    lease: Lease,
    signal: AbortSignal,
  ): Promise<MappingState> {
    let entry;
    try {
      entry = await this.#call("GetSpecificPortMappingEntry", [
        ["NewRemoteHost", ""],
        ["NewExternalPort", String(lease.externalPort)],
        ["NewProtocol", lease.protocol.toUpperCase()],
      ], signal);
    } catch (e) {
      if (e instanceof PortMappingError) return { state: "unknown" };
      throw e;
    }
    if (entry.kind === "fault") {
      return {
        state: entry.code === UPNP_ERRORS.noSuchEntry ? "gone" : "unknown",
      };
    }
    const ours =
      entry.values.get("NewInternalClient") === this.internalClient &&
      entry.values.get("NewInternalPort") === String(lease.internalPort);
    if (!ours) return { state: "taken" };
    const remaining = Number(entry.values.get("NewLeaseDuration"));
    return {
      state: "ours",
      remainingSeconds: Number.isInteger(remaining) && remaining > 0
        ? remaining
        : undefined,
    };
  }

  async #externalIp(signal: AbortSignal): Promise<string> {
    const reply = await this.#call("GetExternalIPAddress", [], signal);
    if (reply.kind !== "ok") {
      throw new PortMappingError(
        `${this.gateway} did not tell its external address: ${describe(reply)}`,
      );
    }
    const address = reply.values.get("NewExternalIPAddress") ?? "";
    // 0.0.0.0 is what a WAN connection that is down reports.
    if (!isIPv4(address) || address === "0.0.0.0") {
      throw new PortMappingError(
        `${this.gateway} gave ${
          JSON.stringify(address.slice(0, 40))
        } as its external address`,
      );
    }
    return address;
  }

  /** One SOAP action; a reply or a fault, else a PortMappingError. */
  async #call(
    action: string,
    args: ReadonlyArray<readonly [string, string]>,
    signal: AbortSignal,
  ): Promise<Exclude<SoapResult, { kind: "malformed" }>> {
    const { serviceType, controlUrl } = this.service;
    const { body, soapAction } = encodeSoapRequest(serviceType, action, args);
    const reply = await httpRequest(
      controlUrl,
      {
        method: "POST",
        headers: {
          "Content-Type": 'text/xml; charset="utf-8"',
          "SOAPAction": soapAction,
        },
        body,
      },
      signal,
      this.clock,
    );
    const result = decodeSoapResponse(reply.status, reply.body, action);
    if (result.kind === "malformed") {
      this.report(
        "upnp-soap",
        `a malformed ${action} answer from ${this.gateway} (${result.reason})`,
      );
      throw new PortMappingError(
        `${this.gateway}: ${action}: ${result.reason}`,
      );
    }
    return result;
  }
}

/** What GetSpecificPortMappingEntry said about a mapping being renewed. */
interface MappingState {
  state: "ours" | "gone" | "taken" | "unknown";
  /** Seconds left of an entry that is ours, when the gateway says. */
  remainingSeconds?: number;
}

function addPortMappingArgs(
  protocol: TransportProtocol,
  externalPort: number,
  internalPort: number,
  internalClient: string,
  lifetimeSeconds: number,
): [string, string][] {
  return [
    ["NewRemoteHost", ""],
    ["NewExternalPort", String(externalPort)],
    ["NewProtocol", protocol.toUpperCase()],
    ["NewInternalPort", String(internalPort)],
    ["NewInternalClient", internalClient],
    ["NewEnabled", "1"],
    ["NewPortMappingDescription", `${DESCRIPTION} ${protocol} ${internalPort}`],
    ["NewLeaseDuration", String(lifetimeSeconds)],
  ];
}

/** A random port of the dynamic range (RFC 6335 §6), for a conflicting one. */
function otherPort(avoid: number, random: () => number): number {
  for (;;) {
    const port = 49152 + Math.floor(random() * 16384);
    if (port !== avoid) return port;
  }
}

function describe(fault: { code: number; description: string }): string {
  return `error ${fault.code}${
    fault.description ? ` ${fault.description}` : ""
  }`;
}

/**
 * A bounded HTTP exchange with the gateway: no redirects followed, the body
 * cut off at MAX_BODY_BYTES, HTTP_TIMEOUT_MS on `clock` for all of it.
 */
async function httpRequest(
  url: URL,
  request: HttpExchangeRequest,
  signal: AbortSignal,
  clock: Clock,
): Promise<HttpExchangeResponse> {
  const timeout = clockTimeout(clock, HTTP_TIMEOUT_MS);
  try {
    return await httpExchange(url, request, {
      signal: AbortSignal.any([signal, timeout.signal]),
      maxBodyBytes: MAX_BODY_BYTES,
    });
  } catch (e) {
    const why = timeout.signal.aborted
      ? `no answer within ${HTTP_TIMEOUT_MS} ms`
      : e instanceof Error
      ? e.message
      : String(e);
    throw new PortMappingError(`${url.host}: ${why}`);
  } finally {
    timeout.cancel();
  }
}
