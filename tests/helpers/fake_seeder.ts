// A scriptable seeder for one single-file torrent, for behaviour no real
// client shows on demand: a throttled upload, or corrupted blocks for chosen
// pieces. It speaks plain BEP 3, encoded here by hand so that it does not
// share code with the client under test.

import * as fs from "node:fs";

export interface FakeSeederOptions {
  infoHash: Uint8Array;
  /** The torrent's single file. */
  file: string;
  pieceLength: number;
  /** Upload cap in bytes a second (0: none). */
  bytesPerSecond?: number;
  /** Returns true when this block should be sent corrupted. */
  corrupt?: (piece: number, begin: number, timesServed: number) => boolean;
}

export interface FakeSeeder {
  port: number;
  /** Requests received, as "piece:begin". */
  requests: string[];
  stop(): Promise<void>;
}

const PROTOCOL = new TextEncoder().encode("\x13BitTorrent protocol");

export function startFakeSeeder(options: FakeSeederOptions): FakeSeeder {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const served = new Map<string, number>();
  const tasks = new Set<Promise<void>>();
  const requests: string[] = [];
  const fd = fs.openSync(options.file, "r");
  const size = fs.fstatSync(fd).size;
  const pieceCount = Math.ceil(size / options.pieceLength);

  const serve = async (conn: Deno.Conn) => {
    conns.add(conn);
    try {
      const hello = await readExactly(conn, 68);
      if (!PROTOCOL.every((b, i) => hello[i] === b)) return;
      const reply = new Uint8Array(68);
      reply.set(PROTOCOL);
      reply.set(options.infoHash, 28);
      reply.set(new TextEncoder().encode("-FK0001-fakeseeder00"), 48);
      await writeAll(conn, reply);
      const bits = new Uint8Array(Math.ceil(pieceCount / 8));
      for (let i = 0; i < pieceCount; i++) bits[i >> 3] |= 0x80 >> (i & 7);
      await writeAll(conn, message(5, bits));
      await writeAll(conn, message(1, new Uint8Array(0)));
      for (;;) {
        const header = await readExactly(conn, 4);
        const length = new DataView(header.buffer).getUint32(0);
        if (length === 0) continue;
        const body = await readExactly(conn, length);
        if (body[0] !== 6) continue; // only requests matter here
        const view = new DataView(body.buffer);
        const piece = view.getUint32(1);
        const begin = view.getUint32(5);
        const len = view.getUint32(9);
        requests.push(`${piece}:${begin}`);
        const key = `${piece}:${begin}`;
        const times = served.get(key) ?? 0;
        served.set(key, times + 1);
        const block = new Uint8Array(8 + len);
        new DataView(block.buffer).setUint32(0, piece);
        new DataView(block.buffer).setUint32(4, begin);
        fs.readSync(fd, block, 8, len, piece * options.pieceLength + begin);
        if (options.corrupt?.(piece, begin, times)) block[8] ^= 0xff;
        if (options.bytesPerSecond) {
          await new Promise((r) =>
            setTimeout(r, (len / options.bytesPerSecond!) * 1000)
          );
        }
        await writeAll(conn, message(7, block));
      }
    } catch {
      // the client closed the connection, or stop() did
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const task = serve(conn);
        tasks.add(task);
        task.finally(() => tasks.delete(task));
      }
    } catch { /* listener closed */ }
  })();

  return {
    port: listener.addr.port,
    requests,
    stop: async () => {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed meanwhile */ }
      }
      await accepting;
      await Promise.allSettled([...tasks]);
      fs.closeSync(fd);
    },
  };
}

function message(id: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(0, 1 + payload.length);
  out[4] = id;
  out.set(payload, 5);
  return out;
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let have = 0;
  while (have < n) {
    const got = await conn.read(out.subarray(have));
    if (got === null) throw new Error("closed");
    have += got;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) {
    off += await conn.write(data.subarray(off));
  }
}
