// A malicious (or merely odd) peer for robustness tests: it listens on 127.0.0.1, answers
// the BEP 3 handshake for one info-hash, then runs one chosen attack on every connection,
// so it repeats when the client under test reconnects. What it observes of the client is
// kept as timestamped notes. Its wire bytes are encoded here by hand so that it shares no
// code (and no bugs) with the client.

export type HostileAttack =
  /** random bytes after the handshake, until the client hangs up */
  | "garbage"
  /** a 4 GiB length prefix (HUGE_LENGTH), then a byte now and then */
  | "huge-length"
  /** a bitfield one byte longer than the piece count allows, then silence */
  | "bad-bitfield"
  /** an empty bitfield, interested, then REQUEST_FLOOD_COUNT requests, mostly invalid */
  | "request-flood"
  /** the handshake, then nothing at all on an open socket */
  | "silent"
  /** has every piece, unchokes, answers every request with random data */
  | "wrong-data"
  /** has every piece, unchokes, answers no request but sends blocks nobody asked for */
  | "unsolicited"
  /** speaks BEP 10, then sends METADATA_FLOOD_COUNT ut_metadata requests and reads nothing */
  | "metadata-flood"
  /**
   * speaks BEP 10 (ut_metadata 3, ut_pex 4, reqq SECOND_HANDSHAKE_REQQ), has every piece,
   * then sends a second extended handshake naming none of those; asks for metadata piece 0
   * and serves requests from `payload`. Notes "metadata <msg_type>", "pex" and
   * "in flight <n>" (requests unanswered, after each request)
   */
  | "second-handshake"
  /** answers the handshake with another info-hash, then reads until the client hangs up */
  | "other-torrent"
  /** has no piece, says interested and never requests anything; notes "unchoked" and "choked" */
  | "slot-hog";

export const HOSTILE_ATTACKS: readonly HostileAttack[] = [
  "garbage",
  "huge-length",
  "bad-bitfield",
  "request-flood",
  "silent",
  "wrong-data",
  "unsolicited",
  "metadata-flood",
  "second-handshake",
  "other-torrent",
  "slot-hog",
];

export interface HostilePeerOptions {
  infoHash: Uint8Array;
  pieceCount: number;
  pieceLength: number;
  attack: HostileAttack;
  /** The torrent's content, for attacks that serve real blocks ("second-handshake"). */
  payload?: Uint8Array;
}

export interface HostileNote {
  /** performance.now() when it was observed. */
  at: number;
  text: string;
}

export interface HostilePeer {
  port: number;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** What the attacks observed of the client, oldest first. */
  readonly notes: readonly HostileNote[];
  /** Resolves with the first note matching `pattern` (seen or still to come). */
  waitForNote(pattern: RegExp, timeoutMs: number): Promise<HostileNote>;
  /** Closes the listener and every connection, and waits until nothing is pending. */
  stop(): Promise<void>;
}

export const HUGE_LENGTH = 0xfffffff0;
export const REQUEST_FLOOD_COUNT = 10_000;
export const METADATA_FLOOD_COUNT = 20_000;
export const BLOCK_LENGTH = 16 * 1024;
export const SECOND_HANDSHAKE_REQQ = 2;
/** The peer id it handshakes with: Azureus-style, a code no real client uses. */
export const HOSTILE_PEER_ID = new TextEncoder().encode("-HP0001-hostilepeer!");

const PROTOCOL = new TextEncoder().encode("\x13BitTorrent protocol");
const HANDSHAKE_LENGTH = 68;
const INFO_HASH_OFFSET = 28;
const MESSAGE = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  extended: 20,
} as const;
/** The ids the "second-handshake" peer asks for in its first extended handshake. */
const OWN_UT_METADATA = 3;
const OWN_UT_PEX = 4;
/** Requests for more than this are ignored: no real client asks for more than 16 KiB. */
const LARGEST_ANSWERED_REQUEST = 128 * 1024;
/** Pauses that keep the streaming attacks from spinning a core when the client does not hang up. */
const GARBAGE_PAUSE_MS = 10;
const TRICKLE_PAUSE_MS = 250;
const UNSOLICITED_PAUSE_MS = 5;
const FLOOD_BATCH = 500;
/** How long the "second-handshake" peer takes to answer each request: requests pile up. */
const ANSWER_DELAY_MS = 20;

export function startHostilePeer(options: HostilePeerOptions): HostilePeer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const links = new Set<PeerLink>();
  const tasks = new Set<Promise<void>>();
  let connections = 0;
  const notes: HostileNote[] = [];
  const noteWaiters = new Set<(note: HostileNote) => void>();
  const note = (text: string) => {
    const entry = { at: performance.now(), text };
    notes.push(entry);
    for (const waiter of [...noteWaiters]) waiter(entry);
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        connections++;
        const link = new PeerLink(conn);
        links.add(link);
        const task = serve(link, options, note).finally(() => {
          links.delete(link);
          tasks.delete(task);
        });
        tasks.add(task);
      }
    } catch { /* the listener was closed */ }
  })();

  return {
    port: listener.addr.port,
    get connections() {
      return connections;
    },
    notes,
    waitForNote: (pattern, timeoutMs) => {
      const seen = notes.find((n) => pattern.test(n.text));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          noteWaiters.delete(waiter);
          reject(new Error(`no note matching ${pattern} in ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = (n: HostileNote) => {
          if (!pattern.test(n.text)) return;
          clearTimeout(timer);
          noteWaiters.delete(waiter);
          resolve(n);
        };
        noteWaiters.add(waiter);
      });
    },
    stop: async () => {
      listener.close();
      for (const link of links) link.close();
      await accepting;
      await Promise.allSettled([...tasks]);
    },
  };
}

/**
 * VmRSS of a running process in KiB, from /proc/PID/status. Give the pid of the process
 * itself: tests/helpers/process.ts records the pid of its `timeout` wrapper instead.
 */
export function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+) kB$/m);
  if (!match) throw new Error(`/proc/${pid}/status has no VmRSS (a zombie?)`);
  return Number(match[1]);
}

async function serve(
  link: PeerLink,
  options: HostilePeerOptions,
  note: (text: string) => void,
) {
  try {
    const hello = await link.read(HANDSHAKE_LENGTH);
    const infoHash = hello.subarray(INFO_HASH_OFFSET, INFO_HASH_OFFSET + 20);
    if (
      !startsWith(hello, PROTOCOL) || !equalBytes(infoHash, options.infoHash)
    ) {
      return;
    }
    const answered = options.attack === "other-torrent"
      ? options.infoHash.map((b) => b ^ 0xff)
      : options.infoHash;
    const extensions = options.attack === "metadata-flood" ||
      options.attack === "second-handshake";
    await link.write(handshake(answered, extensions));
    await ATTACKS[options.attack](link, options, note);
  } catch {
    // the client hung up, or stop() closed the connection
  } finally {
    link.close();
  }
}

type Attack = (
  link: PeerLink,
  options: HostilePeerOptions,
  note: (text: string) => void,
) => Promise<void>;

/** Each attack runs until the connection closes. */
const ATTACKS: Record<HostileAttack, Attack> = {
  garbage: (link) =>
    alongsideDrain(link, async () => {
      while (!link.closed) {
        await link.write(randomBytes(BLOCK_LENGTH));
        await link.pause(GARBAGE_PAUSE_MS);
      }
    }),

  "huge-length": (link) =>
    alongsideDrain(link, async () => {
      const prefix = new Uint8Array(4);
      new DataView(prefix.buffer).setUint32(0, HUGE_LENGTH);
      await link.write(prefix);
      // a trickle, not silence: an idle timer must not be what saves the client
      while (!link.closed) {
        await link.pause(TRICKLE_PAUSE_MS);
        await link.write(randomBytes(1));
      }
    }),

  "bad-bitfield": (link, options) =>
    alongsideDrain(link, async () => {
      const bits = new Uint8Array(bitfieldLength(options.pieceCount) + 1);
      await link.write(message(MESSAGE.bitfield, bits.fill(0xff)));
    }),

  "request-flood": (link, options) =>
    alongsideDrain(link, async () => {
      const empty = new Uint8Array(bitfieldLength(options.pieceCount));
      await link.write(message(MESSAGE.bitfield, empty));
      await link.write(message(MESSAGE.interested));
      for (let sent = 0; sent < REQUEST_FLOOD_COUNT; sent += FLOOD_BATCH) {
        const batch = [];
        for (let i = sent; i < sent + FLOOD_BATCH; i++) {
          batch.push(floodRequest(i, options));
        }
        await link.write(concat(batch));
      }
    }),

  silent: (link) => link.drain(),

  "metadata-flood": async (link) => {
    // The client's extended handshake names the id it wants for ut_metadata.
    let clientId = 0;
    while (clientId === 0) {
      const { id, payload } = await link.readMessage();
      if (id !== MESSAGE.extended || payload[0] !== 0) continue;
      const text = new TextDecoder("latin1").decode(payload.subarray(1));
      clientId = Number(text.match(/11:ut_metadatai(\d+)e/)?.[1] ?? 0);
      if (clientId === 0) return;
    }
    const ours = ascii("d1:md11:ut_metadatai3ee13:metadata_sizei100ee");
    await link.write(
      message(MESSAGE.extended, concat([new Uint8Array([0]), ours])),
    );
    const request = message(
      MESSAGE.extended,
      concat([new Uint8Array([clientId]), ascii("d8:msg_typei0e5:piecei0ee")]),
    );
    // Never read again: every answer piles up on the client's side.
    for (let sent = 0; sent < METADATA_FLOOD_COUNT; sent += FLOOD_BATCH) {
      await link.write(concat(Array(FLOOD_BATCH).fill(request)));
    }
    await link.pause(60_000);
  },

  "wrong-data": async (link, options) => {
    await announceEverything(link, options);
    for (;;) {
      const { id, payload } = await link.readMessage();
      if (id !== MESSAGE.request || payload.length !== 12) continue;
      const view = new DataView(payload.buffer, payload.byteOffset);
      const length = view.getUint32(8);
      if (length > LARGEST_ANSWERED_REQUEST) continue;
      await link.write(
        pieceMessage(view.getUint32(0), view.getUint32(4), randomBytes(length)),
      );
    }
  },

  unsolicited: async (link, options) => {
    await announceEverything(link, options);
    const requested = new Set<string>();
    const recordRequests = async () => {
      for (;;) {
        const { id, payload } = await link.readMessage();
        if (id !== MESSAGE.request || payload.length !== 12) continue;
        const view = new DataView(payload.buffer, payload.byteOffset);
        requested.add(`${view.getUint32(0)}:${view.getUint32(4)}`);
      }
    };
    const sendUnrequested = async () => {
      const blocks = wholeBlocks(options);
      while (!link.closed) {
        for (const { piece, begin, length } of blocks) {
          if (link.closed) return;
          if (requested.has(`${piece}:${begin}`)) continue;
          await link.write(pieceMessage(piece, begin, randomBytes(length)));
          await link.pause(UNSOLICITED_PAUSE_MS);
        }
        // a pass may have found every block requested: yield before the next one
        await link.pause(UNSOLICITED_PAUSE_MS);
      }
    };
    await bothUntilClosed(link, recordRequests, sendUnrequested);
  },

  "second-handshake": async (link, options, note) => {
    const content = options.payload;
    if (!content) throw new Error("second-handshake needs the payload");
    await link.write(extendedMessage(
      0,
      ascii(
        `d1:md11:ut_metadatai${OWN_UT_METADATA}e6:ut_pexi${OWN_UT_PEX}ee4:reqqi${SECOND_HANDSHAKE_REQQ}ee`,
      ),
    ));
    await announceEverything(link, options);
    // BEP 10: a later handshake carries only what changed, here none of the above.
    await link.write(
      extendedMessage(0, ascii("d1:md11:lt_donthavei7ee1:v7:hostilee")),
    );
    const unanswered: string[] = [];
    const readSide = async () => {
      let askedForMetadata = false;
      for (;;) {
        const { id, payload } = await link.readMessage();
        if (id === MESSAGE.extended && payload[0] === 0 && !askedForMetadata) {
          const text = new TextDecoder("latin1").decode(payload.subarray(1));
          const clientId = Number(text.match(/11:ut_metadatai(\d+)e/)?.[1]);
          if (!clientId) continue;
          askedForMetadata = true;
          await link.write(extendedMessage(
            clientId,
            ascii("d8:msg_typei0e5:piecei0ee"),
          ));
        } else if (id === MESSAGE.extended && payload[0] === OWN_UT_METADATA) {
          const text = new TextDecoder("latin1").decode(payload.subarray(1));
          note(`metadata ${text.match(/8:msg_typei(\d+)e/)?.[1]}`);
        } else if (id === MESSAGE.extended && payload[0] === OWN_UT_PEX) {
          note("pex");
        } else if (id === MESSAGE.request && payload.length === 12) {
          unanswered.push(blockKey(payload));
          note(`in flight ${unanswered.length}`);
        } else if (id === MESSAGE.cancel && payload.length === 12) {
          const at = unanswered.indexOf(blockKey(payload));
          if (at >= 0) unanswered.splice(at, 1);
        }
      }
    };
    const answerSide = async () => {
      while (!link.closed) {
        await link.pause(ANSWER_DELAY_MS);
        const next = unanswered[0];
        if (next === undefined) continue;
        const [piece, begin, length] = next.split(":").map(Number);
        const at = piece * options.pieceLength + begin;
        // Answered means no longer in flight, before the client can ask again.
        unanswered.shift();
        await link.write(
          pieceMessage(piece, begin, content.subarray(at, at + length)),
        );
      }
    };
    await bothUntilClosed(link, readSide, answerSide);
  },

  "other-torrent": (link) => link.drain(),

  "slot-hog": async (link, options, note) => {
    await link.write(
      message(
        MESSAGE.bitfield,
        new Uint8Array(bitfieldLength(options.pieceCount)),
      ),
    );
    await link.write(message(MESSAGE.interested));
    for (;;) {
      const { id } = await link.readMessage();
      if (id === MESSAGE.unchoke) note("unchoked");
      if (id === MESSAGE.choke) note("choked");
    }
  },
};

/** A request or cancel payload as "piece:begin:length". */
function blockKey(payload: Uint8Array): string {
  const view = new DataView(payload.buffer, payload.byteOffset);
  return `${view.getUint32(0)}:${view.getUint32(4)}:${view.getUint32(8)}`;
}

function extendedMessage(id: number, payload: Uint8Array): Uint8Array {
  return message(MESSAGE.extended, concat([new Uint8Array([id]), payload]));
}

/** Runs an attack's sending side while reading and discarding whatever the client sends. */
function alongsideDrain(link: PeerLink, send: () => Promise<void>) {
  return bothUntilClosed(link, () => link.drain(), send);
}

/** Runs both until the connection closes; either ending by an error closes it for the other. */
async function bothUntilClosed(
  link: PeerLink,
  ...sides: Array<() => Promise<void>>
): Promise<void> {
  await Promise.allSettled(
    sides.map((side) => side().catch(() => link.close())),
  );
}

async function announceEverything(link: PeerLink, options: HostilePeerOptions) {
  const bits = new Uint8Array(bitfieldLength(options.pieceCount));
  for (let i = 0; i < options.pieceCount; i++) bits[i >> 3] |= 0x80 >> (i & 7);
  await link.write(message(MESSAGE.bitfield, bits));
  await link.write(message(MESSAGE.unchoke));
}

/** Round-robin over a valid block request and three invalid ones. */
function floodRequest(i: number, options: HostilePeerOptions): Uint8Array {
  // the last piece may be short, so valid requests stay clear of it
  const piece = i % Math.max(1, options.pieceCount - 1);
  const begin = (i * BLOCK_LENGTH) % options.pieceLength;
  switch (i % 4) {
    case 0:
      return request(
        piece,
        begin,
        Math.min(BLOCK_LENGTH, options.pieceLength - begin),
      );
    case 1:
      return request(options.pieceCount + i, 0, BLOCK_LENGTH);
    case 2:
      return request(piece, 0, 1024 * 1024);
    default:
      return request(piece, options.pieceLength + begin, BLOCK_LENGTH);
  }
}

/** Every whole block of every piece but the last, which may be short. */
function wholeBlocks(options: HostilePeerOptions) {
  const pieces = Math.max(1, options.pieceCount - 1);
  const length = Math.min(BLOCK_LENGTH, options.pieceLength);
  const blocks = [];
  for (let piece = 0; piece < pieces; piece++) {
    for (
      let begin = 0;
      begin + length <= options.pieceLength;
      begin += length
    ) {
      blocks.push({ piece, begin, length });
    }
  }
  return blocks;
}

/** One connection: exact reads over a byte queue, writes, and pauses that end on close. */
class PeerLink {
  #conn: Deno.Conn;
  #queued: Uint8Array = new Uint8Array(0);
  #closing = new AbortController();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  close(): void {
    if (this.closed) return;
    this.#closing.abort();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  async read(length: number): Promise<Uint8Array> {
    while (this.#queued.length < length) {
      const chunk = new Uint8Array(64 * 1024);
      const count = await this.#conn.read(chunk);
      if (count === null) throw new Error("the client hung up");
      this.#queued = concat([this.#queued, chunk.subarray(0, count)]);
    }
    const bytes = this.#queued.slice(0, length);
    this.#queued = this.#queued.subarray(length);
    return bytes;
  }

  /** The next message; a keep-alive comes back as id -1. */
  async readMessage(): Promise<{ id: number; payload: Uint8Array }> {
    const prefix = await this.read(4);
    const length = new DataView(prefix.buffer).getUint32(0);
    if (length === 0) return { id: -1, payload: new Uint8Array(0) };
    if (length > LARGEST_ANSWERED_REQUEST + 13) {
      throw new Error(`the client sent a ${length}-byte message`);
    }
    const body = await this.read(length);
    return { id: body[0], payload: body.subarray(1) };
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.#conn.write(bytes.subarray(offset));
    }
  }

  /** Reads and discards until the client hangs up, then closes. */
  async drain(): Promise<void> {
    const sink = new Uint8Array(64 * 1024);
    while (await this.#conn.read(sink) !== null) { /* discard */ }
    this.close();
  }

  /** Waits ms, or less when the connection closes meanwhile. */
  pause(ms: number): Promise<void> {
    const signal = this.#closing.signal;
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }
}

function handshake(infoHash: Uint8Array, extensions: boolean): Uint8Array {
  const bytes = new Uint8Array(HANDSHAKE_LENGTH);
  bytes.set(PROTOCOL);
  // bytes 20-27: reserved, all zero unless BEP 10 (byte 25, 0x10) is claimed
  if (extensions) bytes[25] = 0x10;
  bytes.set(infoHash, INFO_HASH_OFFSET);
  bytes.set(HOSTILE_PEER_ID, INFO_HASH_OFFSET + 20);
  return bytes;
}

function message(id: number, payload = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(5 + payload.length);
  new DataView(bytes.buffer).setUint32(0, 1 + payload.length);
  bytes[4] = id;
  bytes.set(payload, 5);
  return bytes;
}

function request(piece: number, begin: number, length: number): Uint8Array {
  const payload = new Uint8Array(12);
  const view = new DataView(payload.buffer);
  view.setUint32(0, piece);
  view.setUint32(4, begin);
  view.setUint32(8, length);
  return message(MESSAGE.request, payload);
}

function pieceMessage(piece: number, begin: number, data: Uint8Array) {
  const payload = new Uint8Array(8 + data.length);
  const view = new DataView(payload.buffer);
  view.setUint32(0, piece);
  view.setUint32(4, begin);
  payload.set(data, 8);
  return message(MESSAGE.piece, payload);
}

function bitfieldLength(pieceCount: number): number {
  return Math.ceil(pieceCount / 8);
}

/** crypto.getRandomValues fills at most 64 KiB a call. */
function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((byte, i) => bytes[i] === byte);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && startsWith(a, b);
}

function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}
