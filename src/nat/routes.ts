// The default gateway and our own address towards a host, from Linux's
// routing table (/proc/net/route) and address list (/proc/net/fib_trie). Both
// files are per network namespace, need no extra permission beyond reading,
// and are parsed here as plain text; only readRoutingTables touches them.
//
// /proc/net/route prints each IPv4 address as the hex of its in-memory 32-bit
// word, so on a little-endian machine (every Deno target) 192.168.77.1
// appears as 014DA8C0.

import * as fs from "node:fs";

export interface RoutingTables {
  /** /proc/net/route */
  routes: string;
  /** /proc/net/fib_trie */
  fibTrie: string;
}

interface Route {
  iface: string;
  destination: number;
  gateway: number;
  mask: number;
  metric: number;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/** Both files, or undefined where they do not exist (not Linux). */
export function readRoutingTables(): RoutingTables | undefined {
  try {
    return {
      routes: fs.readFileSync("/proc/net/route", "utf8"),
      fibTrie: fs.readFileSync("/proc/net/fib_trie", "utf8"),
    };
  } catch {
    return undefined;
  }
}

/** The gateway of the default route with the lowest metric. */
export function defaultGateway(routes: string): string | undefined {
  const best = parseRoutes(routes)
    .filter((r) => r.destination === 0 && r.mask === 0 && r.gateway !== 0)
    .sort((a, b) => a.metric - b.metric)[0];
  return best && formatIPv4(best.gateway);
}

/**
 * The local address packets to `host` leave from: an address of ours on
 * the interface the best route to `host` uses, inside one of that
 * interface's directly connected subnets. `host` itself when it is ours.
 * An address without a subnet (a /32 with an "onlink" default route, as
 * some hosting and PPP setups have) is in none of them: then our only
 * address other than loopback, when there is exactly one.
 */
export function localAddressToward(
  host: string,
  tables: RoutingTables,
): string | undefined {
  const target = parseIPv4(host);
  if (target === undefined) return undefined;
  const locals = localAddresses(tables.fibTrie);
  if (locals.includes(target)) return host;
  const routes = parseRoutes(tables.routes);
  const best = bestRoute(target, routes);
  if (!best) return undefined;
  const near = best.gateway !== 0 ? best.gateway : target;
  const subnets = routes.filter((r) =>
    r.iface === best.iface && r.gateway === 0 && r.mask !== 0
  ).sort((a, b) => Number(inSubnet(near, b)) - Number(inSubnet(near, a)));
  for (const subnet of subnets) {
    const mine = locals.find((a) => inSubnet(a, subnet));
    if (mine !== undefined) return formatIPv4(mine);
  }
  const others = locals.filter((a) => a >>> 24 !== 127);
  return others.length === 1 ? formatIPv4(others[0]) : undefined;
}

/** Whether `host` is reached directly, not through a router: the best route to it has no gateway. */
export function isOnLink(host: string, tables: RoutingTables): boolean {
  const target = parseIPv4(host);
  if (target === undefined) return false;
  const best = bestRoute(target, parseRoutes(tables.routes));
  return best !== undefined && best.gateway === 0;
}

/** The longest-prefix route to `target`, the lowest metric among equals. */
function bestRoute(target: number, routes: Route[]): Route | undefined {
  return routes
    .filter((r) => ((target & r.mask) >>> 0) === r.destination)
    .sort((a, b) =>
      popCount(b.mask) - popCount(a.mask) || a.metric - b.metric
    )[0];
}

function parseRoutes(text: string): Route[] {
  const routes: Route[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const flags = parseInt(f[3], 16);
    const [destination, gateway, mask] = [f[1], f[2], f[7]].map(hexWord);
    if (
      !(flags & RTF_UP) || destination === undefined ||
      gateway === undefined || mask === undefined
    ) continue;
    routes.push({
      iface: f[0],
      destination,
      gateway: flags & RTF_GATEWAY ? gateway : 0,
      mask,
      metric: Number(f[6]) || 0,
    });
  }
  return routes;
}

/** Our own addresses: the "/32 host LOCAL" leaves of fib_trie. */
function localAddresses(fibTrie: string): number[] {
  const found = new Set<number>();
  let leaf: number | undefined;
  for (const line of fibTrie.split("\n")) {
    const match = /^\s*\|-- (\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (match) leaf = parseIPv4(match[1]);
    else if (/^\s*\/32 host LOCAL/.test(line) && leaf !== undefined) {
      found.add(leaf);
    }
  }
  return [...found];
}

/** A /proc/net/route field: the address bytes in reverse order. */
function hexWord(field: string): number | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(field)) return undefined;
  const n = parseInt(field, 16);
  return (((n & 0xff) << 24) | ((n >>> 8 & 0xff) << 16) |
    ((n >>> 16 & 0xff) << 8) | (n >>> 24)) >>> 0;
}

function parseIPv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    n = n * 256 + Number(part);
  }
  return n;
}

function formatIPv4(n: number): string {
  return [n >>> 24, n >>> 16 & 0xff, n >>> 8 & 0xff, n & 0xff].join(".");
}

function inSubnet(address: number, route: Route): boolean {
  return ((address & route.mask) >>> 0) === route.destination;
}

function popCount(mask: number): number {
  let count = 0;
  for (let m = mask >>> 0; m; m = (m & (m - 1)) >>> 0) count++;
  return count;
}
