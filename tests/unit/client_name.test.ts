import assert from "node:assert/strict";
import { clientName } from "../../src/peer/client_name.ts";

/** A 20-byte peer id: the prefix, then filler as real clients put random bytes there. */
function peerId(prefix: string, filler = "x"): Uint8Array {
  const text = prefix + filler.repeat(20 - prefix.length);
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

Deno.test("clientName: Azureus style, versions read as libtorrent reads them", () => {
  // version numbers checked against libtorrent 2.0.8's identify_client()
  assert.equal(
    clientName(peerId("-LT2080-")),
    "libtorrent (Rasterbar) 2.0.8",
  );
  assert.equal(
    clientName(peerId("-LT12A0-")),
    "libtorrent (Rasterbar) 1.2.10",
  );
  assert.equal(clientName(peerId("-lt0D60-")), "libTorrent (rakshasa) 0.13.6");
  assert.equal(clientName(peerId("-qB4520-")), "qBittorrent 4.5.2");
  assert.equal(clientName(peerId("-TR3000-")), "Transmission 3.0.0");
  assert.equal(clientName(peerId("-AZ5770-")), "Vuze 5.7.7");
  assert.equal(clientName(peerId("-UT355W-")), "µTorrent 3.5.5.32");
  assert.equal(clientName(peerId("-BI3611-")), "BiglyBT 3.6.1.1");
  assert.equal(clientName(peerId("-TD0100-")), "btclient 0.1.0");
});

Deno.test("clientName: aria2, Mainline and Shadow styles", () => {
  assert.equal(clientName(peerId("A2-1-36-0-")), "aria2 1.36.0");
  assert.equal(clientName(peerId("M7-4-3--")), "Mainline 7.4.3");
  assert.equal(clientName(peerId("M4-20-8-")), "Mainline 4.20.8");
  assert.equal(clientName(peerId("S58B----")), "Shadow 5.8.11");
  assert.equal(clientName(peerId("T03I--00")), "BitTornado 0.3.18");
});

Deno.test("clientName: unknown ids keep their printable prefix", () => {
  assert.equal(clientName(peerId("-XY1234-")), "unknown (-XY1234-)");
  // an Azureus-style frame whose version is not made of version characters
  assert.equal(clientName(peerId("-LT20\x0180-")), "unknown (-LT20)");
  assert.equal(clientName(new Uint8Array(20)), "unknown ()");
  assert.equal(clientName(new Uint8Array(0)), "unknown ()");
  assert.equal(clientName(peerId("-FK0001-")), "unknown (-FK0001-)");
});

Deno.test("clientName: never throws, on any bytes of any length", () => {
  const prefixes = ["-LT2080-", "A2-1-36-0-", "M7-4-3--", "S58B----", ""];
  for (let round = 0; round < 20_000; round++) {
    const bytes = crypto.getRandomValues(new Uint8Array(round % 41));
    // half the rounds damage a well-formed prefix instead of being all noise
    if (round % 2 === 0) {
      const prefix = prefixes[round % prefixes.length];
      const keep = Math.min(bytes.length, prefix.length);
      for (let i = 0; i < keep; i++) {
        if (bytes[i] % 4 !== 0) bytes[i] = prefix.charCodeAt(i);
      }
    }
    const name = clientName(bytes);
    assert.equal(typeof name, "string");
    assert.ok(name.length > 0);
  }
});
