// Magnet links (BEP 9, "magnet URI format"): a swarm named by its v1
// info-hash, with an optional display name, trackers, peer addresses and web
// seeds. The metadata itself comes from peers later (ut_metadata).

import { normaliseIp } from "../net/ip.ts";
import type { PeerAddress } from "../net/address.ts";
import { toHex } from "./metainfo.ts";

export interface MagnetLink {
  infoHash: Uint8Array;
  infoHashHex: string;
  /** `dn`, or null when absent or empty. */
  name: string | null;
  /** Each `tr` is a tier of its own, in link order (BEP 9 gives no tiers). */
  trackers: string[][];
  /** `x.pe` addresses; an IPv6 host is given without its brackets. */
  peers: PeerAddress[];
  /** `ws` URLs (BEP 19 web seeds), kept for when web seeding is built. */
  webSeeds: string[];
}

/** A magnet link that cannot be used; the message names what is wrong. */
export class MagnetError extends Error {
  override name = "MagnetError";
}

const SUPPORTED_TRACKER = /^(https?|udp):\/\//i;
const WEB_SEED = /^https?:\/\//i;
const HEX_HASH = /^[0-9a-f]{40}$/i;
const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/** Hostname of an x.pe peer: letters, digits, dots and dashes only. */
const HOSTNAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i;

/** True when `arg` looks like a magnet link rather than a file path. */
export function isMagnet(arg: string): boolean {
  return /^magnet:\?/i.test(arg.trim());
}

export function parseMagnet(uri: string): MagnetLink {
  const text = uri.trim();
  if (!isMagnet(text)) {
    throw new MagnetError("not a magnet link (it must start with magnet:?)");
  }
  const params = queryParams(text.slice("magnet:?".length).split("#")[0]);

  const infoHash = exactTopic(params.get("xt") ?? []);
  const name = (params.get("dn") ?? [])[0] || null;
  const trackers = unique(params.get("tr") ?? [])
    .filter((url) => SUPPORTED_TRACKER.test(url))
    .map((url) => [url]);
  const peers = uniquePeers((params.get("x.pe") ?? []).map(peerAddress));
  const webSeeds = unique(params.get("ws") ?? [])
    .filter((url) => WEB_SEED.test(url));
  return {
    infoHash,
    infoHashHex: toHex(infoHash),
    name,
    trackers,
    peers,
    webSeeds,
  };
}

/**
 * A magnet link for a torrent we know (`xt`, `dn`, one `tr` per tracker in
 * tier order), the form a user can paste into any client.
 */
export function magnetUri(
  infoHashHex: string,
  name: string | null,
  trackers: readonly string[][] | readonly string[] = [],
): string {
  let uri = `magnet:?xt=urn:btih:${infoHashHex.toLowerCase()}`;
  if (name) uri += `&dn=${encodeURIComponent(name)}`;
  for (const url of trackers.flat()) uri += `&tr=${encodeURIComponent(url)}`;
  return uri;
}

/**
 * The magnet link in a .magnet text file: its first line that is neither
 * empty nor a `#` comment. Errors name the file.
 */
export async function readMagnetFile(path: string): Promise<MagnetLink> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new MagnetError(`${path}: cannot read: ${(e as Error).message}`);
  }
  const line = text.replace(/^\uFEFF/, "").split(/\r?\n/).map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  if (line === undefined) {
    throw new MagnetError(`${path}: holds no magnet link`);
  }
  try {
    return parseMagnet(line);
  } catch (e) {
    if (e instanceof MagnetError) {
      throw new MagnetError(`${path}: ${e.message}`);
    }
    throw e;
  }
}

/**
 * Decoded values by key, in link order. Keys are lowercased; a numbered key
 * such as `xt.1` or `tr.2` (the magnet convention for lists) counts as its
 * base key. Values are form-decoded: `+` is a space, then `%XX` escapes.
 */
function queryParams(query: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const key = formDecode(rawKey, "a parameter name").toLowerCase()
      .replace(/\.\d+$/, "");
    const value = formDecode(eq < 0 ? "" : part.slice(eq + 1), key).trim();
    const values = params.get(key);
    if (values) values.push(value);
    else params.set(key, [value]);
  }
  return params;
}

function formDecode(text: string, what: string): string {
  try {
    return decodeURIComponent(text.replaceAll("+", " "));
  } catch {
    throw new MagnetError(`bad percent-encoding in ${what}: "${text}"`);
  }
}

/**
 * The one v1 info-hash among the `xt` values. BEP 9 allows 40 hex digits or,
 * for older links, 32 base32 characters. A link may also carry a v2 `btmh`
 * hash (BEP 53), which we do not use.
 */
function exactTopic(topics: string[]): Uint8Array {
  if (topics.length === 0) {
    throw new MagnetError("the magnet link has no xt (exact topic) parameter");
  }
  const hashes = new Map<string, Uint8Array>();
  for (const topic of topics) {
    const match = /^urn:btih:(.*)$/i.exec(topic);
    if (!match) continue;
    const hash = btih(match[1]);
    hashes.set(toHex(hash), hash);
  }
  if (hashes.size === 0) {
    if (topics.some((t) => /^urn:btmh:/i.test(t))) {
      throw new MagnetError(
        "a BitTorrent v2-only magnet link (xt=urn:btmh) is not supported; " +
          "it needs an xt=urn:btih info-hash",
      );
    }
    throw new MagnetError(
      `xt is not a BitTorrent info-hash (urn:btih:...): "${topics[0]}"`,
    );
  }
  if (hashes.size > 1) {
    throw new MagnetError(
      `the magnet link names ${hashes.size} different info-hashes; ` +
        "give one torrent per link",
    );
  }
  return [...hashes.values()][0];
}

function btih(text: string): Uint8Array {
  if (text.length === 40) {
    if (!HEX_HASH.test(text)) {
      throw new MagnetError(`info-hash "${text}" is not 40 hex digits`);
    }
    const out = new Uint8Array(20);
    for (let i = 0; i < 20; i++) {
      out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
    }
    return out;
  }
  if (text.length === 32) return base32(text);
  throw new MagnetError(
    `info-hash "${text}" is ${text.length} characters, ` +
      "not 40 (hex) or 32 (base32)",
  );
}

/** RFC 4648 base32 without padding: 32 characters carry exactly 160 bits. */
function base32(text: string): Uint8Array {
  const out = new Uint8Array(20);
  let bits = 0, acc = 0, at = 0;
  for (const ch of text.toUpperCase()) {
    const v = BASE32_ALPHABET.indexOf(ch);
    if (v < 0) {
      throw new MagnetError(
        `info-hash "${text}" is not base32 ("${ch}" is not in A-Z, 2-7)`,
      );
    }
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** BEP 9 `x.pe`: hostname:port, ipv4:port or [ipv6]:port. */
function peerAddress(text: string): PeerAddress {
  const match = /^(?:\[([^\]]*)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : 0;
  if (!match || port < 1 || port > 65535) {
    throw new MagnetError(
      `x.pe "${text}" is not host:port or [ipv6]:port with a port 1-65535`,
    );
  }
  if (match[1] !== undefined) {
    const host = normaliseIp(match[1]);
    if (host === undefined || !match[1].includes(":")) {
      throw new MagnetError(`x.pe "${text}" has a bad IPv6 address`);
    }
    return { host, port };
  }
  const host = match[2];
  const ip = normaliseIp(host);
  if (ip !== undefined) return { host: ip, port };
  if (/^[\d.]+$/.test(host) || !HOSTNAME.test(host)) {
    throw new MagnetError(`x.pe "${text}" has a bad host "${host}"`);
  }
  return { host: host.toLowerCase(), port };
}

function unique(values: string[]): string[] {
  return [...new Set(values.filter((v) => v !== ""))];
}

function uniquePeers(peers: PeerAddress[]): PeerAddress[] {
  const seen = new Set<string>();
  return peers.filter((p) => {
    const key = `${p.host}|${p.port}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
