// RFC 6887 PCP client: one MAP per port (§11), renewed with the same nonce and
// the assigned external port and address as suggestions (§11.2), deleted by
// a MAP with lifetime 0 and that nonce (§15), which is why the nonce is kept
// for as long as the mapping lives. Every answer's epoch is checked for a
// server restart (§8.5). A NAT-PMP-only gateway answers with version 0 (§9):
// the caller then falls back to NAT-PMP.

import type { Clock } from "../net/clock.ts";
import { EpochWatch } from "./epoch.ts";
import { doublingWaits, type GatewaySocket } from "./gateway_socket.ts";
import {
  decodePcpResponse,
  encodeMapRequest,
  isDottedQuad,
  newNonce,
  OPCODE_MAP,
  type PcpResponse,
  pcpResultName,
} from "./pcp.ts";
import {
  type Lease,
  type MappingClient,
  type MapRequest,
  PortMappingError,
  type ReportProblem,
  type TransportProtocol,
} from "./types.ts";

/**
 * §8.1.1 starts at 3 s; a gateway on the LAN answers in milliseconds, and the
 * start may wait a few seconds in all, so first contact uses NAT-PMP's 250 ms
 * doubling. Renewals follow the RFC's 3 s doubling, bounded.
 */
const PROBE_WAITS = doublingWaits(250, 3);
const RENEW_WAITS = doublingWaits(3000, 3);
const DELETE_WAITS = doublingWaits(250, 3);

type MapResponse = Extract<PcpResponse, { kind: "map" }>;

export class PcpClient implements MappingClient {
  readonly method = "pcp";
  readonly #epoch = new EpochWatch("pcp");
  /** The nonce of each mapping, by "protocol:internal port". */
  readonly #nonces = new Map<string, Uint8Array>();

  constructor(
    readonly gateway: string,
    /** Our address as the gateway sees it, which every request carries (§8.1). */
    readonly clientAddress: string,
    private readonly socket: GatewaySocket,
    private readonly report: ReportProblem,
    /** Our side of the epoch check (§8.5). */
    private readonly clock: Clock,
  ) {}

  async map(
    request: MapRequest,
    signal: AbortSignal,
  ): Promise<{ lease: Lease; gatewayRestarted: boolean }> {
    const { protocol, internalPort, previous } = request;
    const key = `${protocol}:${internalPort}`;
    const nonce = this.#nonces.get(key) ?? newNonce();
    this.#nonces.set(key, nonce);
    const { response, restarted } = await this.#exchange(
      nonce,
      protocol,
      internalPort,
      previous?.externalPort ?? internalPort,
      previous?.externalAddress ?? "0.0.0.0",
      request.lifetimeSeconds,
      request.probing ? PROBE_WAITS : RENEW_WAITS,
      signal,
    );
    if (response.lifetimeSeconds === 0 || response.externalPort === 0) {
      throw new PortMappingError(`${this.gateway} granted no mapping`);
    }
    // We ask for IPv4 and keep only IPv4 leases: a renewal suggests the
    // address back and a delete carries it, both IPv4-mapped (§5). The
    // gateway's mapping, if it made one, ends with its lifetime.
    if (!isDottedQuad(response.externalAddress)) {
      throw new PortMappingError(
        `${this.gateway} gave ${response.externalAddress}, not an IPv4 address, as the external address`,
      );
    }
    return {
      lease: {
        protocol,
        internalPort,
        externalPort: response.externalPort,
        externalAddress: response.externalAddress,
        lifetimeSeconds: response.lifetimeSeconds,
      },
      gatewayRestarted: restarted,
    };
  }

  async unmap(lease: Lease, signal: AbortSignal): Promise<boolean> {
    const nonce = this.#nonces.get(`${lease.protocol}:${lease.internalPort}`);
    if (!nonce) return false;
    try {
      await this.#exchange(
        nonce,
        lease.protocol,
        lease.internalPort,
        lease.externalPort,
        lease.externalAddress,
        0,
        DELETE_WAITS,
        signal,
      );
      // #exchange took only a success with lifetime 0: the mapping is gone.
      return true;
    } catch (e) {
      if (e instanceof PortMappingError) return false;
      throw e;
    }
  }

  close(): void {
    this.socket.close();
  }

  async #exchange(
    nonce: Uint8Array,
    protocol: TransportProtocol,
    internalPort: number,
    suggestedExternalPort: number,
    suggestedExternalAddress: string,
    lifetimeSeconds: number,
    waits: readonly number[],
    signal: AbortSignal,
  ): Promise<{ response: MapResponse; restarted: boolean }> {
    const packet = encodeMapRequest({
      clientAddress: this.clientAddress,
      nonce,
      protocol,
      internalPort,
      suggestedExternalPort,
      suggestedExternalAddress,
      lifetimeSeconds,
    });
    const reply = await this.socket.request(packet, waits, (datagram) => {
      const r = decodePcpResponse(datagram);
      if (r.kind === "malformed") {
        this.report(
          "pcp-malformed",
          `a malformed PCP answer from ${this.gateway} (${r.reason})`,
        );
        return undefined;
      }
      if (r.kind === "unsupported-version") return r;
      if (r.kind === "header-error") {
        return r.opcode === OPCODE_MAP ? r : undefined;
      }
      const ours = r.protocol === protocol && r.internalPort === internalPort &&
        r.nonce.every((b, i) => b === nonce[i]);
      // §15: a delete is confirmed by a success with lifetime 0 only; a
      // success with a lifetime is a late answer to an earlier request, or
      // a gateway that kept the mapping.
      const deleteUnconfirmed = lifetimeSeconds === 0 && r.resultCode === 0 &&
        r.lifetimeSeconds !== 0;
      return ours && !deleteUnconfirmed ? r : undefined;
    }, signal);
    if (!reply) {
      throw new PortMappingError(`no PCP answer from ${this.gateway}`);
    }
    if (reply.kind === "unsupported-version") {
      throw new PortMappingError(
        `${this.gateway} does not speak PCP version 2 (it answered as version ${reply.version})`,
      );
    }
    if (reply.kind === "header-error") {
      throw new PortMappingError(
        `${this.gateway} answered ${pcpResultName(reply.resultCode)}`,
      );
    }
    const restarted = this.#epoch.lostState(reply.epoch, this.clock.now());
    if (reply.resultCode !== 0) {
      throw new PortMappingError(
        `${this.gateway} answered ${pcpResultName(reply.resultCode)}`,
      );
    }
    return { response: reply, restarted };
  }
}
