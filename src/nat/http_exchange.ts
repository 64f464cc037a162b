// A small HTTP/1.1 client for the UPnP gateway on the LAN (device
// description and SOAP control). It talks to the router directly over TCP:
// fetch() would send LAN requests through an HTTP_PROXY from the user's
// environment, which cannot reach the router. One request per connection
// (Connection: close), the answer bounded in size, no redirects.

export interface HttpExchangeRequest {
  method: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
}

export interface HttpExchangeResponse {
  status: number;
  body: string;
}

/** Header block (status line and headers) accepted at most. */
const MAX_HEAD_BYTES = 16 * 1024;

/** Sends one request to an http:// URL; throws an Error naming the problem. */
export async function httpExchange(
  url: URL,
  request: HttpExchangeRequest,
  options: { signal: AbortSignal; maxBodyBytes: number },
): Promise<HttpExchangeResponse> {
  if (url.protocol !== "http:") {
    throw new Error(`${url.protocol} URLs are not spoken here`);
  }
  const port = url.port === "" ? 80 : Number(url.port);
  const conn = await Deno.connect({
    hostname: url.hostname.replace(/^\[|\]$/g, ""),
    port,
    signal: options.signal,
  });
  const abort = () => {
    try {
      conn.close();
    } catch { /* closed already */ }
  };
  options.signal.addEventListener("abort", abort, { once: true });
  try {
    const body = new TextEncoder().encode(request.body ?? "");
    const head = [
      `${request.method} ${url.pathname}${url.search} HTTP/1.1`,
      `Host: ${url.host}`,
      "Connection: close",
      `Content-Length: ${body.length}`,
      ...Object.entries(request.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ].join("\r\n");
    const out = new Uint8Array([...new TextEncoder().encode(head), ...body]);
    for (let off = 0; off < out.length;) {
      off += await conn.write(out.subarray(off));
    }
    const limit = MAX_HEAD_BYTES + options.maxBodyBytes + 1024;
    const received = new Uint8Array(limit);
    let length = 0;
    while (length < limit) {
      const n = await conn.read(received.subarray(length));
      if (n === null) break;
      length += n;
      const done = completeLength(received.subarray(0, length));
      if (done !== null && length >= done) break;
    }
    if (options.signal.aborted) throw new Error("aborted");
    return parseHttpResponse(
      received.subarray(0, length),
      options.maxBodyBytes,
    );
  } catch (e) {
    if (options.signal.aborted) throw new Error("aborted");
    throw e;
  } finally {
    options.signal.removeEventListener("abort", abort);
    abort();
  }
}

/**
 * Reads a whole HTTP/1.x response: status, and the body by Content-Length,
 * chunked transfer coding or up to the end, cut at maxBodyBytes. Throws an
 * Error for anything that is not an HTTP response.
 */
export function parseHttpResponse(
  bytes: Uint8Array,
  maxBodyBytes: number,
): HttpExchangeResponse {
  const split = headEnd(bytes);
  if (split < 0) {
    throw new Error(
      bytes.length === 0 ? "empty answer" : "answer has no complete header",
    );
  }
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, split));
  const [statusLine, ...lines] = head.split("\r\n");
  const status = statusLine.match(/^HTTP\/1\.[01] (\d{3})(?: |$)/);
  if (!status) {
    throw new Error(`not an HTTP status line: ${statusLine.slice(0, 60)}`);
  }
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(
        line.slice(0, colon).trim().toLowerCase(),
        line.slice(colon + 1).trim(),
      );
    }
  }
  let body = bytes.subarray(split + 4);
  if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
    body = dechunk(body);
  } else if (headers.has("content-length")) {
    const declared = Number(headers.get("content-length"));
    if (Number.isSafeInteger(declared) && declared >= 0) {
      body = body.subarray(0, declared);
    }
  }
  return {
    status: Number(status[1]),
    body: new TextDecoder("utf-8", { fatal: false }).decode(
      body.subarray(0, maxBodyBytes),
    ),
  };
}

/** Where the header block ends (the index of CRLFCRLF), or -1. */
function headEnd(bytes: Uint8Array): number {
  const end = Math.min(bytes.length, MAX_HEAD_BYTES);
  for (let i = 0; i + 3 < end; i++) {
    if (
      bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 &&
      bytes[i + 3] === 10
    ) return i;
  }
  return -1;
}

/** The response's total length once its header says (Content-Length), else null (read to the end). */
function completeLength(bytes: Uint8Array): number | null {
  const split = headEnd(bytes);
  if (split < 0) return null;
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, split));
  const match = head.match(/\r\ncontent-length:\s*(\d+)/i);
  if (!match || /\r\ntransfer-encoding:/i.test(head)) return null;
  return split + 4 + Number(match[1]);
}

/** RFC 9112 chunked coding; a truncated or malformed stream keeps what came. */
function dechunk(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    let lineEnd = at;
    while (
      lineEnd + 1 < bytes.length &&
      !(bytes[lineEnd] === 13 && bytes[lineEnd + 1] === 10)
    ) {
      lineEnd++;
    }
    if (lineEnd + 1 >= bytes.length) break;
    const sizeText = new TextDecoder("latin1").decode(
      bytes.subarray(at, lineEnd),
    )
      .split(";")[0].trim();
    const size = /^[0-9a-f]+$/i.test(sizeText) ? parseInt(sizeText, 16) : NaN;
    if (!Number.isSafeInteger(size) || size === 0) break;
    const start = lineEnd + 2;
    parts.push(bytes.subarray(start, Math.min(bytes.length, start + size)));
    at = start + size + 2;
    if (at > bytes.length) break;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
