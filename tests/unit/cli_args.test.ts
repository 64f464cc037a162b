import assert from "node:assert/strict";
import { parseCommandLine, parsePeer, USAGE } from "../../src/cli/args.ts";
import { ConfigError } from "../../src/config.ts";

function fails(argv: string[], message: string | RegExp): void {
  assert.throws(
    () => parseCommandLine(argv),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
      if (typeof message === "string") assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
    argv.join(" "),
  );
}

Deno.test("args: download with every flag", () => {
  assert.deepEqual(
    parseCommandLine([
      "download",
      "ubuntu.torrent",
      "--dir",
      "/tmp/dl",
      "--config",
      "my.json",
      "--port",
      "51413",
      "--peer",
      "127.0.0.1:6881",
      "--peer=[::1]:6882",
      "--peer",
      "seed.example.org:7000",
      "--quiet",
    ]),
    {
      command: "download",
      torrent: "ubuntu.torrent",
      overrides: { downloadDir: "/tmp/dl", listenPort: 51413 },
      config: "my.json",
      peerReport: undefined,
      json: false,
      events: undefined,
      peers: [
        { host: "127.0.0.1", port: 6881 },
        { host: "::1", port: 6882 },
        { host: "seed.example.org", port: 7000 },
      ],
      quiet: true,
    },
  );
});

Deno.test("args: download with no flags, flags before the command", () => {
  assert.deepEqual(parseCommandLine(["download", "a.torrent"]), {
    command: "download",
    torrent: "a.torrent",
    overrides: {},
    config: undefined,
    peerReport: undefined,
    peers: [],
    quiet: false,
    json: false,
    events: undefined,
  });
  const r = parseCommandLine(["--port=0", "download", "--dir=x", "a.torrent"]);
  assert.equal(r.command, "download");
  if (r.command === "download") {
    assert.deepEqual(r.overrides, { listenPort: 0, downloadDir: "x" });
    assert.equal(r.torrent, "a.torrent");
  }
});

Deno.test("args: --peer forms", () => {
  assert.deepEqual(parsePeer("[::1]:6881"), { host: "::1", port: 6881 });
  assert.deepEqual(parsePeer("[2001:db8::1]:1"), {
    host: "2001:db8::1",
    port: 1,
  });
  assert.deepEqual(parsePeer("[::ffff:1.2.3.4]:65535"), {
    host: "::ffff:1.2.3.4",
    port: 65535,
  });
  assert.deepEqual(parsePeer("10.0.0.1:80"), { host: "10.0.0.1", port: 80 });
  assert.deepEqual(parsePeer("localhost:6881"), {
    host: "localhost",
    port: 6881,
  });
  for (
    const bad of [
      "::1:6881", // IPv6 needs brackets
      "[::1]", // no port
      "[::1]6881",
      "host",
      "host:",
      ":6881",
      "host:port",
      "host:-1",
      "[host]:1",
      "a:b:1",
      "",
    ]
  ) {
    assert.throws(() => parsePeer(bad), ConfigError, bad);
    assert.throws(
      () => parsePeer(bad),
      new RegExp(`--peer "${bad.replace(/[[\]]/g, "\\$&")}"`),
      bad,
    );
  }
  assert.throws(
    () => parsePeer("host"),
    /^ConfigError: --peer "host" is not HOST:PORT \(/,
  );
});

Deno.test("args: bad ports", () => {
  fails(
    ["download", "a.torrent", "--port", "65536"],
    '--port "65536" is not a port number (0-65535)',
  );
  fails(["download", "a.torrent", "--port", "-1"], /--port/);
  fails(
    ["download", "a.torrent", "--port", "abc"],
    '--port "abc" is not a port number (0-65535)',
  );
  fails(["download", "a.torrent", "--port", "1.5"], /is not a port number/);
  fails(["download", "a.torrent", "--port", ""], /is not a port number/);
  fails(["download", "a.torrent", "--port", "123456"], /is not a port number/);
  fails(
    ["download", "a.torrent", "--peer", "h:65536"],
    '--peer "h:65536" is not HOST:PORT (a port of 1-65535, [IPv6] in brackets)',
  );
  fails(
    ["download", "a.torrent", "--peer", "h:0"],
    '--peer "h:0": port 0 cannot be dialled',
  );
  fails(
    ["download", "a.torrent", "--peer", "[::1]:99999"],
    /is not HOST:PORT \(a port of 1-65535/,
  );
  const ok = parseCommandLine(["download", "a.torrent", "--port", "65535"]);
  assert.equal(ok.command === "download" && ok.overrides.listenPort, 65535);
});

Deno.test("args: unknown flag, missing value", () => {
  fails(["download", "a.torrent", "--bogus"], /bogus/);
  fails(["download", "a.torrent", "-x"], /-x/);
  fails(["download", "a.torrent", "--port"], /port/);
  fails(["download", "a.torrent", "--quiet=yes"], /quiet/);
});

Deno.test("args: missing torrent, extra operands, unknown or missing command", () => {
  fails(["seed"], "seed needs a .torrent file");
  fails(["seed", "--quiet"], "seed needs a .torrent file");
  // download without a torrent is batch mode: every .torrent in torrentsDir.
  const batch = parseCommandLine(["download", "--max-minutes", "20", "--json"]);
  assert.ok(batch.command === "download" && batch.torrent === undefined);
  assert.ok(batch.command === "download" && batch.json);
  assert.deepEqual(batch.command === "download" && batch.overrides, {
    maxMinutes: 20,
  });
  fails(
    ["download", "a.torrent", "b.torrent"],
    "download takes one torrent, got 2",
  );
  fails(["create", "a.torrent"], 'unknown command "create" (try --help)');
  fails(["Download", "a.torrent"], 'unknown command "Download" (try --help)');
  fails([], "no command given (try --help)");
  fails(["--quiet"], "no command given (try --help)");
});

Deno.test("args: --help and --version win over everything", () => {
  assert.deepEqual(parseCommandLine(["--help"]), { command: "help" });
  assert.deepEqual(parseCommandLine(["-h"]), { command: "help" });
  assert.deepEqual(parseCommandLine(["download", "--help"]), {
    command: "help",
  });
  assert.deepEqual(parseCommandLine(["nonsense", "-h"]), { command: "help" });
  assert.deepEqual(parseCommandLine(["--version"]), { command: "version" });
  assert.deepEqual(parseCommandLine(["download", "x", "--version"]), {
    command: "version",
  });
  assert.deepEqual(parseCommandLine(["--help", "--version"]), {
    command: "help",
  });
  assert.match(
    USAGE,
    /^Usage: btclient download \[<file\.torrent> \| <magnet link> \| <file\.magnet>\]/,
  );
  for (
    const flag of [
      "--dir",
      "--config",
      "--port",
      "--peer",
      "--quiet",
      "--help",
      "--version",
    ]
  ) {
    assert.ok(USAGE.includes(flag), flag);
  }
});

Deno.test("args: seed, rates with suffixes, seeding goals, peer report", () => {
  const r = parseCommandLine([
    "seed",
    "a.torrent",
    "--download-limit",
    "5M",
    "--upload-limit=512K",
    "--seed-ratio",
    "1.5",
    "--seed-minutes",
    "30",
    "--peer-report",
    "peers.csv",
  ]);
  assert.equal(r.command, "seed");
  if (r.command !== "seed") return;
  assert.deepEqual(r.overrides, {
    downloadLimit: 5 * 1024 * 1024,
    uploadLimit: 512 * 1024,
    seedRatio: 1.5,
    seedMinutes: 30,
  });
  assert.equal(r.peerReport, "peers.csv");
  fails(
    ["seed", "a.torrent", "--upload-limit", "fast"],
    /--upload-limit "fast" is not a rate/,
  );
  fails(
    ["seed", "a.torrent", "--peer-report", "peers.txt"],
    /must end in \.json or \.csv/,
  );
  fails(
    ["seed", "a.torrent", "--seed-ratio=-1"],
    /--seed-ratio "-1" is not a number/,
  );
});

Deno.test("args: --no-dht, --no-lsd and --no-port-mapping set their config keys", () => {
  const parsed = parseCommandLine([
    "download",
    "x.torrent",
    "--no-dht",
    "--no-lsd",
    "--no-port-mapping",
  ]);
  assert.ok(parsed.command === "download");
  assert.deepEqual(parsed.overrides, {
    dht: false,
    lsd: false,
    portMapping: "off",
  });
});
