// A torrent whose names no Linux file system can hold (ext4 takes 255 bytes a
// name) downloads from libtorrent: both clients cut (and clean and number)
// names the same way, so the folder one of them wrote is the folder the other
// one finds.
//
// No tool can make such a torrent from files on disk, as the names cannot
// exist there. So mktorrent hashes a payload of short names, and the test
// renames its entries in the .torrent: the pieces stay right, since data is
// addressed by piece and the renaming keeps every file's place and length.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { decode } from "../../src/bencode/decode.ts";
import { type Encodable, encode } from "../../src/bencode/encode.ts";
import { parseMetainfo } from "../../src/metainfo/metainfo.ts";
import { runClient } from "../helpers/client.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import {
  DEBIAN_PYTHON,
  infoHashOf,
  makeTorrent,
} from "../helpers/mktorrent.ts";
import { makeMultiFile, sha256Tree } from "../helpers/payload.ts";
import { ExternalProcess } from "../helpers/process.ts";

const bytes = (s: string) => new TextEncoder().encode(s).length;

/** 260 bytes; byte 240 falls inside a two-byte "ä". */
const LONG_FOLDER = "Ordner-" + "ä".repeat(126) + "x";
/** The payload's short names (payload.ts) and the long ones the torrent gets instead. */
const RENAMED: Record<string, string> = {
  "a.bin": "f".repeat(296) + ".bin",
  // Cut, it is the name above: both clients number it.
  "one.byte": "f".repeat(297) + "Y.bin",
  "sub": "s".repeat(260),
};

Deno.test("a torrent with 300-byte file and 260-byte folder names downloads from libtorrent under the names libtorrent uses", async () => {
  assert.equal(bytes(LONG_FOLDER), 260);
  assert.equal(bytes(RENAMED["a.bin"]), 300);
  const root = await Deno.makeTempDir({ prefix: "btclient-names-" });
  try {
    const source = await makeMultiFile(`${root}/source`, "multi");
    const short = await makeTorrent(source, `${root}/short.torrent`, {
      announce: [],
    });
    const torrent = `${root}/long.torrent`;
    await Deno.writeFile(torrent, renamed(await Deno.readFile(short)));

    // The names libtorrent gives the files on disk are ours too.
    const theirs = await libtorrentPaths(torrent);
    const meta = parseMetainfo(await Deno.readFile(torrent));
    const ours = meta.files.map((f) => [meta.name, ...f.path].join("/"));
    assert.deepEqual(ours, theirs);
    assert.equal(meta.infoHashHex, await infoHashOf(torrent));
    for (const p of ours) {
      for (const name of p.split("/")) assert.ok(bytes(name) <= 255, name);
    }
    assert.ok(ours.includes(`${meta.name}/${"f".repeat(240)}.1.bin`), ours[0]);

    // libtorrent seeds from a folder laid out under its own names.
    const seedDir = `${root}/seed`;
    const payloadPaths = parseMetainfo(await Deno.readFile(short)).files;
    theirs.forEach((p, i) => {
      const target = path.join(seedDir, p);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(path.join(source, ...payloadPaths[i].path), target);
    });
    const seeder = await startLibtorrentSeeder({ torrent, dataDir: seedDir });
    const downloadDir = `${root}/download`;
    const args = ["download", torrent, "--dir", downloadDir, "--port", "0"];
    try {
      const run = await runClient([
        ...args,
        "--peer",
        `127.0.0.1:${seeder.port}`,
      ]);
      assert.equal(run.code, 0, run.output);
      assert.doesNotMatch(run.output, /disk error|ENAMETOOLONG/);
    } finally {
      await seeder.stop();
    }
    const copy = await sha256Tree(downloadDir);
    for (const key of [...copy.keys()]) {
      if (key.startsWith(".btclient/")) copy.delete(key);
    }
    assert.deepEqual(copy, await sha256Tree(seedDir));

    // A second run maps the names the same way and finds every file verified.
    const again = await runClient(args);
    assert.equal(again.code, 0, again.output);
    assert.ok(
      again.events.some((e) => e.type === "alreadyComplete"),
      again.output,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Names libtorrent 2.0 changes on Linux: cut, cleaned or numbered. */
const AWKWARD_PATHS: string[][] = [
  ["a".repeat(300) + ".mkv"],
  ["é".repeat(150) + ".mkv"],
  ["a".repeat(239) + "é" + "z".repeat(9) + ".mkv"],
  ["a".repeat(239) + "😀xyz.mkv"],
  ["b".repeat(237) + "日" + "c".repeat(30) + ".tar.gz"],
  ["c".repeat(245) + ".verylongext"],
  ["ab.c" + "d".repeat(300)],
  ["w".repeat(240)],
  ["w".repeat(241)],
  ["w".repeat(250) + ".abcdefgh"],
  ["w".repeat(250) + ".abcdefghi"],
  ["d".repeat(270), "f".repeat(300) + ".txt"],
  ["d".repeat(270), "f".repeat(250) + "X.txt"],
  ["d".repeat(270), "f".repeat(250) + "Y.txt"],
  ["a\u0001"],
  ["a\u0002"],
  ["line\nbreak\u001b[31m"],
  ["x/y"],
  ["p\\q"],
  ["/etc", "passwd"],
  ["evil\u202etxt.exe"],
  ["Readme"],
  ["README"],
  ["k\u0001"],
  ["k\u0002", "b"],
  ["m.txt"],
  ["M.TXT"],
  ["m.1.txt"],
  ["..x"],
  ["..."],
];

Deno.test("awkward names get the paths libtorrent 2.0 gives them", async () => {
  const root = await Deno.makeTempDir({ prefix: "btclient-names-" });
  try {
    const torrent = `${root}/awkward.torrent`;
    await Deno.writeFile(
      torrent,
      encode({
        info: {
          name: "top" + "T".repeat(300),
          "piece length": 16384,
          pieces: new Uint8Array(20),
          files: AWKWARD_PATHS.map((parts) => ({ length: 1, path: parts })),
        },
      }),
    );
    const meta = parseMetainfo(await Deno.readFile(torrent));
    assert.deepEqual(
      meta.files.map((f) => [meta.name, ...f.path].join("/")),
      await libtorrentPaths(torrent),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** The .torrent with its name and the RENAMED path components replaced. */
function renamed(raw: Uint8Array): Uint8Array {
  const top = decode(raw) as Record<string, Encodable>;
  const info = top.info as Record<string, Encodable>;
  info.name = LONG_FOLDER;
  for (const file of info.files as Record<string, Encodable>[]) {
    file.path = (file.path as Uint8Array[]).map((part) => {
      const text = new TextDecoder().decode(part);
      return RENAMED[text] ?? text;
    });
  }
  return encode(top);
}

/** Each file's path below the save folder as libtorrent maps it. */
async function libtorrentPaths(torrent: string): Promise<string[]> {
  const python = ExternalProcess.spawn({
    name: "libtorrent file paths",
    cmd: DEBIAN_PYTHON,
    args: [
      "-c",
      "import sys, json, libtorrent as lt\n" +
      "files = lt.torrent_info(sys.argv[1]).files()\n" +
      "print('PATHS', json.dumps([files.file_path(i) for i in range(files.num_files())]))",
      torrent,
    ],
    lifetimeSec: 60,
  });
  const [, json] = await python.waitForLine(/^PATHS (.*)$/, 60_000);
  await python.succeeded();
  return JSON.parse(json);
}
