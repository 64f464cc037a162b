// Types shared by the port mapping clients (PCP, NAT-PMP, UPnP IGD) and the
// PortMapper that drives them.

/** The transport whose port is mapped. */
export type TransportProtocol = "tcp" | "udp";

/** The three ways to ask a home router for a port. */
export type PortMappingMethod = "pcp" | "natpmp" | "upnp";

/** The name a user reads in logs. */
export const METHOD_NAMES: Record<PortMappingMethod, string> = {
  pcp: "PCP",
  natpmp: "NAT-PMP",
  upnp: "UPnP",
};

/** One mapping as the gateway granted it. */
export interface Lease {
  protocol: TransportProtocol;
  internalPort: number;
  externalPort: number;
  externalAddress: string;
  /** Seconds the gateway keeps the mapping unless it is renewed; 0: until deleted. */
  lifetimeSeconds: number;
}

/** A gateway that did not give us a mapping; the message says why. */
export class PortMappingError extends Error {
  override name = "PortMappingError";
}

/** What a mapping client is asked to create or renew. */
export interface MapRequest {
  protocol: TransportProtocol;
  internalPort: number;
  lifetimeSeconds: number;
  /** The lease being renewed: its external port is asked for again. */
  previous?: Lease;
  /** First contact: retransmit briefly, since the start must not wait long. */
  probing: boolean;
}

/** One gateway spoken to in one protocol; owns its socket. */
export interface MappingClient {
  readonly method: PortMappingMethod;
  /** The gateway's address, for logs. */
  readonly gateway: string;
  /**
   * Creates or renews a mapping. `gatewayRestarted`: the gateway shows it
   * lost its mappings since it last answered, so the others need making
   * again too. Throws PortMappingError.
   */
  map(
    request: MapRequest,
    signal: AbortSignal,
  ): Promise<{ lease: Lease; gatewayRestarted: boolean }>;
  /** Deletes a mapping; false when the gateway did not confirm it. */
  unmap(lease: Lease, signal: AbortSignal): Promise<boolean>;
  close(): void;
}

/** Logs a problem with the gateway's answers, once per key. */
export type ReportProblem = (key: string, message: string) => void;
