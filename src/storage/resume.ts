// Which pieces are already on disk. A resume file records the verified
// pieces together with each file's size and mtime; when every file still
// matches, it is trusted and nothing is hashed. Otherwise (no file, a crash
// after the last save, files touched since) every piece whose bytes are on
// disk is read and hashed again.
//
// Durability without fsync on the hot path: written data that is not yet on
// the disk lives in the page cache, which only a kernel crash or power loss
// can lose, and either means a reboot. So a record saved without syncing the
// data carries the kernel's boot id and is trusted only within that boot;
// after a reboot the data is checked again. Where there is no boot id, the
// data is synced before every save.

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Metainfo } from "../metainfo/metainfo.ts";
import { Bitfield } from "../pieces/bitfield.ts";
import type { PieceStore } from "./store.ts";

interface ResumeRecord {
  version: 1;
  infoHash: string;
  pieceCount: number;
  /** Verified pieces, wire layout, base64. */
  pieces: string;
  files: ({ size: number; mtimeMs: number } | null)[];
  /** The boot the record was saved in, when the data was not synced first. */
  unsyncedBootId?: string;
}

export interface StartState {
  have: Bitfield;
  /** True when the resume file was trusted without hashing. */
  fromResume: boolean;
}

/** Where a torrent's resume file lives inside the download folder. */
export function resumePath(downloadDir: string, meta: Metainfo): string {
  return path.join(downloadDir, ".btclient", `${meta.infoHashHex}.resume.json`);
}

export async function loadOrCheck(
  store: PieceStore,
  file: string,
  onProgress: (checked: number, total: number) => void,
): Promise<StartState> {
  const meta = store.meta;
  const saved = readRecord(file, meta);
  const durable = saved !== null &&
    (saved.unsyncedBootId === undefined ||
      saved.unsyncedBootId === currentBootId());
  if (saved && durable && sameFiles(saved.files, store.fileStats())) {
    const bits = new Uint8Array(Buffer.from(saved.pieces, "base64"));
    const have = Bitfield.fromWire(bits, meta.pieceCount);
    if (have) return { have, fromResume: true };
  }
  return { have: await recheck(store, onProgress), fromResume: false };
}

/** Records the verified pieces (syncing the data first where no boot id exists). */
export function saveResume(
  store: PieceStore,
  file: string,
  have: Bitfield,
): void {
  const bootId = currentBootId();
  if (bootId === undefined) store.sync();
  const record: ResumeRecord = {
    unsyncedBootId: bootId,
    version: 1,
    infoHash: store.meta.infoHashHex,
    pieceCount: store.meta.pieceCount,
    pieces: Buffer.from(have.bytes).toString("base64"),
    files: store.fileStats(),
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Write then rename, so a crash never leaves a half-written resume file.
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(record));
  fs.renameSync(tmp, file);
}

let bootIdCache: string | undefined | null = null;

/** Linux's id of the running boot, or undefined where the system has none. */
function currentBootId(): string | undefined {
  if (bootIdCache === null) {
    try {
      bootIdCache = fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8")
        .trim();
    } catch {
      bootIdCache = undefined;
    }
  }
  return bootIdCache;
}

async function recheck(
  store: PieceStore,
  onProgress: (checked: number, total: number) => void,
): Promise<Bitfield> {
  const meta = store.meta;
  const have = new Bitfield(meta.pieceCount);
  const buffer = new Uint8Array(meta.pieceLength);
  const stats = store.fileStats();
  if (stats.every((s, i) => s === null || meta.files[i].padding)) return have;
  let lastYield = performance.now();
  for (let piece = 0; piece < meta.pieceCount; piece++) {
    const size = piece === meta.pieceCount - 1
      ? meta.totalLength - piece * meta.pieceLength
      : meta.pieceLength;
    const data = buffer.subarray(0, size);
    if (store.readPiece(piece, data)) {
      const digest = createHash("sha1").update(data).digest();
      if (
        digest.equals(meta.pieceHashes.subarray(piece * 20, piece * 20 + 20))
      ) have.set(piece);
    }
    if (performance.now() - lastYield > 200) {
      // Let signals and progress output run during a long check.
      onProgress(piece + 1, meta.pieceCount);
      await new Promise((r) => setTimeout(r, 0));
      lastYield = performance.now();
    }
  }
  return have;
}

function readRecord(file: string, meta: Metainfo): ResumeRecord | null {
  try {
    const record = JSON.parse(fs.readFileSync(file, "utf8")) as ResumeRecord;
    if (
      record.version === 1 && record.infoHash === meta.infoHashHex &&
      record.pieceCount === meta.pieceCount &&
      typeof record.pieces === "string" &&
      Array.isArray(record.files) && record.files.length === meta.files.length
    ) return record;
  } catch { /* missing or unreadable: the data is checked instead */ }
  return null;
}

function sameFiles(
  saved: ResumeRecord["files"],
  now: ReturnType<PieceStore["fileStats"]>,
): boolean {
  return saved.every((s, i) => {
    const n = now[i];
    if (s === null || n === null) return s === n;
    return s.size === n.size && s.mtimeMs === n.mtimeMs;
  });
}
