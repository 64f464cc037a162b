import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type Encodable, encode } from "../../src/bencode/encode.ts";
import {
  parseMetainfo,
  toHex,
  TorrentFileError,
} from "../../src/metainfo/metainfo.ts";

const PIECE = 16384;

function sha1(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(bytes).digest());
}

function sha1Hex(bytes: Uint8Array): string {
  return createHash("sha1").update(bytes).digest("hex");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const ascii = (s: string) => new TextEncoder().encode(s);

/** Deterministic payload bytes. */
function payload(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function hashes(data: Uint8Array, pieceLength: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += pieceLength) {
    parts.push(sha1(data.subarray(at, at + pieceLength)));
  }
  return concat(...parts);
}

/** A valid single-file info dict for `length` bytes. */
function singleInfo(
  length = 40000,
  name = "file.bin",
): Record<string, Encodable> {
  return {
    name,
    "piece length": PIECE,
    length,
    pieces: hashes(payload(length), PIECE),
  };
}

function multiInfo(
  files: { path: string[]; length: number; attr?: string }[],
  extra: Record<string, Encodable> = {},
): Record<string, Encodable> {
  const total = files.reduce((n, f) => n + f.length, 0);
  return {
    name: "folder",
    "piece length": PIECE,
    files: files.map((f) => ({
      length: f.length,
      path: f.path,
      ...(f.attr !== undefined ? { attr: f.attr } : {}),
    })),
    pieces: hashes(payload(total), PIECE),
    ...extra,
  };
}

function torrent(
  info: Record<string, Encodable>,
  root: Record<string, Encodable> = {
    announce: "http://tracker.example/announce",
  },
): Uint8Array {
  return encode({ ...root, info });
}

function rejects(raw: Uint8Array, message: string | RegExp): void {
  assert.throws(
    () => parseMetainfo(raw),
    (e: unknown) => {
      assert.ok(e instanceof TorrentFileError, `not a TorrentFileError: ${e}`);
      if (typeof message === "string") assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}

Deno.test("metainfo: single-file torrent", () => {
  const info = singleInfo(40000);
  const raw = torrent(info);
  const m = parseMetainfo(raw);
  const infoBytes = encode(info);
  assert.deepEqual(m.infoBytes, infoBytes);
  assert.deepEqual(m.infoHash, sha1(infoBytes));
  assert.equal(m.infoHashHex, sha1Hex(infoBytes));
  assert.equal(m.name, "file.bin");
  assert.equal(m.pieceLength, PIECE);
  assert.equal(m.pieceCount, 3);
  assert.equal(m.totalLength, 40000);
  assert.deepEqual(m.pieceHashes, hashes(payload(40000), PIECE));
  assert.equal(m.multiFile, false);
  assert.deepEqual(m.files, [
    { path: ["file.bin"], length: 40000, offset: 0, padding: false },
  ]);
  assert.equal(m.private, false);
  assert.deepEqual(m.trackers, [["http://tracker.example/announce"]]);
});

Deno.test("metainfo: piece count is exact when the length is a multiple of the piece length", () => {
  const m = parseMetainfo(torrent(singleInfo(2 * PIECE)));
  assert.equal(m.pieceCount, 2);
  const one = parseMetainfo(torrent(singleInfo(1)));
  assert.equal(one.pieceCount, 1);
  assert.equal(one.totalLength, 1);
});

Deno.test("metainfo: multi-file torrent with offsets", () => {
  const raw = torrent(
    multiInfo([
      { path: ["a.txt"], length: 10 },
      { path: ["sub", "b.bin"], length: 20000 },
      { path: ["sub", "empty"], length: 0 },
      { path: ["sub", "deeper", "c"], length: 15000 },
    ]),
  );
  const m = parseMetainfo(raw);
  assert.equal(m.multiFile, true);
  assert.equal(m.name, "folder");
  assert.equal(m.totalLength, 35010);
  assert.equal(m.pieceCount, 3);
  assert.deepEqual(m.files, [
    { path: ["a.txt"], length: 10, offset: 0, padding: false },
    { path: ["sub", "b.bin"], length: 20000, offset: 10, padding: false },
    { path: ["sub", "empty"], length: 0, offset: 20010, padding: false },
    {
      path: ["sub", "deeper", "c"],
      length: 15000,
      offset: 20010,
      padding: false,
    },
  ]);
});

Deno.test("metainfo: path.utf-8 is preferred over path", () => {
  const info = multiInfo([{ path: ["x"], length: 5 }]);
  (info.files as Record<string, Encodable>[])[0]["path.utf-8"] = ["caf\u00e9"];
  const m = parseMetainfo(torrent(info));
  assert.deepEqual(m.files[0].path, ["caf\u00e9"]);
});

Deno.test("metainfo: info-hash is SHA-1 of the raw info bytes, even non-canonical", () => {
  const pieces = hashes(payload(5), PIECE);
  // Keys deliberately out of order: "piece length" before "name", "length" last.
  const infoRaw = concat(
    ascii("d12:piece lengthi16384e4:name3:abc6:pieces20:"),
    pieces,
    ascii("6:lengthi5ee"),
  );
  const raw = concat(
    ascii("d8:announce13:udp://t.ex:804:info"),
    infoRaw,
    ascii("7:comment2:hie"),
  );
  const m = parseMetainfo(raw);
  assert.deepEqual(m.infoBytes, infoRaw);
  assert.deepEqual(m.infoHash, sha1(infoRaw));
  assert.equal(m.infoHashHex, sha1Hex(infoRaw));
  // A re-encoding would sort the keys and give another hash: the test is
  // only meaningful if the two differ.
  const canonical = encode({
    "piece length": PIECE,
    name: "abc",
    pieces,
    length: 5,
  });
  assert.notDeepEqual(canonical, infoRaw);
  assert.notEqual(m.infoHashHex, sha1Hex(canonical));
  assert.equal(m.name, "abc");
  assert.equal(m.totalLength, 5);
  assert.deepEqual(m.trackers, [["udp://t.ex:80"]]);
  // Unknown extra keys inside info are part of the hash too.
  const withExtra = concat(
    ascii("d4:info"),
    ascii("d1:zi1e6:lengthi5e4:name3:abc12:piece lengthi16384e6:pieces20:"),
    pieces,
    ascii("ee"),
  );
  const m2 = parseMetainfo(withExtra);
  assert.deepEqual(
    m2.infoHash,
    sha1(withExtra.subarray(7, withExtra.length - 1)),
  );
});

Deno.test("metainfo: the result does not alias the input buffer", () => {
  const raw = torrent(singleInfo(100));
  const m = parseMetainfo(raw);
  const before = m.pieceHashes.slice();
  const infoBefore = m.infoBytes.slice();
  raw.fill(0);
  assert.deepEqual(m.pieceHashes, before);
  assert.deepEqual(m.infoBytes, infoBefore);
});

Deno.test("metainfo: toHex", () => {
  assert.equal(toHex(new Uint8Array([0, 1, 0xab, 0xff])), "0001abff");
  assert.equal(toHex(new Uint8Array(0)), "");
});

Deno.test("metainfo: trackers from announce-list tiers override announce", () => {
  const m = parseMetainfo(torrent(singleInfo(100), {
    announce: "http://ignored.example/announce",
    "announce-list": [
      ["http://a.example/ann", "udp://b.example:6969", "http://a.example/ann"],
      [],
      ["wss://websocket.example", "dht://x"],
      [" https://c.example/ann "],
    ],
  }));
  assert.deepEqual(m.trackers, [
    ["http://a.example/ann", "udp://b.example:6969"],
    ["https://c.example/ann"],
  ]);
});

Deno.test("metainfo: announce is used when announce-list is absent or empty", () => {
  const none = parseMetainfo(torrent(singleInfo(100), {}));
  assert.deepEqual(none.trackers, []);
  const empty = parseMetainfo(torrent(singleInfo(100), {
    announce: "udp://only.example:1337/announce",
    "announce-list": [],
  }));
  assert.deepEqual(empty.trackers, [["udp://only.example:1337/announce"]]);
  const unusable = parseMetainfo(torrent(singleInfo(100), {
    announce: "http://fallback.example/a",
    "announce-list": [["wss://x.example"]],
  }));
  assert.deepEqual(unusable.trackers, [["http://fallback.example/a"]]);
  const badScheme = parseMetainfo(torrent(singleInfo(100), {
    announce: "magnet:?xt=foo",
  }));
  assert.deepEqual(badScheme.trackers, []);
});

Deno.test("metainfo: private flag", () => {
  const priv = (v: Encodable | undefined) =>
    parseMetainfo(
      torrent({
        ...singleInfo(100),
        ...(v === undefined ? {} : { private: v }),
      }),
    )
      .private;
  assert.equal(priv(1), true);
  assert.equal(priv(0), false);
  assert.equal(priv(undefined), false);
  assert.equal(priv("1"), false);
  // private lives in info, so it changes the info-hash.
  const a = parseMetainfo(torrent({ ...singleInfo(100), private: 1 }));
  const b = parseMetainfo(torrent(singleInfo(100)));
  assert.notEqual(a.infoHashHex, b.infoHashHex);
});

Deno.test("metainfo: padding files (BEP 47) are flagged and may repeat", () => {
  const m = parseMetainfo(torrent(multiInfo([
    { path: ["a"], length: 100 },
    { path: [".pad", "16284"], length: 16284, attr: "p" },
    { path: ["b"], length: 100, attr: "x" },
    { path: [".pad", "16284"], length: 16284, attr: "p" },
    { path: ["c"], length: 7, attr: "hp" },
  ])));
  assert.deepEqual(m.files.map((f) => f.padding), [
    false,
    true,
    false,
    true,
    true,
  ]);
  assert.deepEqual(m.files.map((f) => f.offset), [0, 100, 16384, 16484, 32768]);
  assert.equal(m.totalLength, 32775);
  assert.equal(m.pieceCount, 3);
});

Deno.test("metainfo: a hybrid v1+v2 torrent is read as v1", () => {
  const info = { ...singleInfo(100), "file tree": {}, "meta version": 2 };
  const m = parseMetainfo(torrent(info));
  assert.equal(m.pieceCount, 1);
  assert.deepEqual(m.infoHash, sha1(encode(info)));
});

Deno.test("metainfo rejects files that are not bencode", () => {
  const good = torrent(singleInfo(100));
  rejects(
    good.subarray(0, good.length - 10),
    /^not a valid bencoded torrent: /,
  );
  rejects(
    good.subarray(0, 1),
    /^not a valid bencoded torrent: unexpected end of input/,
  );
  rejects(new Uint8Array(0), /^not a valid bencoded torrent: /);
  rejects(
    ascii("<html>not a torrent</html>"),
    /^not a valid bencoded torrent: unexpected byte 0x3c at byte 0$/,
  );
  rejects(
    ascii("d4:infoi03ee"),
    /^not a valid bencoded torrent: malformed integer/,
  );
});

Deno.test("metainfo rejects garbage after the data", () => {
  const good = torrent(singleInfo(100));
  rejects(
    concat(good, ascii("abc")),
    "3 bytes of garbage after the torrent data",
  );
  rejects(
    concat(good, new Uint8Array([0x0a])),
    "1 bytes of garbage after the torrent data",
  );
});

Deno.test("metainfo rejects wrong top-level shapes", () => {
  rejects(ascii("li1ee"), "the torrent file is a list, not a dictionary");
  rejects(
    encode({ announce: "http://x/a" }),
    "info is missing, not a dictionary",
  );
  rejects(encode({ info: "x" }), "info is a string, not a dictionary");
  rejects(
    torrent({ ...singleInfo(100), name: 5 }),
    "info.name is an integer, not a string",
  );
  const noName = singleInfo(100);
  delete noName.name;
  rejects(torrent(noName), "info.name is missing, not a string");
  const noPieces = singleInfo(100);
  delete noPieces.pieces;
  rejects(torrent(noPieces), "info.pieces is missing, not a string");
  const noLength = singleInfo(100);
  delete noLength.length;
  rejects(torrent(noLength), "info.length is missing, not an integer");
  rejects(
    torrent({ ...singleInfo(100), "piece length": "x" }),
    "info.piece length is a string, not an integer",
  );
});

Deno.test("metainfo rejects pieces that are not a multiple of 20", () => {
  const info = singleInfo(100);
  info.pieces = new Uint8Array(21);
  rejects(torrent(info), "info.pieces is 21 bytes, not a multiple of 20");
  info.pieces = new Uint8Array(19);
  rejects(torrent(info), "info.pieces is 19 bytes, not a multiple of 20");
});

Deno.test("metainfo rejects a piece count that does not match the length", () => {
  const info = singleInfo(40000);
  info.pieces = new Uint8Array(40);
  rejects(
    torrent(info),
    "info.pieces has 2 hashes but 40000 bytes in 16384-byte pieces need 3",
  );
  info.pieces = new Uint8Array(80);
  rejects(torrent(info), /has 4 hashes but 40000 bytes .* need 3/);
  info.pieces = new Uint8Array(0);
  rejects(torrent(info), /has 0 hashes/);
});

Deno.test("metainfo rejects negative lengths", () => {
  rejects(
    torrent({ ...singleInfo(100), length: -1 }),
    "info.length is negative (-1)",
  );
  rejects(
    torrent(
      multiInfo([{ path: ["a"], length: 100 }, { path: ["b"], length: -5 }]),
    ),
    "info.files[1].length is negative (-5)",
  );
});

Deno.test("metainfo rejects zero and absurd piece lengths", () => {
  const max = 256 * 1024 * 1024;
  rejects(
    torrent({ ...singleInfo(100), "piece length": 0 }),
    `info.piece length is 0, not between 1 and ${max}`,
  );
  rejects(
    torrent({ ...singleInfo(100), "piece length": -16384 }),
    `info.piece length is -16384, not between 1 and ${max}`,
  );
  rejects(
    torrent({ ...singleInfo(100), "piece length": max * 2 }),
    `info.piece length is ${max * 2}, not between 1 and ${max}`,
  );
  // The largest allowed piece length is accepted.
  const m = parseMetainfo(torrent({ ...singleInfo(100), "piece length": max }));
  assert.equal(m.pieceLength, max);
});

Deno.test("metainfo rejects empty data and absurd total length", () => {
  rejects(
    torrent({ ...singleInfo(100), length: 0, pieces: new Uint8Array(0) }),
    "the torrent holds no data (total length 0)",
  );
  rejects(
    torrent(multiInfo([{ path: ["a"], length: 0 }])),
    "the torrent holds no data (total length 0)",
  );
  rejects(
    torrent({
      ...singleInfo(100),
      length: 2 ** 50 + 1,
      pieces: new Uint8Array(20),
    }),
    `total length ${2 ** 50 + 1} is absurdly large`,
  );
});

Deno.test("metainfo rejects path components that name no file", () => {
  const cases: [string[], string][] = [
    [
      [".."],
      `info.files[0].path[0] is "..", which would escape the download folder`,
    ],
    [
      ["ok", ".."],
      `info.files[0].path[1] is "..", which would escape the download folder`,
    ],
    // Separators are dropped from a name, so these are ".." and "." too.
    [
      ["../"],
      `info.files[0].path[0] is "../", which would escape the download folder`,
    ],
    [["."], `info.files[0].path[0] is ".", which names the folder itself`],
    [["./"], `info.files[0].path[0] is "./", which names the folder itself`],
    [["ok", ""], "info.files[0].path[1] is empty"],
    [
      ["/"],
      `info.files[0].path[0] "/" has no characters left for a file name`,
    ],
    [
      ["\u202e"],
      `info.files[0].path[0] "\u202e" has no characters left for a file name`,
    ],
  ];
  for (const [path, message] of cases) {
    rejects(torrent(multiInfo([{ path, length: 100 }])), message);
  }
  rejects(
    torrent(multiInfo([{ path: [], length: 100 }])),
    "info.files[0].path is empty",
  );
  rejects(
    torrent(
      multiInfo([{ path: ["a"], length: 1 }, {
        path: ["b", 7 as never],
        length: 1,
      }]),
    ),
    "info.files[1].path[1] is an integer, not a string",
  );
  // The torrent's name is checked the same way (it is a folder or file name).
  rejects(
    torrent(singleInfo(100, "..")),
    `info.name is "..", which would escape the download folder`,
  );
  rejects(torrent(singleInfo(100, "")), "info.name is empty");
  rejects(
    torrent(singleInfo(100, "//")),
    `info.name "//" has no characters left for a file name`,
  );
  rejects(
    torrent(multiInfo([{ path: ["a"], length: 100 }], { name: "." })),
    `info.name is ".", which names the folder itself`,
  );
});

Deno.test("metainfo: separators, control characters and direction marks are made safe as libtorrent does", () => {
  const m = parseMetainfo(torrent(multiInfo([
    { path: ["a/b"], length: 1 },
    { path: ["/etc", "passwd"], length: 1 },
    { path: ["a\\b.txt"], length: 1 },
    { path: ["line\nbreak\u0000nul\u001b[31m"], length: 1 },
    { path: ["evil\u202etxt.exe"], length: 1 },
    { path: ["../x"], length: 1 },
    { path: ["..."], length: 1 },
  ], { name: "top/\u0007" })));
  assert.equal(m.name, "top_");
  assert.deepEqual(m.files.map((f) => f.path), [
    ["ab"],
    ["etc", "passwd"],
    ["ab.txt"],
    ["line_break_nul_[31m"],
    ["eviltxt.exe"],
    ["..x"],
    ["..."],
  ]);
  const single = parseMetainfo(torrent(singleInfo(100, "dir/file\t.bin")));
  assert.equal(single.name, "dirfile_.bin");
  assert.deepEqual(single.files[0].path, ["dirfile_.bin"]);
});

Deno.test("metainfo: names too long for the disk are cut as libtorrent cuts them; the info-hash stays", () => {
  const info = multiInfo([
    { path: ["f".repeat(300) + ".bin"], length: 10 },
    { path: ["é".repeat(200), "short.txt"], length: 20 },
  ], { name: "d".repeat(260) });
  const raw = torrent(info);
  const m = parseMetainfo(raw);
  assert.equal(m.name, "d".repeat(240));
  assert.deepEqual(m.files.map((f) => f.path), [
    ["f".repeat(240) + ".bin"],
    ["é".repeat(120), "short.txt"],
  ]);
  // The hash is of the torrent's own bytes, whatever the names on disk.
  assert.deepEqual(m.infoHash, sha1(encode(info)));
  assert.deepEqual(m.infoBytes, encode(info));
  // The same torrent maps to the same names every time (a resumed run finds its files).
  assert.deepEqual(parseMetainfo(raw).files, m.files);

  const single = parseMetainfo(
    torrent(singleInfo(100, "s".repeat(400) + ".iso")),
  );
  assert.equal(single.name, "s".repeat(240) + ".iso");
  assert.deepEqual(single.files[0].path, [single.name]);
});

Deno.test("metainfo: files whose names collide once cut or cleaned are numbered", () => {
  const m = parseMetainfo(torrent(multiInfo([
    { path: ["f".repeat(300) + ".txt"], length: 1 },
    { path: ["f".repeat(250) + "X.txt"], length: 1 },
    { path: ["f".repeat(250) + "Y.txt"], length: 1 },
    { path: ["a\u0001"], length: 1 },
    { path: ["a\u0002"], length: 1 },
    { path: ["Readme"], length: 1 },
    { path: ["README"], length: 1 },
    // A file cleaned into the name of a folder gives way to the folder.
    { path: ["k\u0001"], length: 1 },
    { path: ["k\u0002", "b"], length: 1 },
    // Padding files never reach the disk and keep their names.
    { path: [".pad", "1"], length: 1, attr: "p" },
    { path: [".pad", "1"], length: 1, attr: "p" },
  ])));
  assert.deepEqual(m.files.map((f) => f.path.join("/")), [
    "f".repeat(240) + ".txt",
    "f".repeat(240) + ".1.txt",
    "f".repeat(240) + ".2.txt",
    "a_",
    "a_.1",
    "Readme",
    "README.1",
    "k_.1",
    "k_/b",
    ".pad/1",
    ".pad/1",
  ]);
});

Deno.test("metainfo rejects duplicate paths and files inside files", () => {
  rejects(
    torrent(multiInfo([
      { path: ["d", "a"], length: 1 },
      { path: ["d", "b"], length: 1 },
      { path: ["d", "a"], length: 1 },
    ])),
    `info.files[2].path "d/a" appears twice`,
  );
  rejects(
    torrent(
      multiInfo([{ path: ["a"], length: 1 }, { path: ["a", "b"], length: 1 }]),
    ),
    `info.files[1].path "a/b" is inside the file "a"`,
  );
  rejects(
    torrent(
      multiInfo([{ path: ["x", "a"], length: 1 }, {
        path: ["x", "a", "b", "c"],
        length: 1,
      }]),
    ),
    `info.files[1].path "x/a/b/c" is inside the file "x/a"`,
  );
  // The other order: a file where a folder already is.
  rejects(
    torrent(
      multiInfo([{ path: ["a", "b"], length: 1 }, { path: ["a"], length: 1 }]),
    ),
    /^info\.files\[1\]\.path "a" /,
  );
  // Same names in different folders are fine.
  const m = parseMetainfo(torrent(multiInfo([
    { path: ["x", "f"], length: 1 },
    { path: ["y", "f"], length: 1 },
    { path: ["f"], length: 1 },
  ])));
  assert.equal(m.files.length, 3);
});

Deno.test("metainfo rejects bad files lists", () => {
  rejects(torrent(multiInfo([])), "info.files is empty");
  rejects(
    torrent({ ...singleInfo(100), files: [{ length: 100, path: ["a"] }] }),
    "info has both length and files",
  );
  rejects(
    torrent({ ...multiInfo([{ path: ["a"], length: 1 }]), files: "x" }),
    "info.files is a string, not a list",
  );
  rejects(
    torrent({ ...multiInfo([{ path: ["a"], length: 1 }]), files: [5] }),
    "info.files[0] is an integer, not a dictionary",
  );
  rejects(
    torrent({
      ...multiInfo([{ path: ["a"], length: 1 }]),
      files: [{ path: ["a"] }],
    }),
    "info.files[0].length is missing, not an integer",
  );
  rejects(
    torrent({
      ...multiInfo([{ path: ["a"], length: 1 }]),
      files: [{ length: 1 }],
    }),
    "info.files[0].path is missing, not a list",
  );
});

Deno.test("metainfo rejects v2-only torrents", () => {
  const info: Record<string, Encodable> = {
    name: "v2",
    "piece length": PIECE,
    "meta version": 2,
    "file tree": {
      "a.txt": { "": { length: 5, "pieces root": new Uint8Array(32) } },
    },
  };
  rejects(
    torrent(info),
    "BitTorrent v2-only torrents are not supported (info has no pieces)",
  );
});
