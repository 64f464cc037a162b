// SSDP search (UPnP Device Architecture 1.1 §1.3.2, §1.3.3), sans-IO: the
// M-SEARCH request multicast to 239.255.255.250:1900 and the unicast
// "HTTP/1.1 200 OK" a device answers with, whose LOCATION header is the URL
// of its description.

export const SSDP_ADDRESS = "239.255.255.250";
export const SSDP_PORT = 1900;
/** IGD v2 devices answer a v1 search too (IGD 2.0 §2.1). */
export const IGD_SEARCH_TARGET =
  "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/** A search response is a few hundred bytes; anything much longer is not one. */
const MAX_RESPONSE_BYTES = 4096;
/** The search targets of a gateway or of its WAN connection service. */
const GATEWAY_TARGET =
  /^urn:schemas-upnp-org:(device:InternetGatewayDevice|service:WANIPConnection|service:WANPPPConnection):\d+$/;

export type SearchResponse =
  | { kind: "found"; location: URL; searchTarget: string }
  | { kind: "malformed"; reason: string };

/** §1.3.2: MX is how many seconds a device may wait before answering. */
export function encodeMSearch(
  searchTarget: string,
  mxSeconds: number,
): Uint8Array {
  return new TextEncoder().encode(
    "M-SEARCH * HTTP/1.1\r\n" +
      `HOST: ${SSDP_ADDRESS}:${SSDP_PORT}\r\n` +
      'MAN: "ssdp:discover"\r\n' +
      `MX: ${mxSeconds}\r\n` +
      `ST: ${searchTarget}\r\n` +
      "\r\n",
  );
}

/** A datagram answering our search: the description URL, or why it is unusable. */
export function decodeSearchResponse(datagram: Uint8Array): SearchResponse {
  if (datagram.length > MAX_RESPONSE_BYTES) {
    return malformed(`${datagram.length} bytes, too long`);
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(datagram);
  const lines = text.split(/\r?\n/);
  if (!/^HTTP\/1\.[01] 200\b/i.test(lines[0])) {
    return malformed(`status line ${JSON.stringify(lines[0].slice(0, 40))}`);
  }
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  const searchTarget = headers.get("st") ?? "";
  if (!GATEWAY_TARGET.test(searchTarget)) {
    return malformed(
      `search target ${JSON.stringify(searchTarget)} is not a gateway`,
    );
  }
  const locationText = headers.get("location");
  if (!locationText) return malformed("no LOCATION header");
  let location: URL;
  try {
    location = new URL(locationText);
  } catch {
    return malformed(`LOCATION ${JSON.stringify(locationText)} is not a URL`);
  }
  if (location.protocol !== "http:") {
    return malformed(`LOCATION ${location.href} is not http`);
  }
  return { kind: "found", location, searchTarget };
}

/**
 * The order to try the gateways that answered a search in: the default
 * gateway first, then the hosts on our own link, then the rest, each group
 * in the order they answered. Any LAN host can answer a search; the router
 * our traffic goes through is the one whose mapping helps.
 */
export function orderGateways(
  locations: readonly URL[],
  defaultGateway: string | undefined,
  onLink: (host: string) => boolean,
): URL[] {
  const rank = (url: URL) =>
    url.hostname === defaultGateway ? 0 : onLink(url.hostname) ? 1 : 2;
  return locations.map((url, i) => ({ url, i, rank: rank(url) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .map((entry) => entry.url);
}

function malformed(reason: string): SearchResponse {
  return { kind: "malformed", reason };
}
