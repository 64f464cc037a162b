import assert from "node:assert/strict";
import {
  isMagnet,
  MagnetError,
  magnetUri,
  parseMagnet,
  readMagnetFile,
} from "../../src/metainfo/magnet.ts";

// SHA-1 of "magnet test", written both ways (checked with Python's
// hashlib and base64.b32encode).
const HEX = "e8523f31975ed2ad0415946e553aa6efcecb80c5";
const BASE32 = "5BJD6MMXL3JK2BAVSRXFKOVG57HMXAGF";
const V2 = "1220" + "ab".repeat(32);

function rejects(uri: string, pattern: RegExp): void {
  assert.throws(() => parseMagnet(uri), (e: unknown) => {
    assert.ok(e instanceof MagnetError, `not a MagnetError: ${e}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "message is one line");
    return true;
  });
}

Deno.test("magnet: a bare hex link gives the info-hash and nothing else", () => {
  const m = parseMagnet(`magnet:?xt=urn:btih:${HEX}`);
  assert.equal(m.infoHashHex, HEX);
  assert.equal(m.infoHash.length, 20);
  assert.equal(m.infoHash[0], 0xe8);
  assert.equal(m.infoHash[19], 0xc5);
  assert.equal(m.name, null);
  assert.deepEqual(m.trackers, []);
  assert.deepEqual(m.peers, []);
  assert.deepEqual(m.webSeeds, []);
});

Deno.test("magnet: hex and base32 of the same hash agree, in either case", () => {
  const fromHex = parseMagnet(`magnet:?xt=urn:btih:${HEX.toUpperCase()}`);
  const fromBase32 = parseMagnet(`magnet:?xt=urn:btih:${BASE32}`);
  const fromLower = parseMagnet(`magnet:?xt=urn:btih:${BASE32.toLowerCase()}`);
  assert.equal(fromHex.infoHashHex, HEX);
  assert.equal(fromBase32.infoHashHex, HEX);
  assert.equal(fromLower.infoHashHex, HEX);
  assert.deepEqual(fromBase32.infoHash, fromHex.infoHash);
});

Deno.test("magnet: dn, every tr as its own tier, x.pe and ws", () => {
  const m = parseMagnet(
    `magnet:?xt=urn:btih:${HEX}&dn=My+Film%20%282024%29.mkv` +
      "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce" +
      "&tr=udp://127.0.0.1:6969/announce" +
      "&tr=wss%3A%2F%2Ftracker.example%2Fws" + // WebTorrent: not ours
      "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce" + // duplicate
      "&x.pe=127.0.0.1:6881&x.pe=%5B2001:DB8::1%5D:6882&x.pe=peer.lan:51413" +
      "&ws=http%3A%2F%2F127.0.0.1%2Ffiles%2F&ws=ftp://old.example/x" +
      "&xl=12345&so=0-3&kt=film",
  );
  assert.equal(m.name, "My Film (2024).mkv");
  assert.deepEqual(m.trackers, [
    ["http://127.0.0.1:6969/announce"],
    ["udp://127.0.0.1:6969/announce"],
  ]);
  assert.deepEqual(m.peers, [
    { host: "127.0.0.1", port: 6881 },
    { host: "2001:db8::1", port: 6882 },
    { host: "peer.lan", port: 51413 },
  ]);
  assert.deepEqual(m.webSeeds, ["http://127.0.0.1/files/"]);
});

Deno.test("magnet: parameter order does not matter and numbered keys count", () => {
  const m = parseMagnet(
    `magnet:?tr.1=udp://127.0.0.1:1/a&dn.1=x&XT.1=urn:btih:${HEX}` +
      "&tr.2=udp://127.0.0.1:2/a&x.pe.1=127.0.0.1:9",
  );
  assert.equal(m.infoHashHex, HEX);
  assert.equal(m.name, "x");
  assert.deepEqual(m.trackers, [
    ["udp://127.0.0.1:1/a"],
    ["udp://127.0.0.1:2/a"],
  ]);
  assert.deepEqual(m.peers, [{ host: "127.0.0.1", port: 9 }]);
});

Deno.test("magnet: hybrid v1+v2 link uses the btih; repeated equal xt is fine", () => {
  const m = parseMagnet(
    `magnet:?xt=urn:btmh:${V2}&xt=urn:btih:${HEX}&xt=urn:btih:${BASE32}`,
  );
  assert.equal(m.infoHashHex, HEX);
});

Deno.test("magnet: surrounding whitespace, empty parts, a fragment, v4-mapped peer", () => {
  const m = parseMagnet(
    `  magnet:?&&xt=urn:btih:${HEX}&&dn=&x.pe=[::ffff:127.0.0.1]:7#frag \n`,
  );
  assert.equal(m.infoHashHex, HEX);
  assert.equal(m.name, null);
  assert.deepEqual(m.peers, [{ host: "127.0.0.1", port: 7 }]);
});

Deno.test("magnet: malformed links are refused with a one-line reason", () => {
  rejects("", /not a magnet link/);
  rejects("http://example.com/a.torrent", /not a magnet link/);
  rejects("magnet:xt=urn:btih:" + HEX, /not a magnet link/);
  rejects("magnet:?dn=name&tr=udp://127.0.0.1:1/a", /no xt/);
  rejects("magnet:?xt=urn:sha1:" + BASE32, /not a BitTorrent info-hash/);
  rejects("magnet:?xt=urn:btmh:" + V2, /v2-only.*btih/);
  rejects("magnet:?xt=urn:btih:" + HEX.slice(1), /39 characters/);
  rejects("magnet:?xt=urn:btih:", /0 characters/);
  rejects("magnet:?xt=urn:btih:" + HEX.slice(1) + "g", /not 40 hex digits/);
  rejects("magnet:?xt=urn:btih:" + BASE32.slice(1) + "1", /not base32.*"1"/);
  rejects(
    `magnet:?xt.1=urn:btih:${HEX}&xt.2=urn:btih:${"0".repeat(40)}`,
    /2 different info-hashes/,
  );
  rejects(`magnet:?xt=urn:btih:${HEX}&dn=%E0%A4%A`, /percent-encoding in dn/);
  rejects(`magnet:?xt=urn:btih:${HEX}&dn=%FF`, /percent-encoding in dn/);
});

Deno.test("magnet: a bad x.pe is refused", () => {
  const base = `magnet:?xt=urn:btih:${HEX}&x.pe=`;
  rejects(base + "127.0.0.1", /x\.pe "127\.0\.0\.1"/);
  rejects(base + "127.0.0.1:0", /port 1-65535/);
  rejects(base + "127.0.0.1:65536", /port 1-65535/);
  rejects(base + "2001:db8::1:80", /x\.pe/); // IPv6 needs brackets
  rejects(base + "[zz::1]:80", /bad IPv6/);
  rejects(base + "[127.0.0.1]:80", /bad IPv6/);
  rejects(base + "300.1.1.1:80", /bad host/);
  rejects(base + "bad_host!:80", /bad host/);
  rejects(base, /x\.pe ""/);
});

Deno.test("magnetUri round-trips through parseMagnet", () => {
  const trackers = [["http://127.0.0.1:1/announce?k=a&b"], [
    "udp://127.0.0.1:2",
  ]];
  const uri = magnetUri(HEX.toUpperCase(), "a & b + c/ü.bin", trackers);
  assert.ok(uri.startsWith(`magnet:?xt=urn:btih:${HEX}&dn=`));
  const m = parseMagnet(uri);
  assert.equal(m.infoHashHex, HEX);
  assert.equal(m.name, "a & b + c/ü.bin");
  assert.deepEqual(m.trackers, trackers);
  assert.equal(magnetUri(HEX, null), `magnet:?xt=urn:btih:${HEX}`);
  assert.deepEqual(
    parseMagnet(magnetUri(HEX, null, ["udp://127.0.0.1:3"])).trackers,
    [["udp://127.0.0.1:3"]],
  );
});

Deno.test("isMagnet tells links from paths", () => {
  assert.ok(isMagnet(`magnet:?xt=urn:btih:${HEX}`));
  assert.ok(isMagnet(" MAGNET:?xt=x"));
  assert.ok(!isMagnet("magnet.torrent"));
  assert.ok(!isMagnet("torrents/a.magnet"));
  assert.ok(!isMagnet("magnet:"));
});

Deno.test("readMagnetFile: first non-empty, non-comment line; errors name the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/good.magnet`;
    await Deno.writeTextFile(
      good,
      `\uFEFF# saved from a web page\n\n  magnet:?xt=urn:btih:${BASE32}&dn=x\r\n` +
        "magnet:?xt=urn:btih:" + "0".repeat(40) + "\n",
    );
    const m = await readMagnetFile(good);
    assert.equal(m.infoHashHex, HEX);
    assert.equal(m.name, "x");

    const empty = `${dir}/empty.magnet`;
    await Deno.writeTextFile(empty, "# nothing\n\n   \n");
    await assert.rejects(
      readMagnetFile(empty),
      (e: unknown) =>
        e instanceof MagnetError &&
        e.message === `${empty}: holds no magnet link`,
    );

    const bad = `${dir}/bad.magnet`;
    await Deno.writeTextFile(bad, "magnet:?dn=only-a-name\n");
    await assert.rejects(
      readMagnetFile(bad),
      (e: unknown) =>
        e instanceof MagnetError && e.message.startsWith(`${bad}: `) &&
        /no xt/.test(e.message),
    );

    const missing = `${dir}/missing.magnet`;
    await assert.rejects(
      readMagnetFile(missing),
      (e: unknown) =>
        e instanceof MagnetError &&
        e.message.startsWith(`${missing}: cannot read`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
