// Parsing an HTTP tracker's announce reply (BEP 3), with compact peers
// (BEP 23), IPv6 peers (BEP 7) and the common extra keys: "warning message",
// "min interval", "tracker id", "complete", "incomplete". A dictionary peer
// list is decoded one entry at a time into a bounded sample, never as a whole.

import { decode, decodePrefix } from "../bencode/decode.ts";
import {
  asBytes,
  asDict,
  asInt,
  asText,
  FieldError,
} from "../bencode/access.ts";
import type { BDict, BValue } from "../bencode/types.ts";
import { BencodeError } from "../bencode/types.ts";
import { PeerSample } from "./peer_sample.ts";
import { type AnnounceResponse, TrackerError } from "./types.ts";

const latin1 = new TextDecoder("latin1");

/**
 * The announce reply in `body`, keeping a random `peerLimit` of its dialable
 * peers, or a TrackerError naming `url` and the problem.
 */
export function parseHttpAnnounceReply(
  body: Uint8Array,
  url: string,
  peerLimit: number,
  random: () => number = Math.random,
): AnnounceResponse {
  let reply: TopLevel;
  try {
    reply = decodeTopLevel(body);
  } catch (e) {
    if (e instanceof BencodeError) {
      throw new TrackerError(
        `tracker ${url}: reply is not bencode (${e.message})`,
      );
    }
    if (e instanceof FieldError) {
      throw new TrackerError(`tracker ${url}: ${e.message}`);
    }
    throw e;
  }
  try {
    return readReply(reply, body, url, new PeerSample(peerLimit, random));
  } catch (e) {
    if (e instanceof FieldError) {
      throw new TrackerError(`tracker ${url}: reply's ${e.message}`);
    }
    throw e;
  }
}

/** The reply's keys; a "peers" list is checked but left in `body` at `peersListAt`. */
interface TopLevel {
  dict: BDict;
  peersListAt?: number;
}

function decodeTopLevel(body: Uint8Array): TopLevel {
  if (body[0] !== 0x64) return { dict: asDict(decode(body), "reply") }; // not 'd'
  const dict: BDict = Object.create(null);
  let peersListAt: number | undefined;
  let at = 1;
  while (body[at] !== 0x65) { // 'e'
    const key = decodePrefix(body, at);
    if (!(key.value instanceof Uint8Array)) {
      throw new BencodeError(`dictionary key is not a string at byte ${at}`);
    }
    const name = latin1.decode(key.value);
    if (name in dict) {
      throw new BencodeError(
        `duplicate dictionary key "${name}" at byte ${at}`,
      );
    }
    at = key.end;
    if (name === "peers" && body[at] === 0x6c) { // 'l'
      peersListAt = at;
      dict[name] = [];
      at = forEachListItem(body, at, () => {});
    } else {
      const value = decodePrefix(body, at);
      dict[name] = value.value;
      at = value.end;
    }
  }
  at++;
  if (at !== body.length) {
    throw new BencodeError(
      `${body.length - at} trailing bytes after the value`,
    );
  }
  return { dict, peersListAt };
}

/** Decodes the list at `at` one item at a time; returns the offset past it. */
function forEachListItem(
  body: Uint8Array,
  at: number,
  visit: (item: BValue, index: number) => void,
): number {
  let pos = at + 1; // past 'l'
  for (let index = 0; body[pos] !== 0x65; index++) {
    const item = decodePrefix(body, pos); // throws at the end of the input
    visit(item.value, index);
    pos = item.end;
  }
  return pos + 1;
}

function readReply(
  { dict: reply, peersListAt }: TopLevel,
  body: Uint8Array,
  url: string,
  sample: PeerSample,
): AnnounceResponse {
  // BEP 3: when "failure reason" is present no other key may be relied on.
  if (reply["failure reason"] !== undefined) {
    const reason = oneLine(asText(reply["failure reason"], "failure reason"));
    throw new TrackerError(`tracker ${url} refused the announce: ${reason}`);
  }
  const interval = asInt(reply.interval, "interval");
  if (interval < 0) throw new FieldError(`interval ${interval} is negative`);
  if (peersListAt !== undefined) readPeerList(body, peersListAt, sample);
  else readCompactPeers(reply.peers, reply.peers6 !== undefined, sample);
  readPeers6(reply.peers6, sample);
  const response: AnnounceResponse = {
    peers: sample.peers,
    listedPeers: sample.listed,
    interval,
  };
  if (reply["min interval"] !== undefined) {
    response.minInterval = asInt(reply["min interval"], "min interval");
  }
  if (reply["warning message"] !== undefined) {
    response.warning = oneLine(
      asText(reply["warning message"], "warning message"),
    );
  }
  if (reply["tracker id"] !== undefined) {
    // Kept as latin1 so it goes back to the tracker byte for byte.
    response.trackerId = latin1.decode(
      asBytes(reply["tracker id"], "tracker id"),
    );
  }
  if (reply.complete !== undefined) {
    response.complete = asInt(reply.complete, "complete");
  }
  if (reply.incomplete !== undefined) {
    response.incomplete = asInt(reply.incomplete, "incomplete");
  }
  return response;
}

/** "peers" as a compact string (BEP 23); it may be absent when "peers6" is there. */
function readCompactPeers(
  value: BValue | undefined,
  hasPeers6: boolean,
  sample: PeerSample,
): void {
  if (value === undefined) {
    if (hasPeers6) return;
    throw new FieldError("peers is missing");
  }
  const bytes = asBytes(value, "peers");
  if (!sample.addCompact(bytes, 4)) {
    throw new FieldError(`peers is ${bytes.length} bytes, not a multiple of 6`);
  }
}

/** "peers" as a list of {ip, port} (BEP 3), read entry by entry. */
function readPeerList(body: Uint8Array, at: number, sample: PeerSample): void {
  forEachListItem(body, at, (item, i) => {
    const entry = asDict(item, `peers[${i}]`);
    const ip = asText(entry.ip, `peers[${i}].ip`);
    const port = asInt(entry.port, `peers[${i}].port`);
    // BEP 3 allows a DNS name here; the swarm dials addresses only.
    sample.addText(ip, port);
  });
}

/** "peers6": compact 18-byte entries (BEP 7). */
function readPeers6(value: BValue | undefined, sample: PeerSample): void {
  if (value === undefined) return;
  const bytes = asBytes(value, "peers6");
  if (!sample.addCompact(bytes, 16)) {
    throw new FieldError(
      `peers6 is ${bytes.length} bytes, not a multiple of 18`,
    );
  }
}

/** Tracker text shown to the user: one line, bounded. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim().slice(0, 200);
}
