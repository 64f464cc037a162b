// Bad input of every kind gets a one-line error and the documented exit code,
// never a stack trace; a broken tracker is logged and the download goes on.

import assert from "node:assert/strict";
import { runClient } from "../helpers/client.ts";
import { startLibtorrentSeeder } from "../helpers/libtorrent.ts";
import {
  assertSameTree,
  makeFixture,
  writeConfig,
} from "../helpers/swarm_fixture.ts";
import { encode } from "../../src/bencode/encode.ts";

const BAD_INPUT = 2;
const sha1Bytes = (n: number) => new Uint8Array(20 * n);

/** Torrent files that must be refused, with a fragment of the expected message. */
const BAD_TORRENTS: [string, Uint8Array, RegExp][] = [
  [
    "truncated",
    new TextEncoder().encode("d4:infod4:name3:abc"),
    /not a valid bencoded torrent/,
  ],
  [
    "not bencode",
    new TextEncoder().encode("<html>hello</html>"),
    /not a valid bencoded torrent/,
  ],
  [
    "pieces not a multiple of 20",
    encode({
      info: {
        name: "a",
        "piece length": 16384,
        length: 10,
        pieces: new Uint8Array(21),
      },
    }),
    /info\.pieces is 21 bytes, not a multiple of 20/,
  ],
  [
    "piece count does not match the length",
    encode({
      info: {
        name: "a",
        "piece length": 16384,
        length: 40000,
        pieces: sha1Bytes(2),
      },
    }),
    /info\.pieces has 2 hashes but 40000 bytes/,
  ],
  [
    "negative length",
    encode({
      info: {
        name: "a",
        "piece length": 16384,
        length: -5,
        pieces: sha1Bytes(1),
      },
    }),
    /negative/,
  ],
  [
    "absurd piece length",
    encode({
      info: {
        name: "a",
        "piece length": 2 ** 40,
        length: 10,
        pieces: sha1Bytes(1),
      },
    }),
    /piece length/,
  ],
  [
    "path escaping with ..",
    encode({
      info: {
        name: "a",
        "piece length": 16384,
        pieces: sha1Bytes(1),
        files: [{ length: 10, path: ["..", "etc", "passwd"] }],
      },
    }),
    /would escape the download folder/,
  ],
  [
    "a path component of separators only",
    encode({
      info: {
        name: "a",
        "piece length": 16384,
        pieces: sha1Bytes(1),
        files: [{ length: 10, path: ["x", "//"] }],
      },
    }),
    /info\.files\[0\]\.path\[1\] "\/\/" has no characters left/,
  ],
  [
    "empty path component",
    encode({
      info: {
        name: "a",
        "piece length": 16384,
        pieces: sha1Bytes(1),
        files: [{ length: 10, path: ["x", ""] }],
      },
    }),
    /is empty/,
  ],
  [
    // Each name fits once cut to 240 bytes, but 20 folders deep the path does not.
    "a path longer than PATH_MAX",
    encode({
      info: {
        name: "deep",
        "piece length": 16384,
        pieces: sha1Bytes(1),
        files: [{
          length: 10,
          path: [...Array(20).fill("d".repeat(300)), "file.bin"],
        }],
      },
    }),
    /^error: info\.files\[0\] "deep\/d{55}…" would be a \d{4}-byte path in \S+, more than the 4095 bytes Linux allows$/m,
  ],
];

for (const [what, bytes, message] of BAD_TORRENTS) {
  Deno.test(`refuses a torrent file: ${what}`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "btclient-bad-" });
    try {
      await Deno.writeFile(`${dir}/bad.torrent`, bytes);
      const run = await runClient([
        "download",
        `${dir}/bad.torrent`,
        "--dir",
        `${dir}/dl`,
      ]);
      assert.equal(run.code, BAD_INPUT, run.output);
      assert.match(run.output, message);
      assertOneLineError(run.output);
      // Nothing is written for a torrent that was refused.
      await assert.rejects(Deno.stat(`${dir}/dl`));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const BAD_COMMAND_LINES: [string, string[], RegExp][] = [
  [
    "a missing torrent file",
    ["download", "/nonexistent/x.torrent"],
    /cannot read \/nonexistent\/x\.torrent/,
  ],
  ["an unknown flag", ["download", "x.torrent", "--bogus"], /bogus/],
  [
    "a bad port",
    ["download", "x.torrent", "--port", "70000"],
    /--port "70000" is not a port number/,
  ],
  [
    "a bad --peer",
    ["download", "x.torrent", "--peer", "localhost"],
    /--peer "localhost" is not HOST:PORT/,
  ],
  ["no command", [], /no command given/],
];

for (const [what, args, message] of BAD_COMMAND_LINES) {
  Deno.test(`refuses ${what} with exit code 2`, async () => {
    const run = await runClient(args);
    assert.equal(run.code, BAD_INPUT, run.output);
    assert.match(run.output, message);
    assertOneLineError(run.output);
  });
}

const BAD_CONFIGS: [string, string, RegExp][] = [
  ["an unknown key", `{"maxPeer": 5}`, /unknown key "maxPeer"/],
  ["a wrong type", `{"maxPeers": "5"}`, /maxPeers must be a number/],
  [
    "a value out of range",
    `{"listenPort": 99999}`,
    /listenPort is 99999, not between 0 and 65535/,
  ],
  ["invalid JSON", `{"maxPeers": 5,}`, /not valid JSON/],
];

for (const [what, text, message] of BAD_CONFIGS) {
  Deno.test(`refuses a config file with ${what}`, async () => {
    const fixture = await makeFixture({ kind: "single", size: 100_000 });
    try {
      const config = `${fixture.root}/config.json`;
      await Deno.writeTextFile(config, text);
      const run = await runClient([
        "download",
        fixture.torrent,
        "--config",
        config,
        "--dir",
        fixture.downloadDir,
      ]);
      assert.equal(run.code, BAD_INPUT, run.output);
      assert.match(run.output, message);
      assert.match(run.output, /config\.json/);
      assertOneLineError(run.output);
    } finally {
      await fixture.remove();
    }
  });
}

for (
  const [what, reply] of [
    ["garbage", () => new Response("<html>not a tracker</html>")],
    ["an HTTP error", () => new Response("oops", { status: 500 })],
    [
      "a failure reason",
      () => new Response("d14:failure reason12:unregisterede"),
    ],
  ] as const
) {
  Deno.test(`a tracker that answers ${what} is logged and the download goes on`, async () => {
    const abort = new AbortController();
    const listening = Promise.withResolvers<number>();
    const server = Deno.serve(
      {
        hostname: "127.0.0.1",
        port: 0,
        signal: abort.signal,
        onListen: (a) => listening.resolve(a.port),
      },
      reply,
    );
    const url = `http://127.0.0.1:${await listening.promise}/announce`;
    const fixture = await makeFixture({ kind: "multi", announce: [url] });
    const seeder = await startLibtorrentSeeder({
      torrent: fixture.torrent,
      dataDir: fixture.dataDir,
    });
    try {
      const config = await writeConfig(fixture, { trackerTimeoutSeconds: 2 });
      const run = await runClient([
        "download",
        fixture.torrent,
        "--config",
        config,
        "--dir",
        fixture.downloadDir,
        "--port",
        "0",
        "--peer",
        `127.0.0.1:${seeder.port}`,
      ]);
      assert.equal(run.code, 0, run.output);
      const trackerLines = run.output.split("\n").filter((l) =>
        l.includes(`tracker ${url}`)
      );
      assert.equal(
        trackerLines.length,
        1,
        `expected the failure logged once:\n${run.output}`,
      );
      await assertSameTree(fixture);
    } finally {
      await seeder.stop();
      await fixture.remove();
      abort.abort();
      await server.finished;
    }
  });
}

function assertOneLineError(output: string): void {
  const errors = output.split("\n").filter((l) => l.startsWith("error: "));
  assert.equal(errors.length, 1, output);
  assert.doesNotMatch(output, /^\s+at /m, "a stack trace was printed");
}
