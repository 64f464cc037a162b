// BEP 3 HTTP(S) announce: a GET with the announce parameters in the query,
// answered by a bencoded dictionary (parsed in http_reply.ts).

import { parseHttpAnnounceReply } from "./http_reply.ts";
import { peerLimit } from "./peer_sample.ts";
import {
  type AnnounceRequest,
  type AnnounceResponse,
  TrackerError,
} from "./types.ts";

export interface HttpAnnounceOptions {
  timeoutMs: number;
  /** The "tracker id" this tracker gave in an earlier reply. */
  trackerId?: string;
  signal?: AbortSignal;
}

/**
 * A reply bigger than this is not an announce reply (50 peers are ~300 bytes);
 * the bound keeps a flood's bytes bounded, the peer sample its peers.
 */
const MAX_BODY_BYTES = 2 * 1024 * 1024;

export async function announceHttp(
  url: string,
  req: AnnounceRequest,
  opts: HttpAnnounceOptions,
): Promise<AnnounceResponse> {
  const requestUrl = buildAnnounceUrl(url, req, opts.trackerId);
  const timeout = new AbortController();
  const timer = setTimeout(
    () =>
      timeout.abort(
        new TrackerError(
          `tracker ${url}: no reply within ${opts.timeoutMs} ms`,
        ),
      ),
    opts.timeoutMs,
  );
  const signal = opts.signal
    ? AbortSignal.any([timeout.signal, opts.signal])
    : timeout.signal;
  try {
    const res = await fetch(requestUrl, { signal });
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new TrackerError(
        `tracker ${url}: HTTP ${res.status} ${res.statusText}`.trimEnd(),
      );
    }
    return parseHttpAnnounceReply(
      await readBody(res, url),
      url,
      peerLimit(req.numWant),
    );
  } catch (e) {
    if (e instanceof TrackerError) throw e;
    if (signal.aborted) throw abortError(signal.reason, url);
    throw new TrackerError(`tracker ${url}: ${networkReason(e, requestUrl)}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The announce URL with the BEP 3 query appended. info_hash and peer_id are raw
 * bytes, so they are percent-encoded byte by byte (URLSearchParams would
 * encode them as UTF-8 text).
 */
export function buildAnnounceUrl(
  url: string,
  req: AnnounceRequest,
  trackerId?: string,
): string {
  const params: [string, string][] = [
    ["info_hash", percentEncodeBytes(req.infoHash)],
    ["peer_id", percentEncodeBytes(req.peerId)],
    ["port", String(req.port)],
    ["uploaded", String(req.uploaded)],
    ["downloaded", String(req.downloaded)],
    ["left", String(req.left)],
    ["compact", "1"], // BEP 23
    ["numwant", String(req.numWant)],
    ["key", (req.key >>> 0).toString(16).padStart(8, "0")],
  ];
  if (req.event !== "none") params.push(["event", req.event]);
  if (trackerId !== undefined) {
    params.push(["trackerid", percentEncodeBytes(latin1Bytes(trackerId))]);
  }
  const query = params.map(([k, v]) => `${k}=${v}`).join("&");
  const hashAt = url.indexOf("#");
  const base = hashAt < 0 ? url : url.slice(0, hashAt);
  const separator = !base.includes("?") ? "?" : /[?&]$/.test(base) ? "" : "&";
  return base + separator + query;
}

/** RFC 3986 unreserved characters as they are, every other byte as %XX. */
export function percentEncodeBytes(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x2e || b === 0x5f ||
      b === 0x7e;
    out += unreserved
      ? String.fromCharCode(b)
      : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
}

/** The body as bytes, refusing anything over MAX_BODY_BYTES. */
async function readBody(res: Response, url: string): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      throw new TrackerError(
        `tracker ${url}: reply is larger than ${MAX_BODY_BYTES} bytes`,
      );
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.length;
  }
  return body;
}

function abortError(reason: unknown, url: string): TrackerError {
  return reason instanceof TrackerError
    ? reason
    : new TrackerError(`tracker ${url}: announce cancelled`);
}

/** fetch's error, without the long request URL it repeats. */
function networkReason(e: unknown, requestUrl: string): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  const text = cause instanceof Error ? cause.message : String(cause);
  return text.replace(`error sending request for url (${requestUrl}): `, "")
    .replace(/^client error \([^)]*\): /, "")
    .split("\n")[0];
}
