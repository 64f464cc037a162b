// Parsing an HTTP tracker's announce reply (BEP 3), with compact peers
// (BEP 23), IPv6 peers (BEP 7) and the common extra keys: "warning message",
// "min interval", "tracker id", "complete", "incomplete".

import { decode } from "../bencode/decode.ts";
import {
  asBytes,
  asDict,
  asInt,
  asList,
  asText,
  FieldError,
} from "../bencode/access.ts";
import type { BDict, BValue } from "../bencode/types.ts";
import { BencodeError } from "../bencode/types.ts";
import { parseCompactPeers4, parseCompactPeers6 } from "./compact_peers.ts";
import { normaliseIp } from "./ip_address.ts";
import {
  type AnnounceResponse,
  type PeerAddress,
  TrackerError,
} from "./types.ts";

const latin1 = new TextDecoder("latin1");

/** The announce reply in `body`, or a TrackerError naming `url` and the problem. */
export function parseHttpAnnounceReply(
  body: Uint8Array,
  url: string,
): AnnounceResponse {
  let reply: BDict;
  try {
    reply = asDict(decode(body), "reply");
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
    return readReply(reply, url);
  } catch (e) {
    if (e instanceof FieldError) {
      throw new TrackerError(`tracker ${url}: reply's ${e.message}`);
    }
    throw e;
  }
}

function readReply(reply: BDict, url: string): AnnounceResponse {
  // BEP 3: when "failure reason" is present no other key may be relied on.
  if (reply["failure reason"] !== undefined) {
    const reason = oneLine(asText(reply["failure reason"], "failure reason"));
    throw new TrackerError(`tracker ${url} refused the announce: ${reason}`);
  }
  const interval = asInt(reply.interval, "interval");
  if (interval < 0) throw new FieldError(`interval ${interval} is negative`);
  const peers = [
    ...readPeers(reply.peers, reply.peers6 !== undefined),
    ...readPeers6(reply.peers6),
  ];
  const response: AnnounceResponse = { peers, interval };
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

/** "peers": a compact string (BEP 23) or a list of {ip, port} (BEP 3). */
function readPeers(
  value: BValue | undefined,
  hasPeers6: boolean,
): PeerAddress[] {
  if (value === undefined) {
    if (hasPeers6) return [];
    throw new FieldError("peers is missing");
  }
  if (value instanceof Uint8Array) {
    const peers = parseCompactPeers4(value);
    if (!peers) {
      throw new FieldError(
        `peers is ${value.length} bytes, not a multiple of 6`,
      );
    }
    return peers;
  }
  const peers: PeerAddress[] = [];
  asList(value, "peers").forEach((item, i) => {
    const entry = asDict(item, `peers[${i}]`);
    const ip = asText(entry.ip, `peers[${i}].ip`);
    const port = asInt(entry.port, `peers[${i}].port`);
    // BEP 3 allows a DNS name here; the swarm dials addresses only.
    const host = normaliseIp(ip);
    if (host !== undefined && port > 0 && port < 65536) {
      peers.push({ host, port });
    }
  });
  return peers;
}

/** "peers6": compact 18-byte entries (BEP 7). */
function readPeers6(value: BValue | undefined): PeerAddress[] {
  if (value === undefined) return [];
  const bytes = asBytes(value, "peers6");
  const peers = parseCompactPeers6(bytes);
  if (!peers) {
    throw new FieldError(
      `peers6 is ${bytes.length} bytes, not a multiple of 18`,
    );
  }
  return peers;
}

/** Tracker text shown to the user: one line, bounded. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim().slice(0, 200);
}
