// BEP 5 "Contact Encoding": a peer is 6 bytes (IPv4 address, port, network byte order), a
// node is 26 bytes (its 20-byte id, then the peer form). IPv4 only: IPv6 is BEP 32.

import { formatIPv4, ipBytes } from "../net/ip.ts";
import type { PeerAddress } from "../net/address.ts";
import { asNodeId, NODE_ID_LENGTH, type NodeId } from "./node_id.ts";

export interface NodeContact extends PeerAddress {
  id: NodeId;
}

const PEER_LENGTH = 6;
const NODE_LENGTH = NODE_ID_LENGTH + PEER_LENGTH;

/** Dotted-quad IPv4 text as 4 bytes, or undefined for anything else. */
export function ipv4Bytes(host: string): Uint8Array | undefined {
  const bytes = ipBytes(host);
  return bytes?.length === 4 ? bytes : undefined;
}

export function encodePeer(peer: PeerAddress): Uint8Array | undefined {
  const ip = ipv4Bytes(peer.host);
  if (!ip || !validPort(peer.port)) return undefined;
  const out = new Uint8Array(PEER_LENGTH);
  out.set(ip);
  out[4] = peer.port >> 8;
  out[5] = peer.port & 0xff;
  return out;
}

/** One peer from exactly 6 bytes; undefined for another length or port 0. */
export function decodePeer(bytes: Uint8Array): PeerAddress | undefined {
  if (bytes.length !== PEER_LENGTH) return undefined;
  const port = (bytes[4] << 8) | bytes[5];
  if (port === 0) return undefined;
  return { host: formatIPv4(bytes), port };
}

/** Compact node info of the contacts that have IPv4 addresses, concatenated. */
export function encodeNodes(nodes: readonly NodeContact[]): Uint8Array {
  const entries = nodes.flatMap((node) => {
    const peer = encodePeer(node);
    return peer ? [[node.id, peer] as const] : [];
  });
  const out = new Uint8Array(entries.length * NODE_LENGTH);
  entries.forEach(([id, peer], i) => {
    out.set(id, i * NODE_LENGTH);
    out.set(peer, i * NODE_LENGTH + NODE_ID_LENGTH);
  });
  return out;
}

/** Contacts from compact node info; undefined if the length is not a multiple of 26. */
export function decodeNodes(bytes: Uint8Array): NodeContact[] | undefined {
  if (bytes.length % NODE_LENGTH !== 0) return undefined;
  const nodes: NodeContact[] = [];
  for (let at = 0; at < bytes.length; at += NODE_LENGTH) {
    const peer = decodePeer(
      bytes.subarray(at + NODE_ID_LENGTH, at + NODE_LENGTH),
    );
    // a node with port 0 cannot be queried; the rest of the list is still good
    if (!peer) continue;
    // copied: the datagram buffer is reused, the id may live on in the routing table
    const id = asNodeId(bytes.slice(at, at + NODE_ID_LENGTH))!;
    nodes.push({ id, ...peer });
  }
  return nodes;
}

export function validPort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port <= 0xffff;
}

/** 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  if (host === "::1") return true;
  return ipv4Bytes(host)?.[0] === 127;
}

/**
 * Addresses that are never a node or a peer: 0.0.0.0/8 ("this network"), 224.0.0.0/4
 * (multicast), 240.0.0.0/4 (reserved, with 255.255.255.255, broadcast). Anything that is
 * not dotted-quad IPv4 is unusable too: this DHT is IPv4 only.
 */
export function isUnusableHost(host: string): boolean {
  const ip = ipv4Bytes(host);
  return !ip || ip[0] === 0 || ip[0] >= 224;
}

/**
 * Loopback, RFC 1918 private, 100.64.0.0/10 (carrier-grade NAT) and 169.254.0.0/16
 * (link-local): addresses that say nothing about how the Internet sees us.
 */
export function isPrivateHost(host: string): boolean {
  const ip = ipv4Bytes(host);
  if (!ip) return isLoopbackHost(host);
  const [a, b] = ip;
  return a === 127 || a === 10 || (a === 172 && b >= 16 && b < 32) ||
    (a === 192 && b === 168) || (a === 169 && b === 254) ||
    (a === 100 && b >= 64 && b < 128);
}

/**
 * Whether an address another node told us about (a reply's "nodes" or "values") may be
 * used. Never the unusable ranges; 127.0.0.0/8 only when loopback is where we live (our
 * socket is bound to loopback, or the reply itself came from loopback, as in tests):
 * otherwise a remote node could aim our queries and peers at our own host's services.
 */
export function usableAddress(host: string, loopbackOk: boolean): boolean {
  if (isUnusableHost(host)) return false;
  return loopbackOk || !isLoopbackHost(host);
}
