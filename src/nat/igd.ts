// UPnP Internet Gateway Device (IGD v1 and v2), sans-IO: the WAN connection
// service found in a device description (UPnP Device Architecture 1.1 §2.3),
// and the SOAP 1.1 envelopes of its actions and their replies or faults
// (§3.2). WANIPConnection:1/2 and WANPPPConnection:1 share the actions used
// here: GetExternalIPAddress, AddPortMapping, GetSpecificPortMappingEntry and
// DeletePortMapping.

import { childText, descendants, escapeXml, parseXml } from "./xml.ts";

/** Preferred first: v2 has the clearer lease rules; PPP is for DSL modems. */
const SERVICE_TYPES = [
  "urn:schemas-upnp-org:service:WANIPConnection:2",
  "urn:schemas-upnp-org:service:WANIPConnection:1",
  "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/** UPnP error codes the client acts on (WANIPConnection:2 §2.5). */
export const UPNP_ERRORS = {
  noSuchEntry: 714,
  conflict: 718,
  samePortValuesRequired: 724,
  onlyPermanentLeases: 725,
} as const;

export interface ConnectionService {
  serviceType: string;
  controlUrl: URL;
}

export type SoapResult =
  | { kind: "ok"; values: Map<string, string> }
  | { kind: "fault"; code: number; description: string }
  | { kind: "malformed"; reason: string };

/**
 * The WAN connection services of the description fetched from `location`,
 * preferred first. A gateway may list several (a DSL modem often has a
 * WANIPConnection that is not connected beside the WANPPPConnection that
 * is), so the caller tries each. A control URL must be on the same host as
 * the description (any port: some gateways serve control on another one):
 * requests go to the gateway's own LAN address and nowhere else.
 */
export function findConnectionServices(
  description: string,
  location: URL,
): ConnectionService[] | { error: string } {
  const root = parseXml(description);
  const services = descendants(root, "service").map((s) => ({
    serviceType: childText(s, "serviceType") ?? "",
    controlUrl: childText(s, "controlURL") ?? "",
  })).filter((s) => SERVICE_TYPES.includes(s.serviceType) && s.controlUrl);
  services.sort((a, b) =>
    SERVICE_TYPES.indexOf(a.serviceType) - SERVICE_TYPES.indexOf(b.serviceType)
  );
  if (services.length === 0) {
    return { error: "no WAN connection service in the description" };
  }
  const base = descendants(root, "URLBase")[0]?.text.trim() || location.href;
  const found: ConnectionService[] = [];
  let error = "";
  for (const service of services) {
    let controlUrl: URL;
    try {
      controlUrl = new URL(service.controlUrl, base);
    } catch {
      error ||= `control URL ${
        JSON.stringify(service.controlUrl)
      } is not a URL`;
      continue;
    }
    if (
      controlUrl.protocol !== "http:" ||
      controlUrl.hostname !== location.hostname
    ) {
      error ||=
        `control URL ${controlUrl.href} is not on the gateway ${location.hostname}`;
      continue;
    }
    found.push({ serviceType: service.serviceType, controlUrl });
  }
  return found.length > 0 ? found : { error };
}

/** The body and SOAPAction header of one action call. */
export function encodeSoapRequest(
  serviceType: string,
  action: string,
  args: ReadonlyArray<readonly [string, string]>,
): { body: string; soapAction: string } {
  const fields = args.map(([name, value]) =>
    `<${name}>${escapeXml(value)}</${name}>`
  ).join("");
  const body = '<?xml version="1.0"?>\r\n' +
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" ' +
    's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">' +
    `<s:Body><u:${action} xmlns:u="${escapeXml(serviceType)}">${fields}` +
    `</u:${action}></s:Body></s:Envelope>\r\n`;
  return { body, soapAction: `"${serviceType}#${action}"` };
}

/** An action's reply: its output arguments, a UPnP fault, or why it is neither. */
export function decodeSoapResponse(
  status: number,
  body: string,
  action: string,
): SoapResult {
  const root = parseXml(body);
  const fault = descendants(root, "Fault")[0];
  if (fault) {
    const error = descendants(fault, "UPnPError")[0];
    const code = Number(error && childText(error, "errorCode"));
    const description = (error && childText(error, "errorDescription")) ||
      childText(fault, "faultstring") || "";
    if (!Number.isInteger(code)) {
      return {
        kind: "malformed",
        reason: `a fault without an error code (HTTP ${status})`,
      };
    }
    return { kind: "fault", code, description };
  }
  if (status !== 200) {
    return { kind: "malformed", reason: `HTTP status ${status}` };
  }
  const reply = descendants(root, `${action}Response`)[0];
  if (!reply) {
    return { kind: "malformed", reason: `no ${action}Response element` };
  }
  const values = new Map<string, string>();
  for (const child of reply.children) values.set(child.name, child.text.trim());
  return { kind: "ok", values };
}
