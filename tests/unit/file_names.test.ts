import assert from "node:assert/strict";
import {
  diskName,
  quoted,
  uniquePaths,
} from "../../src/metainfo/file_names.ts";

const bytes = (s: string) => new TextEncoder().encode(s).length;

Deno.test("diskName: names below 240 bytes are kept as they are", () => {
  for (
    const name of [
      "a.txt",
      "Ünïcödé 日本語 😀.flac",
      "...",
      "a..b",
      ".hidden",
      "x".repeat(239),
    ]
  ) {
    assert.equal(diskName(name), name);
  }
});

Deno.test("diskName: a long name is cut at 240 bytes, keeping its extension", () => {
  assert.equal(diskName("a".repeat(300) + ".mkv"), "a".repeat(240) + ".mkv");
  assert.equal(diskName("b".repeat(300)), "b".repeat(240));
  // libtorrent cuts from 240 bytes on, even where ext4 would take the name.
  assert.equal(diskName("w".repeat(241)), "w".repeat(240));
  assert.equal(diskName("w".repeat(240)), "w".repeat(240));
  // Bytes are counted, not characters: 120 two-byte characters fill it.
  assert.equal(diskName("é".repeat(150) + ".mkv"), "é".repeat(120) + ".mkv");
  // The cut falls after the character that reaches 240 bytes, never inside it.
  assert.equal(
    diskName("a".repeat(239) + "é" + "z".repeat(20) + ".mkv"),
    "a".repeat(239) + "é.mkv",
  );
  assert.equal(
    diskName("a".repeat(238) + "😀".repeat(10) + ".flac"),
    "a".repeat(238) + "😀.flac",
  );
  // Only the last dot counts, and only within the name's last 9 bytes.
  assert.equal(
    diskName("c".repeat(300) + ".tar.gz"),
    "c".repeat(240) + ".gz",
  );
  assert.equal(diskName("c".repeat(245) + ".verylongext"), "c".repeat(240));
  assert.equal(
    diskName("c".repeat(250) + ".abcdefgh"),
    "c".repeat(240) + ".abcdefgh",
  );
  assert.equal(diskName("c".repeat(250) + ".abcdefghi"), "c".repeat(240));
  // A dot early in the name is no extension.
  assert.equal(diskName("ab.c" + "a".repeat(300)), "ab.c" + "a".repeat(236));
});

Deno.test("diskName: any name fits in 255 bytes and is cut at character boundaries", () => {
  // A fixed generator: the same names on every run.
  let x = 7;
  const next = (n: number) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const alphabet = ["a", "Z", ".", "é", "日", "😀", "_", " ", "\u0001", "/"];
  for (let run = 0; run < 2000; run++) {
    let name = "";
    const length = 1 + next(400);
    for (let i = 0; i < length; i++) name += alphabet[next(alphabet.length)];
    const out = diskName(name);
    assert.ok(bytes(out) <= 252, `${bytes(out)} bytes from ${quoted(name)}`);
    // Well-formed UTF-8: no character was split.
    assert.equal(
      new TextDecoder("utf-8", { fatal: true }).decode(
        new TextEncoder().encode(out),
      ),
      out,
    );
    // What is kept is the cleaned name's start, plus at most a short extension of it.
    const cleaned = name.replaceAll("/", "").replaceAll("\u0001", "_");
    if (bytes(cleaned) < 240) assert.equal(out, cleaned);
    else {
      const extension = out.slice(out.lastIndexOf("."));
      assert.ok(
        cleaned.startsWith(out) ||
          (cleaned.startsWith(out.slice(0, -extension.length)) &&
            cleaned.endsWith(extension) && bytes(extension) <= 9),
        `${quoted(out)} from ${quoted(cleaned)}`,
      );
    }
  }
});

Deno.test("uniquePaths: colliding files are numbered before the extension", () => {
  assert.deepEqual(
    uniquePaths([["d", "f.txt"], ["d", "f.txt"], ["d", "f.txt"], ["d", "g"], [
      "d",
      "g",
    ]]),
    [["d", "f.txt"], ["d", "f.1.txt"], ["d", "f.2.txt"], ["d", "g"], [
      "d",
      "g.1",
    ]],
  );
  // ASCII case is ignored, as libtorrent does (a case-insensitive file system would merge them).
  assert.deepEqual(uniquePaths([["Readme"], ["README"], ["readme"]]), [
    ["Readme"],
    ["README.1"],
    ["readme.2"],
  ]);
  // A file never takes a folder's name, wherever the folder comes.
  assert.deepEqual(uniquePaths([["k"], ["k", "b"]]), [["k.1"], ["k", "b"]]);
  // A number already taken by a later file's own name is skipped by that file's rename.
  assert.deepEqual(uniquePaths([["m"], ["m"], ["m.1"]]), [
    ["m"],
    ["m.1"],
    ["m.1.1"],
  ]);
  // The same folder reached twice is one folder, not a collision.
  assert.deepEqual(uniquePaths([["x", "a"], ["x", "b"]]), [
    ["x", "a"],
    ["x", "b"],
  ]);
});

Deno.test("uniquePaths: numbered names stay within 255 bytes, and many collisions stay cheap", () => {
  const longest = "g".repeat(239) + "😀.abcdefgh"; // 252 bytes
  const names = uniquePaths(Array.from({ length: 150 }, () => [longest]));
  const unique = new Set(names.map((p) => p[0]));
  assert.equal(unique.size, 150);
  for (const [name] of names) assert.ok(bytes(name) <= 255, name);
  assert.equal(names[1][0], "g".repeat(239) + "😀.1.abcdefgh");
  // From ".100" on, the emoji no longer fits: the base is cut before it.
  assert.equal(names[100][0], "g".repeat(239) + ".100.abcdefgh");

  const start = performance.now();
  const many = uniquePaths(Array.from({ length: 5_000 }, () => ["same"]));
  assert.equal(new Set(many.map((p) => p[0])).size, 5_000);
  assert.ok(performance.now() - start < 2000, "numbering is not quadratic");
});

Deno.test("quoted: one line, escaped and shortened", () => {
  assert.equal(quoted("a/b"), '"a/b"');
  assert.equal(quoted("line\nbreak"), '"line\\nbreak"');
  assert.equal(quoted("é".repeat(100)), `"${"é".repeat(60)}…"`);
});
