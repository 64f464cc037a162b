// RFC 6886 NAT-PMP client: the external address (§3.2), then a mapping per
// port (§3.3), renewed by the same request, deleted with lifetime 0 (§3.4).
// Every answer's epoch is checked for a gateway restart (§3.6).

import type { Clock } from "../net/clock.ts";
import { EpochWatch } from "./epoch.ts";
import { doublingWaits, type GatewaySocket } from "./gateway_socket.ts";
import {
  decodeNatPmpResponse,
  encodeExternalAddressRequest,
  encodeMapRequest,
  type NatPmpResponse,
  natPmpResultName,
} from "./natpmp.ts";
import {
  type Lease,
  type MappingClient,
  type MapRequest,
  PortMappingError,
  type ReportProblem,
} from "./types.ts";

/** §3.1 says 250 ms doubling, nine tries; the first contact stops after three. */
const PROBE_WAITS = doublingWaits(250, 3);
const RENEW_WAITS = doublingWaits(250, 6);

export class NatPmpClient implements MappingClient {
  readonly method = "natpmp";
  readonly #epoch = new EpochWatch("natpmp");
  #externalAddress?: string;

  constructor(
    readonly gateway: string,
    private readonly socket: GatewaySocket,
    private readonly report: ReportProblem,
    /** Our side of the epoch check (§3.6). */
    private readonly clock: Clock,
  ) {}

  async map(
    request: MapRequest,
    signal: AbortSignal,
  ): Promise<{ lease: Lease; gatewayRestarted: boolean }> {
    const waits = request.probing ? PROBE_WAITS : RENEW_WAITS;
    const gatewayRestarted = this.#externalAddress === undefined &&
      await this.#askExternalAddress(waits, signal);
    const { protocol, internalPort } = request;
    const reply = await this.#exchange(
      encodeMapRequest(
        protocol,
        internalPort,
        request.previous?.externalPort ?? internalPort,
        request.lifetimeSeconds,
      ),
      waits,
      (r) =>
        r.kind === "map" && r.protocol === protocol &&
          r.internalPort === internalPort
          ? r
          : undefined,
      signal,
    );
    const granted = reply.response;
    if (granted.externalPort === 0 || granted.lifetimeSeconds === 0) {
      throw new PortMappingError(`${this.gateway} granted no mapping`);
    }
    // §3.7: the address may have changed with the restart.
    if (reply.restarted) await this.#askExternalAddress(waits, signal);
    return {
      lease: {
        protocol,
        internalPort,
        externalPort: granted.externalPort,
        externalAddress: this.#externalAddress!,
        lifetimeSeconds: granted.lifetimeSeconds,
      },
      gatewayRestarted: gatewayRestarted || reply.restarted,
    };
  }

  async unmap(lease: Lease, signal: AbortSignal): Promise<boolean> {
    try {
      await this.#exchange(
        encodeMapRequest(lease.protocol, lease.internalPort, 0, 0),
        PROBE_WAITS,
        // §3.4: a delete is confirmed by a success with lifetime 0 (and
        // external port 0); one with a lifetime is a late answer to an
        // earlier request, or a gateway that kept the mapping. An error
        // answer ends the wait, unconfirmed.
        (r) =>
          r.kind === "map" && r.protocol === lease.protocol &&
            r.internalPort === lease.internalPort &&
            (r.resultCode !== 0 || r.lifetimeSeconds === 0)
            ? r
            : undefined,
        signal,
      );
      return true;
    } catch (e) {
      if (e instanceof PortMappingError) return false;
      throw e;
    }
  }

  close(): void {
    this.socket.close();
  }

  /** §3.2; true if the answer shows the gateway restarted. */
  async #askExternalAddress(
    waits: readonly number[],
    signal: AbortSignal,
  ): Promise<boolean> {
    const reply = await this.#exchange(
      encodeExternalAddressRequest(),
      waits,
      (r) => r.kind === "address" ? r : undefined,
      signal,
    );
    this.#externalAddress = reply.response.externalAddress;
    return reply.restarted;
  }

  /** One request until a matching success; the answer's epoch checked on the way. */
  async #exchange<
    T extends NatPmpResponse & { resultCode: number; epoch: number },
  >(
    packet: Uint8Array,
    waits: readonly number[],
    match: (r: NatPmpResponse) => T | undefined,
    signal: AbortSignal,
  ): Promise<{ response: T; restarted: boolean }> {
    const response = await this.socket.request(packet, waits, (datagram) => {
      const r = decodeNatPmpResponse(datagram);
      if (r.kind === "malformed") {
        this.report(
          "natpmp-malformed",
          `a malformed NAT-PMP answer from ${this.gateway} (${r.reason})`,
        );
        return undefined;
      }
      return match(r);
    }, signal);
    if (!response) {
      throw new PortMappingError(`no NAT-PMP answer from ${this.gateway}`);
    }
    const restarted = this.#epoch.lostState(response.epoch, this.clock.now());
    if (response.resultCode !== 0) {
      throw new PortMappingError(
        `${this.gateway} answered ${natPmpResultName(response.resultCode)}`,
      );
    }
    return { response, restarted };
  }
}
