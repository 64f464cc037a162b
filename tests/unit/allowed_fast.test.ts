import assert from "node:assert/strict";
import { allowedFastSet } from "../../src/wire/allowed_fast.ts";

const infoHash = new Uint8Array(20).fill(0xaa);

Deno.test("allowed fast set matches BEP 6's example", () => {
  assert.deepEqual(allowedFastSet("80.4.4.200", infoHash, 1313, 7), [
    1059,
    431,
    808,
    1217,
    287,
    376,
    1188,
  ]);
  assert.deepEqual(allowedFastSet("80.4.4.200", infoHash, 1313, 9), [
    1059,
    431,
    808,
    1217,
    287,
    376,
    1188,
    353,
    508,
  ]);
});

Deno.test("allowed fast set: same /24 same set, never more than the piece count, none for IPv6", () => {
  assert.deepEqual(
    allowedFastSet("80.4.4.1", infoHash, 1313),
    allowedFastSet("80.4.4.200", infoHash, 1313),
  );
  assert.deepEqual(allowedFastSet("10.0.0.1", infoHash, 3).sort(), [0, 1, 2]);
  assert.deepEqual(allowedFastSet("::1", infoHash, 100), []);
});
