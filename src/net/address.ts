// A peer's address, and its one text form: HOST:PORT, with an IPv6 host in
// brackets ([::1]:6881), as flags, config keys, logs and rating keys spell it.

/** A peer's host and port. */
export interface PeerAddress {
  /** IPv4 dotted quad, IPv6 text or a host name; a v4-mapped IPv6 address is given as IPv4. */
  host: string;
  port: number;
}

/** HOST:PORT, brackets around an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * HOST:PORT (IPv6 in brackets) split, the host not resolved; null if `text`
 * is not that or the port is not 0-65535.
 */
export function parseHostPort(text: string): PeerAddress | null {
  const match = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(text) ??
    /^([^:\[\]\s]+):(\d{1,5})$/.exec(text);
  if (!match) return null;
  const port = Number(match[2]);
  return port <= 65535 ? { host: match[1], port } : null;
}

/** A dual-stack socket names an IPv4 peer ::ffff:a.b.c.d: give it as a.b.c.d. */
export function unmapIPv4(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".")
    ? host.slice(7)
    : host;
}
