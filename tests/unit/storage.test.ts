import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { type Encodable, encode } from "../../src/bencode/encode.ts";
import {
  type Metainfo,
  parseMetainfo,
  TorrentFileError,
} from "../../src/metainfo/metainfo.ts";
import { Bitfield } from "../../src/pieces/bitfield.ts";
import { type FileSpan, pieceSpans } from "../../src/storage/layout.ts";
import { PieceStore, StorageError } from "../../src/storage/store.ts";
import {
  loadOrCheck,
  resumePath,
  saveResume,
} from "../../src/storage/resume.ts";

interface FileDef {
  path: string[];
  length: number;
  pad?: boolean;
}

function payload(n: number, seed = 5): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function sha1(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(b).digest());
}

/**
 * A parsed torrent plus its payload (zeros in padding files, as BEP 47
 * requires), so piece hashes are real.
 */
function makeTorrent(
  files: FileDef[],
  pieceLength: number,
  opts: { single?: boolean; name?: string; seed?: number } = {},
): { meta: Metainfo; data: Uint8Array } {
  const total = files.reduce((n, f) => n + f.length, 0);
  const data = payload(total, opts.seed);
  let at = 0;
  for (const f of files) {
    if (f.pad) data.fill(0, at, at + f.length);
    at += f.length;
  }
  const hashes = new Uint8Array(Math.ceil(total / pieceLength) * 20);
  for (let p = 0; p * pieceLength < total; p++) {
    hashes.set(
      sha1(data.subarray(p * pieceLength, (p + 1) * pieceLength)),
      p * 20,
    );
  }
  const info: Record<string, Encodable> = {
    name: opts.name ?? "t",
    "piece length": pieceLength,
    pieces: hashes,
  };
  if (opts.single) info.length = total;
  else {
    info.files = files.map((f) => ({
      length: f.length,
      path: f.path,
      ...(f.pad ? { attr: "p" } : {}),
    }));
  }
  const meta = parseMetainfo(encode({ info }));
  return { meta, data };
}

/** The reference: which file bytes a piece covers, computed byte by byte. */
function naiveSpans(meta: Metainfo, piece: number): FileSpan[] {
  const spans: FileSpan[] = [];
  const start = piece * meta.pieceLength;
  const end = Math.min(start + meta.pieceLength, meta.totalLength);
  for (let pos = start; pos < end; pos++) {
    const file = meta.files.findIndex((f) =>
      pos >= f.offset && pos < f.offset + f.length
    );
    const last = spans[spans.length - 1];
    if (last && last.file === file) last.length++;
    else {
      spans.push({
        file,
        fileOffset: pos - meta.files[file].offset,
        pieceOffset: pos - start,
        length: 1,
      });
    }
  }
  return spans;
}

async function withTempDir(
  fn: (dir: string) => Promise<void> | void,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bt-storage-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const byteLength = (s: string) => new TextEncoder().encode(s).length;

function pieceData(
  meta: Metainfo,
  data: Uint8Array,
  piece: number,
): Uint8Array {
  return data.subarray(
    piece * meta.pieceLength,
    (piece + 1) * meta.pieceLength,
  );
}

// ---------------------------------------------------------------- layout

Deno.test("pieceSpans: a piece across three files, with an empty and a one-byte file", () => {
  const { meta } = makeTorrent([
    { path: ["a"], length: 5 },
    { path: ["empty"], length: 0 },
    { path: ["one"], length: 1 },
    { path: ["c"], length: 10 },
    { path: ["d"], length: 1 },
  ], 8);
  assert.equal(meta.pieceCount, 3);
  assert.deepEqual(pieceSpans(meta, 0), [
    { file: 0, fileOffset: 0, pieceOffset: 0, length: 5 },
    { file: 2, fileOffset: 0, pieceOffset: 5, length: 1 },
    { file: 3, fileOffset: 0, pieceOffset: 6, length: 2 },
  ]);
  assert.deepEqual(pieceSpans(meta, 1), [
    { file: 3, fileOffset: 2, pieceOffset: 0, length: 8 },
  ]);
  assert.deepEqual(pieceSpans(meta, 2), [
    { file: 4, fileOffset: 0, pieceOffset: 0, length: 1 },
  ]);
});

Deno.test("pieceSpans: empty files at the start and end, single file", () => {
  const { meta } = makeTorrent([
    { path: ["e0"], length: 0 },
    { path: ["e1"], length: 0 },
    { path: ["x"], length: 20 },
    { path: ["e2"], length: 0 },
  ], 16);
  assert.deepEqual(pieceSpans(meta, 0), [{
    file: 2,
    fileOffset: 0,
    pieceOffset: 0,
    length: 16,
  }]);
  assert.deepEqual(pieceSpans(meta, 1), [{
    file: 2,
    fileOffset: 16,
    pieceOffset: 0,
    length: 4,
  }]);
  const single =
    makeTorrent([{ path: ["s"], length: 100 }], 32, { single: true }).meta;
  assert.deepEqual(pieceSpans(single, 3), [{
    file: 0,
    fileOffset: 96,
    pieceOffset: 0,
    length: 4,
  }]);
});

Deno.test("pieceSpans agrees with a byte-by-byte reference on random layouts", () => {
  let seed = 99;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let t = 0; t < 60; t++) {
    const files: FileDef[] = [];
    const n = 1 + rnd(12);
    for (let i = 0; i < n; i++) {
      const kind = rnd(4);
      files.push({
        path: [`f${i}`],
        length: kind === 0 ? 0 : kind === 1 ? 1 : rnd(100),
      });
    }
    if (files.every((f) => f.length === 0)) files[0].length = 3;
    const { meta } = makeTorrent(files, 1 + rnd(40));
    for (let p = 0; p < meta.pieceCount; p++) {
      assert.deepEqual(
        pieceSpans(meta, p),
        naiveSpans(meta, p),
        `layout ${t} piece ${p}`,
      );
    }
  }
});

// ---------------------------------------------------------------- PieceStore

const LAYOUT: FileDef[] = [
  { path: ["a.bin"], length: 5 },
  { path: ["sub", "empty"], length: 0 },
  { path: ["sub", "one"], length: 1 },
  { path: ["sub", "deep", "c.bin"], length: 30 },
  { path: [".pad", "10"], length: 10, pad: true },
  { path: ["d.bin"], length: 17 },
];

Deno.test("PieceStore: write and read pieces across file boundaries", async () => {
  await withTempDir((dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const store = new PieceStore(meta, dir);
    try {
      assert.deepEqual(store.paths, [
        path.join(dir, "t", "a.bin"),
        path.join(dir, "t", "sub", "empty"),
        path.join(dir, "t", "sub", "one"),
        path.join(dir, "t", "sub", "deep", "c.bin"),
        path.join(dir, "t", ".pad", "10"),
        path.join(dir, "t", "d.bin"),
      ]);
      store.prepare();
      // Write out of order.
      const order = [3, 0, 7, 5, 1, 6, 2, 4, 8];
      assert.equal(meta.pieceCount, 8);
      for (const p of order.filter((p) => p < meta.pieceCount)) {
        store.writePiece(p, pieceData(meta, data, p));
      }
      store.sync();
      // Every file holds exactly its bytes.
      for (const [i, f] of meta.files.entries()) {
        if (f.padding) continue;
        const onDisk = new Uint8Array(fs.readFileSync(store.paths[i]));
        assert.deepEqual(
          onDisk,
          data.subarray(f.offset, f.offset + f.length),
          f.path.join("/"),
        );
      }
      // Reads give the pieces back.
      for (let p = 0; p < meta.pieceCount; p++) {
        const expected = pieceData(meta, data, p);
        const out = new Uint8Array(expected.length).fill(0xee);
        assert.equal(store.readPiece(p, out), true, `piece ${p}`);
        assert.deepEqual(out, expected, `piece ${p}`);
      }
    } finally {
      store.close();
    }
  });
});

Deno.test("PieceStore: padding files are never created and read as zeros", async () => {
  await withTempDir((dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const store = new PieceStore(meta, dir);
    try {
      store.prepare();
      for (let p = 0; p < meta.pieceCount; p++) {
        store.writePiece(p, pieceData(meta, data, p));
      }
      assert.equal(fs.existsSync(path.join(dir, "t", ".pad")), false);
      // Pieces 4 and 5 (bytes 32..48) hold the padding at 36..46.
      const out = new Uint8Array(8).fill(0xff);
      assert.equal(store.readPiece(5, out), true);
      assert.deepEqual([...out.subarray(0, 6)], [0, 0, 0, 0, 0, 0]);
      assert.deepEqual(out, pieceData(meta, data, 5));
      // A non-zero write into the padding range is not stored.
      const dirty = pieceData(meta, data, 5).slice().fill(7, 0, 6);
      store.writePiece(5, dirty);
      const back = new Uint8Array(8);
      store.readPiece(5, back);
      assert.deepEqual([...back.subarray(0, 6)], [0, 0, 0, 0, 0, 0]);
      assert.equal(fs.existsSync(path.join(dir, "t", ".pad")), false);
      assert.deepEqual(store.fileStats()[4], { size: 0, mtimeMs: 0 });
    } finally {
      store.close();
    }
  });
});

Deno.test("PieceStore.prepare creates folders and empty files only", async () => {
  await withTempDir((dir) => {
    const { meta } = makeTorrent(LAYOUT, 8);
    const store = new PieceStore(meta, dir);
    try {
      store.prepare();
      const root = path.join(dir, "t");
      assert.ok(fs.statSync(path.join(root, "sub", "deep")).isDirectory());
      assert.equal(fs.statSync(path.join(root, "sub", "empty")).size, 0);
      assert.ok(fs.statSync(path.join(root, "sub", "empty")).isFile());
      assert.equal(fs.existsSync(path.join(root, "a.bin")), false);
      assert.equal(
        fs.existsSync(path.join(root, "sub", "deep", "c.bin")),
        false,
      );
      assert.equal(fs.existsSync(path.join(root, ".pad")), false);
      // prepare() twice is harmless and keeps existing data.
      fs.writeFileSync(path.join(root, "sub", "empty"), "x");
      store.prepare();
      assert.equal(
        fs.readFileSync(path.join(root, "sub", "empty"), "utf8"),
        "x",
      );
      const stats = store.fileStats();
      assert.equal(stats[0], null);
      assert.equal(stats[1]?.size, 1);
    } finally {
      store.close();
    }
  });
});

Deno.test("PieceStore.readPiece is false when a file is missing or short", async () => {
  await withTempDir((dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const store = new PieceStore(meta, dir);
    const out = new Uint8Array(8);
    try {
      assert.equal(store.readPiece(0, out), false, "nothing on disk");
      assert.equal(
        fs.existsSync(path.join(dir, "t", "a.bin")),
        false,
        "a read creates nothing",
      );
      store.writePiece(0, pieceData(meta, data, 0));
      assert.equal(store.readPiece(0, out), true);
      // Piece 1 lies in c.bin, which holds only bytes 0..2 so far.
      assert.equal(store.readPiece(1, out), false, "file too short");
      // Last piece (d.bin) is missing entirely.
      assert.equal(store.readPiece(meta.pieceCount - 1, out), false);
    } finally {
      store.close();
    }
    // A file cut short on disk.
    const full = new PieceStore(meta, dir);
    try {
      for (let p = 0; p < meta.pieceCount; p++) {
        full.writePiece(p, pieceData(meta, data, p));
      }
      full.close();
      fs.truncateSync(full.paths[5], 16);
      const last = meta.pieceCount - 1;
      const buf = new Uint8Array(meta.totalLength - last * 8);
      assert.equal(full.readPiece(last, buf), false);
      assert.equal(full.readPiece(0, new Uint8Array(8)), true);
    } finally {
      full.close();
    }
  });
});

Deno.test("PieceStore: single-file torrent lives at root/name", async () => {
  await withTempDir((dir) => {
    const { meta, data } = makeTorrent([{ path: ["x"], length: 50 }], 16, {
      single: true,
      name: "movie.mkv",
    });
    const store = new PieceStore(meta, dir);
    try {
      assert.deepEqual(store.paths, [path.join(dir, "movie.mkv")]);
      for (let p = meta.pieceCount - 1; p >= 0; p--) {
        store.writePiece(p, pieceData(meta, data, p));
      }
      assert.deepEqual(
        new Uint8Array(fs.readFileSync(path.join(dir, "movie.mkv"))),
        data,
      );
    } finally {
      store.close();
    }
  });
});

Deno.test("PieceStore: a disk error is a StorageError naming the file", async () => {
  await withTempDir((dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    // A plain file where the folder "sub" should be.
    fs.mkdirSync(path.join(dir, "t"));
    fs.writeFileSync(path.join(dir, "t", "sub"), "in the way");
    const store = new PieceStore(meta, dir);
    try {
      assert.throws(() => store.prepare(), StorageError);
      assert.throws(
        () => store.writePiece(1, pieceData(meta, data, 1)),
        (e: unknown) =>
          e instanceof StorageError &&
          e.message.includes(path.join(dir, "t", "sub", "deep", "c.bin")),
      );
    } finally {
      store.close();
    }
  });
});

Deno.test("PieceStore: names too long for ext4 are written under their cut names", async () => {
  await withTempDir((dir) => {
    const { meta, data } = makeTorrent(
      [
        { path: ["é".repeat(200), "f".repeat(300) + ".bin"], length: 30 },
        { path: ["g".repeat(256)], length: 20 },
      ],
      16,
      { name: "d".repeat(260) },
    );
    const store = new PieceStore(meta, dir);
    try {
      store.prepare();
      writeAll(store, meta, data);
      store.sync();
      const top = path.join(dir, "d".repeat(240));
      assert.deepEqual(fs.readdirSync(top).sort(), [
        "g".repeat(240),
        "é".repeat(120),
      ]);
      assert.deepEqual(fs.readdirSync(path.join(top, "é".repeat(120))), [
        "f".repeat(240) + ".bin",
      ]);
      assert.deepEqual(
        new Uint8Array(fs.readFileSync(store.paths[0])),
        data.subarray(0, 30),
      );
      const out = new Uint8Array(16);
      assert.equal(store.readPiece(2, out), true);
      assert.deepEqual(out, pieceData(meta, data, 2));
    } finally {
      store.close();
    }
  });
});

Deno.test("PieceStore: a path longer than PATH_MAX is refused as bad input, before any write", async () => {
  await withTempDir((dir) => {
    const root = path.join(dir, "dl");
    // root/t/<folders>/<file>: fill the path to exactly `total` bytes.
    const layout = (total: number) => {
      let left = total - byteLength(path.join(root, "t"));
      const parts: string[] = [];
      while (left > 0) {
        // No part may be empty: a last step of 202 bytes is split in two.
        const size = left <= 201 ? left - 1 : left === 202 ? 100 : 200;
        parts.push("p".repeat(size));
        left -= size + 1;
      }
      return parts;
    };
    const longest = makeTorrent([{ path: ["ok"], length: 3 }, {
      path: layout(4095),
      length: 5,
    }], 8);
    const store = new PieceStore(longest.meta, root);
    try {
      assert.equal(byteLength(store.paths[1]), 4095);
      store.prepare();
      writeAll(store, longest.meta, longest.data);
      assert.equal(fs.statSync(store.paths[1]).size, 5);
    } finally {
      store.close();
    }

    fs.rmSync(root, { recursive: true });
    const tooLong = makeTorrent([{ path: ["ok"], length: 3 }, {
      path: layout(4096),
      length: 5,
    }], 8);
    assert.throws(
      () => new PieceStore(tooLong.meta, root),
      (e: unknown) => {
        assert.ok(e instanceof TorrentFileError, String(e));
        assert.match(
          e.message,
          /^info\.files\[1\] "t\/p{58}…" would be a 4096-byte path in \S+\/dl, more than the 4095 bytes Linux allows$/,
        );
        return true;
      },
    );
    assert.equal(fs.existsSync(root), false);
    // A single-file torrent names its name.
    const single = makeTorrent([{ path: ["x"], length: 4 }], 8, {
      single: true,
      name: "n.bin",
    });
    const deep = "/" + "r".repeat(200) + "/x".repeat(2000);
    assert.throws(
      () => new PieceStore(single.meta, deep),
      (e: unknown) =>
        e instanceof TorrentFileError &&
        e.message.startsWith(
          `info.name "n.bin" would be a 4207-byte path in ${deep},`,
        ),
    );
  });
});

// ---------------------------------------------------------------- resume

function writeAll(
  store: PieceStore,
  meta: Metainfo,
  data: Uint8Array,
  skip: number[] = [],
) {
  for (let p = 0; p < meta.pieceCount; p++) {
    if (!skip.includes(p)) store.writePiece(p, pieceData(meta, data, p));
  }
}

function indices(b: Bitfield): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.size; i++) if (b.has(i)) out.push(i);
  return out;
}

const noProgress = () => {};

Deno.test("resumePath", () => {
  const { meta } = makeTorrent(LAYOUT, 8);
  assert.equal(
    resumePath("/dl", meta),
    path.join("/dl", ".btclient", `${meta.infoHashHex}.resume.json`),
  );
});

Deno.test("resume: a recheck finds exactly the pieces whose data is right", async () => {
  await withTempDir(async (dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const store = new PieceStore(meta, dir);
    try {
      store.prepare();
      writeAll(store, meta, data, [6]);
      store.close();
      // Corrupt one byte of piece 2 (bytes 16..24 lie in c.bin at 10..18).
      const fd = fs.openSync(store.paths[3], "r+");
      fs.writeSync(fd, new Uint8Array([data[20] ^ 0xff]), 0, 1, 20 - 6);
      fs.closeSync(fd);
      const state = await loadOrCheck(store, resumePath(dir, meta), noProgress);
      assert.equal(state.fromResume, false);
      // Piece 6 was never written (d.bin holds only bytes of piece 7 at the
      // end: its first bytes are zeros from the sparse write), piece 2 is corrupt.
      assert.deepEqual(indices(state.have), [0, 1, 3, 4, 5, 7]);
    } finally {
      store.close();
    }
  });
});

Deno.test("resume: nothing on disk gives an empty bitfield", async () => {
  await withTempDir(async (dir) => {
    const { meta } = makeTorrent(LAYOUT, 8);
    const store = new PieceStore(meta, dir);
    try {
      const state = await loadOrCheck(store, resumePath(dir, meta), noProgress);
      assert.equal(state.fromResume, false);
      assert.equal(state.have.count, 0);
      assert.equal(state.have.size, meta.pieceCount);
    } finally {
      store.close();
    }
  });
});

Deno.test("resume: saved state is trusted while files are unchanged", async () => {
  await withTempDir(async (dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const file = resumePath(dir, meta);
    const store = new PieceStore(meta, dir);
    try {
      store.prepare();
      writeAll(store, meta, data);
      store.sync();
      // Claim only some pieces: if loadOrCheck hashed, it would find all 8.
      const claimed = new Bitfield(meta.pieceCount);
      for (const i of [0, 3, 7]) claimed.set(i);
      saveResume(store, file, claimed);
      assert.ok(fs.existsSync(file));
      assert.equal(fs.existsSync(`${file}.tmp`), false);
      const saved = JSON.parse(fs.readFileSync(file, "utf8"));
      assert.equal(saved.infoHash, meta.infoHashHex);
      assert.equal(saved.pieceCount, meta.pieceCount);
    } finally {
      store.close();
    }
    const again = new PieceStore(meta, dir);
    try {
      const state = await loadOrCheck(again, file, noProgress);
      assert.equal(state.fromResume, true);
      assert.deepEqual(indices(state.have), [0, 3, 7]);
    } finally {
      again.close();
    }
  });
});

Deno.test("resume: a changed mtime or size, or a bad resume file, forces a recheck", async () => {
  await withTempDir(async (dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const file = resumePath(dir, meta);
    const store = new PieceStore(meta, dir);
    const claimed = new Bitfield(meta.pieceCount);
    claimed.set(1);
    const all = [0, 1, 2, 3, 4, 5, 6, 7];
    const check = async () => {
      const s = new PieceStore(meta, dir);
      try {
        return await loadOrCheck(s, file, noProgress);
      } finally {
        s.close();
      }
    };
    try {
      store.prepare();
      writeAll(store, meta, data);
      store.close();

      // mtime changed.
      saveResume(store, file, claimed);
      assert.equal((await check()).fromResume, true);
      fs.utimesSync(store.paths[0], new Date(2001, 1, 1), new Date(2001, 1, 1));
      let state = await check();
      assert.equal(state.fromResume, false);
      assert.deepEqual(indices(state.have), all);

      // size changed (a byte appended to d.bin: the last piece still hashes
      // right, as only the torrent's bytes are read).
      saveResume(store, file, claimed);
      assert.equal((await check()).fromResume, true);
      fs.appendFileSync(store.paths[5], "!");
      state = await check();
      assert.equal(state.fromResume, false);
      assert.deepEqual(indices(state.have), all);

      // A file deleted since the save.
      saveResume(store, file, claimed);
      fs.rmSync(store.paths[0]);
      state = await check();
      assert.equal(state.fromResume, false);
      assert.deepEqual(indices(state.have), [1, 2, 3, 4, 5, 6, 7]);
      store.writePiece(0, pieceData(meta, data, 0));
      store.close();

      // A resume file that is not JSON.
      saveResume(store, file, claimed);
      fs.writeFileSync(file, "{ not json");
      state = await check();
      assert.equal(state.fromResume, false);
      assert.deepEqual(indices(state.have), all);

      // Valid JSON for another torrent.
      saveResume(store, file, claimed);
      const record = JSON.parse(fs.readFileSync(file, "utf8"));
      fs.writeFileSync(
        file,
        JSON.stringify({ ...record, infoHash: "00".repeat(20) }),
      );
      assert.equal((await check()).fromResume, false);

      // A bitfield with the wrong length or spare bits set.
      fs.writeFileSync(file, JSON.stringify({ ...record, pieces: "AAAA" }));
      assert.equal((await check()).fromResume, false);
      fs.writeFileSync(
        file,
        JSON.stringify({ ...record, pieces: btoa("\u0001\u0000") }),
      );
      assert.equal((await check()).fromResume, false);
      fs.writeFileSync(file, JSON.stringify({ ...record, version: 2 }));
      assert.equal((await check()).fromResume, false);
      fs.writeFileSync(
        file,
        JSON.stringify({ ...record, files: record.files.slice(1) }),
      );
      assert.equal((await check()).fromResume, false);

      // The original record still works.
      fs.writeFileSync(file, JSON.stringify(record));
      state = await check();
      assert.equal(state.fromResume, true);
      assert.deepEqual(indices(state.have), [1]);
    } finally {
      store.close();
    }
  });
});

Deno.test("resume: a record saved without a sync in another boot is not trusted", async () => {
  await withTempDir(async (dir) => {
    const { meta, data } = makeTorrent(LAYOUT, 8);
    const file = resumePath(dir, meta);
    const store = new PieceStore(meta, dir);
    store.prepare();
    writeAll(store, meta, data);
    const claimed = new Bitfield(meta.pieceCount);
    claimed.set(2);
    saveResume(store, file, claimed);
    store.close();
    const record = JSON.parse(fs.readFileSync(file, "utf8"));
    // This machine has a boot id, so the data was not synced and the record says so.
    const bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8")
      .trim();
    assert.equal(record.unsyncedBootId, bootId);
    // As if the machine had rebooted since (page cache possibly lost).
    record.unsyncedBootId = "00000000-0000-0000-0000-000000000000";
    fs.writeFileSync(file, JSON.stringify(record));
    const again = new PieceStore(meta, dir);
    try {
      const state = await loadOrCheck(again, file, noProgress);
      assert.equal(state.fromResume, false);
      assert.deepEqual(indices(state.have), [0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      again.close();
    }
  });
});
