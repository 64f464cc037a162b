import assert from "node:assert/strict";
import {
  applyOverrides,
  BOOLEAN_KEYS,
  type Config,
  ConfigError,
  DEFAULT_CONFIG,
  LIST_KEYS,
  NUMERIC_KEYS,
  parseConfig,
  STRING_KEYS,
} from "../../src/config.ts";

function fails(text: string, message: string | RegExp): void {
  assert.throws(
    () => parseConfig(text, "cfg.json"),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
      if (typeof message === "string") assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}

Deno.test("config: defaults", () => {
  assert.deepEqual({ ...DEFAULT_CONFIG }, {
    downloadDir: "downloads",
    torrentsDir: "torrents",
    onComplete: "",
    logFile: "",
    listenPort: 6881,
    maxPeers: 50,
    maxHalfOpen: 8,
    maxRequestsPerPeer: 250,
    pipelineSeconds: 2,
    maxPieceMemoryMiB: 64,
    connectTimeoutSeconds: 5,
    peerIdleSeconds: 120,
    snubSeconds: 30,
    reconnectBaseSeconds: 15,
    trackerTimeoutSeconds: 15,
    udpTrackerRetries: 2,
    numWant: 80,
    minReannounceSeconds: 30,
    resumeSaveSeconds: 30,
    logIntervalSeconds: 5,
    uploadSlots: 8,
    downloadLimit: 0,
    uploadLimit: 0,
    seedRatio: 0,
    seedMinutes: 0,
    maxActiveDownloads: 3,
    maxActiveSeeds: 1000,
    maxMinutes: 0,
    dht: true,
    dhtBootstrap: [
      "router.bittorrent.com:6881",
      "router.utorrent.com:6881",
      "dht.transmissionbt.com:6881",
      "dht.libtorrent.org:25401",
    ],
    pex: true,
    lsd: true,
    portMapping: "auto",
    gateway: "",
    portMappingLeaseSeconds: 3600,
  });
  assert.ok(Object.isFrozen(DEFAULT_CONFIG));
  assert.deepEqual(parseConfig("{}", "x"), { ...DEFAULT_CONFIG });
  // Every key has a spec (string or numeric), and every default is inside its range.
  const numeric = Object.keys(DEFAULT_CONFIG).filter((k) =>
    !Object.hasOwn(STRING_KEYS, k) && !Object.hasOwn(BOOLEAN_KEYS, k) &&
    !Object.hasOwn(LIST_KEYS, k)
  )
    .sort();
  assert.deepEqual(Object.keys(NUMERIC_KEYS).sort(), numeric);
  for (const [key, spec] of Object.entries(NUMERIC_KEYS)) {
    const v = DEFAULT_CONFIG[key as keyof Config] as number;
    assert.ok(
      v >= spec.min && v <= spec.max,
      `${key} default ${v} out of range`,
    );
    if (spec.integer) assert.ok(Number.isInteger(v), key);
    assert.ok(spec.doc.length > 0, key);
  }
});

Deno.test("config: a file overrides some keys and keeps the rest", () => {
  const c = parseConfig(
    JSON.stringify({
      downloadDir: "/data/torrents",
      listenPort: 0,
      maxPeers: 1000,
      pipelineSeconds: 0.5,
      "// note": "documentation keys are skipped",
      $comment: 12,
    }),
    "cfg.json",
  );
  assert.equal(c.downloadDir, "/data/torrents");
  assert.equal(c.listenPort, 0);
  assert.equal(c.maxPeers, 1000);
  assert.equal(c.pipelineSeconds, 0.5);
  assert.equal(c.maxHalfOpen, DEFAULT_CONFIG.maxHalfOpen);
  assert.equal("// note" in c, false);
  assert.equal("$comment" in c, false);
  // The defaults themselves are untouched.
  assert.equal(DEFAULT_CONFIG.listenPort, 6881);
});

Deno.test("config: invalid JSON and non-object JSON", () => {
  fails("{ listenPort: 1 }", /^cfg\.json: not valid JSON \(.+\)$/);
  fails("", /^cfg\.json: not valid JSON/);
  fails('{"a":1', /^cfg\.json: not valid JSON/);
  for (const text of ["[]", "[1]", "null", "42", '"text"', "true"]) {
    fails(text, "cfg.json: must hold a JSON object");
  }
});

Deno.test("config: unknown keys", () => {
  fails('{"listenport": 1}', 'cfg.json: unknown key "listenport"');
  fails('{"maxpeers": 1}', 'cfg.json: unknown key "maxpeers"');
  fails(
    '{"maxActiveTorrents": 3}',
    'cfg.json: unknown key "maxActiveTorrents" (now maxActiveDownloads; seeding torrents count against maxActiveSeeds)',
  );
  fails('{"": 1}', 'cfg.json: unknown key ""');
});

// BUG (src/config.ts:198): `key in NUMERIC_KEYS` also finds the members
// NUMERIC_KEYS inherits from Object.prototype, so a key like "toString" or
// "constructor" passes as known; its "spec" is a function whose min/max are
// undefined, so every range check is false and the value is copied into the
// config. Object.hasOwn(NUMERIC_KEYS, key) is the fix.
Deno.test("config: keys inherited from Object.prototype are unknown keys", () => {
  for (
    const key of ["toString", "constructor", "hasOwnProperty", "__proto__"]
  ) {
    fails(`{"${key}": 1}`, `cfg.json: unknown key "${key}"`);
  }
});

Deno.test("config: wrong types", () => {
  fails(
    '{"listenPort": "6881"}',
    'cfg.json: listenPort must be a number, not "6881"',
  );
  fails('{"maxPeers": null}', "cfg.json: maxPeers must be a number, not null");
  fails('{"maxPeers": true}', "cfg.json: maxPeers must be a number, not true");
  fails('{"numWant": [1]}', "cfg.json: numWant must be a number, not [1]");
  fails('{"numWant": {}}', "cfg.json: numWant must be a number, not {}");
  fails(
    '{"downloadDir": 5}',
    "cfg.json: downloadDir must be a non-empty string",
  );
  fails(
    '{"downloadDir": ""}',
    "cfg.json: downloadDir must be a non-empty string",
  );
  fails(
    '{"downloadDir": "   "}',
    "cfg.json: downloadDir must be a non-empty string",
  );
  fails(
    '{"downloadDir": null}',
    "cfg.json: downloadDir must be a non-empty string",
  );
});

Deno.test("config: out of range", () => {
  fails(
    '{"listenPort": 65536}',
    "cfg.json: listenPort is 65536, not between 0 and 65535",
  );
  fails(
    '{"listenPort": -1}',
    "cfg.json: listenPort is -1, not between 0 and 65535",
  );
  fails('{"maxPeers": 0}', "cfg.json: maxPeers is 0, not between 1 and 1000");
  fails(
    '{"pipelineSeconds": 0.05}',
    "cfg.json: pipelineSeconds is 0.05, not between 0.1 and 30",
  );
  fails(
    '{"logIntervalSeconds": 1e9}',
    "cfg.json: logIntervalSeconds is 1000000000, not between 0.5 and 3600",
  );
  fails(
    '{"udpTrackerRetries": 9}',
    "cfg.json: udpTrackerRetries is 9, not between 0 and 8",
  );
  // JSON has no Infinity, but 1e400 parses to it.
  fails(
    '{"maxPieceMemoryMiB": 1e400}',
    "cfg.json: maxPieceMemoryMiB must be a number, not null",
  );
  // Bounds are inclusive.
  const c = parseConfig(
    '{"listenPort": 65535, "udpTrackerRetries": 0, "pipelineSeconds": 30}',
    "x",
  );
  assert.equal(c.listenPort, 65535);
  assert.equal(c.udpTrackerRetries, 0);
  assert.equal(c.pipelineSeconds, 30);
});

Deno.test("config: integer keys reject fractions, others accept them", () => {
  const integerKeys = Object.entries(NUMERIC_KEYS).filter(([, s]) => s.integer)
    .map(([k]) => k);
  assert.deepEqual(integerKeys.sort(), [
    "downloadLimit",
    "listenPort",
    "maxActiveDownloads",
    "maxActiveSeeds",
    "maxHalfOpen",
    "maxPeers",
    "maxRequestsPerPeer",
    "numWant",
    "portMappingLeaseSeconds",
    "udpTrackerRetries",
    "uploadLimit",
    "uploadSlots",
  ]);
  for (const key of integerKeys) {
    fails(
      `{"${key}": 1.5}`,
      `cfg.json: ${key} must be a whole number, not 1.5`,
    );
  }
  // 2.0 is an integer in JSON terms.
  assert.equal(parseConfig('{"maxPeers": 2.0}', "x").maxPeers, 2);
  assert.equal(parseConfig('{"snubSeconds": 1.5}', "x").snubSeconds, 1.5);
  assert.equal(
    parseConfig('{"maxPieceMemoryMiB": 1.5}', "x").maxPieceMemoryMiB,
    1.5,
  );
});

Deno.test("config: applyOverrides for flags", () => {
  const base = parseConfig(
    '{"listenPort": 7000, "downloadDir": "a"}',
    "cfg.json",
  );
  const c = applyOverrides(
    base,
    { downloadDir: "b", listenPort: 7001 },
    "flags",
  );
  assert.equal(c.downloadDir, "b");
  assert.equal(c.listenPort, 7001);
  assert.equal(c.maxPeers, DEFAULT_CONFIG.maxPeers);
  // The base is not changed.
  assert.equal(base.listenPort, 7000);
  assert.equal(base.downloadDir, "a");
  assert.deepEqual(applyOverrides(base, {}, "flags"), base);
  assert.throws(
    () => applyOverrides(base, { listenPort: 70000 }, "--port"),
    /^ConfigError: --port: listenPort is 70000, not between 0 and 65535$/,
  );
  assert.throws(
    () => applyOverrides(base, { listenPort: NaN }, "--port"),
    /--port: listenPort must be a number, not null/,
  );
  assert.throws(
    () => applyOverrides(base, { nope: 1 }, "flags"),
    /flags: unknown key "nope"/,
  );
});

Deno.test("config: on/off keys, the bootstrap list and the port-mapping choice", () => {
  const c = parseConfig(
    JSON.stringify({
      dht: false,
      lsd: false,
      pex: false,
      dhtBootstrap: ["127.0.0.1:6881", "[::1]:7000", "router.example:1"],
      portMapping: "natpmp",
      gateway: "192.168.1.1",
    }),
    "cfg.json",
  );
  assert.equal(c.dht, false);
  assert.equal(c.lsd, false);
  assert.equal(c.pex, false);
  assert.deepEqual(c.dhtBootstrap, [
    "127.0.0.1:6881",
    "[::1]:7000",
    "router.example:1",
  ]);
  assert.equal(c.portMapping, "natpmp");
  assert.equal(c.gateway, "192.168.1.1");
  fails('{"dht": 1}', "cfg.json: dht must be true or false, not 1");
  fails('{"lsd": "no"}', 'cfg.json: lsd must be true or false, not "no"');
  fails(
    '{"dhtBootstrap": "a:1"}',
    'cfg.json: dhtBootstrap must be a list of "HOST:PORT" strings',
  );
  fails(
    '{"dhtBootstrap": ["a:1", "b"]}',
    'cfg.json: dhtBootstrap entry "b" is not HOST:PORT',
  );
  fails(
    '{"dhtBootstrap": ["a:0"]}',
    'cfg.json: dhtBootstrap entry "a:0" is not HOST:PORT',
  );
  fails(
    '{"dhtBootstrap": [6881]}',
    "cfg.json: dhtBootstrap entry 6881 is not HOST:PORT",
  );
  fails(
    '{"portMapping": "yes"}',
    'cfg.json: portMapping must be one of "auto", "pcp", "natpmp", "upnp", "off", not "yes"',
  );
  // The defaults' list is not shared with a parsed config.
  assert.notEqual(c.dhtBootstrap, DEFAULT_CONFIG.dhtBootstrap);
});
