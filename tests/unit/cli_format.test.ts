import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatRate,
} from "../../src/cli/format.ts";
import { describe } from "../../src/cli/progress.ts";
import type { TorrentStats } from "../../src/torrent.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

Deno.test("formatBytes", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1), "1 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1024), "1.0 KiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(10 * MiB), "10.0 MiB");
  assert.equal(formatBytes(1.25 * GiB), "1.3 GiB");
  assert.equal(formatBytes(3 * TiB), "3.0 TiB");
  assert.equal(
    formatBytes(2048 * TiB),
    "2048.0 TiB",
    "TiB is the largest unit",
  );
});

// BUG (src/cli/format.ts:10): the unit is chosen before rounding, so a value
// just under a unit boundary prints as "1024.0 KiB" instead of "1.0 MiB"
// (1048575 / 1024 = 1023.999 -> toFixed(1) = "1024.0"). Round first (or
// compare n against 1023.95 when u > 0).
Deno.test("formatBytes never shows 1024.0 of a unit", () => {
  assert.equal(formatBytes(MiB - 1), "1.0 MiB");
  assert.equal(formatBytes(GiB - 1), "1.0 GiB");
});

Deno.test("formatRate", () => {
  assert.equal(formatRate(0), "0 B/s");
  assert.equal(formatRate(512.4), "512 B/s");
  assert.equal(formatRate(1023.6), "1.0 KiB/s");
  assert.equal(formatRate(5.5 * MiB), "5.5 MiB/s");
});

Deno.test("formatDuration", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(0.4), "0s");
  assert.equal(formatDuration(59), "59s");
  assert.equal(formatDuration(59.6), "1m00s");
  assert.equal(formatDuration(60), "1m00s");
  assert.equal(formatDuration(61), "1m01s");
  assert.equal(formatDuration(3599), "59m59s");
  assert.equal(formatDuration(3600), "1h00m");
  assert.equal(formatDuration(3 * 3600 + 7 * 60 + 59), "3h07m");
  assert.equal(formatDuration(99 * 3600 + 59 * 60), "99h59m");
  assert.equal(formatDuration(100 * 3600), "4d");
  assert.equal(formatDuration(30 * 86400), "30d");
  assert.equal(formatDuration(Infinity), "--");
  assert.equal(formatDuration(NaN), "--");
});

function stats(over: Partial<TorrentStats> = {}): TorrentStats {
  return {
    piecesDone: 0,
    pieceCount: 100,
    bytesDone: 0,
    totalBytes: 100 * MiB,
    downloadRate: 0,
    uploadRate: 0,
    peers: 0,
    knownPeers: 0,
    wastedBytes: 0,
    internalErrors: 0,
    ...over,
  };
}

Deno.test("describe: the whole line", () => {
  assert.equal(
    describe(
      stats({
        bytesDone: 25 * MiB,
        downloadRate: 5 * MiB,
        uploadRate: 512,
        peers: 3,
        knownPeers: 40,
      }),
      200,
    ),
    "25.0% 25.0 MiB/100.0 MiB  down 5.0 MiB/s  up 512 B/s  peers 3/40  ETA 15s",
  );
});

Deno.test("describe: ETA is -- when the rate is 0, 0s when done", () => {
  const stalled = describe(stats({ bytesDone: 10 * MiB }), 200);
  assert.match(stalled, /ETA --$/);
  assert.match(stalled, /^10\.0% /);
  const done = describe(stats({ bytesDone: 100 * MiB }), 200);
  assert.match(done, /^100\.0% 100\.0 MiB\/100\.0 MiB /);
  assert.match(done, /ETA 0s$/);
  // A long ETA.
  const slow = describe(stats({ downloadRate: 1024 }), 200);
  assert.match(slow, /ETA 28h26m$/, slow); // 102400 s
  const slower = describe(stats({ downloadRate: 100 }), 200);
  assert.match(slower, /ETA 12d$/, slower); // 1048576 s
});

Deno.test("describe: a torrent of zero bytes is 100%", () => {
  assert.match(
    describe(stats({ totalBytes: 0 }), 200),
    /^100\.0% 0 B\/0 B .*ETA 0s$/,
  );
});

Deno.test("describe: truncated to the width", () => {
  const full = describe(stats({ bytesDone: MiB, downloadRate: MiB }), 1000);
  assert.ok(full.length > 40);
  for (const width of [0, 1, 10, 40, full.length - 1]) {
    const line = describe(stats({ bytesDone: MiB, downloadRate: MiB }), width);
    assert.equal(line.length, width);
    assert.equal(line, full.slice(0, width));
  }
  assert.equal(
    describe(stats({ bytesDone: MiB, downloadRate: MiB }), full.length),
    full,
  );
});
