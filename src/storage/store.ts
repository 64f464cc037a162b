// Positional file I/O for one torrent. Verified pieces are written with
// pwrite at their offsets (node:fs: Deno.FsFile has no positional I/O), and
// pieces are read back the same way for checks and uploads. Files open lazily
// and stay open until close().

import * as fs from "node:fs";
import * as path from "node:path";
import { type Metainfo, TorrentFileError } from "../metainfo/metainfo.ts";
import { byteLength, PATH_MAX_BYTES, quoted } from "../metainfo/file_names.ts";
import { pieceSpans } from "./layout.ts";

/** A disk problem that stops the torrent; the message names the file. */
export class StorageError extends Error {
  override name = "StorageError";
}

export class PieceStore {
  /** Absolute path of each file of the torrent. */
  readonly paths: string[];
  private fds: (number | undefined)[];
  /** Whether each open fd was opened for writing. */
  private writable: boolean[] = [];

  /**
   * Maps the files into `root`; a path too long for Linux in that folder is
   * bad input (TorrentFileError), found before anything is written.
   */
  constructor(readonly meta: Metainfo, readonly root: string) {
    const base = meta.multiFile ? path.join(root, meta.name) : root;
    this.paths = meta.files.map((f) => path.join(base, ...f.path));
    this.paths.forEach((p, i) => {
      const bytes = byteLength(p);
      if (meta.files[i].padding || bytes <= PATH_MAX_BYTES) return;
      const entry = meta.multiFile ? `info.files[${i}]` : "info.name";
      throw new TorrentFileError(
        `${entry} ${quoted(path.relative(root, p))} would be a ${bytes}-byte ` +
          `path in ${root}, more than the ${PATH_MAX_BYTES} bytes Linux allows`,
      );
    });
    this.fds = new Array(meta.files.length);
  }

  /** Creates folders and empty files, so a finished download has every file. */
  prepare(): void {
    this.meta.files.forEach((f, i) => {
      if (f.padding) return;
      const p = this.paths[i];
      this.guard(p, () => {
        fs.mkdirSync(path.dirname(p), { recursive: true });
        if (f.length === 0) fs.closeSync(fs.openSync(p, "a"));
      });
    });
  }

  /** Writes a verified piece at its offsets across file boundaries. */
  writePiece(piece: number, data: Uint8Array): void {
    for (const span of pieceSpans(this.meta, piece)) {
      if (this.meta.files[span.file].padding) continue;
      const fd = this.open(span.file, true)!;
      const p = this.paths[span.file];
      this.guard(p, () => {
        let done = 0;
        while (done < span.length) {
          done += fs.writeSync(
            fd,
            data,
            span.pieceOffset + done,
            span.length - done,
            span.fileOffset + done,
          );
        }
      });
    }
  }

  /**
   * Reads a piece into `out`; false when some file is missing or too short
   * (the piece cannot be on disk then).
   */
  readPiece(piece: number, out: Uint8Array): boolean {
    return this.readBlock(piece, 0, out);
  }

  /** Reads `out.length` bytes of a piece from `begin` (a block for upload). */
  readBlock(piece: number, begin: number, out: Uint8Array): boolean {
    const start = piece * this.meta.pieceLength + begin;
    const end = start + out.length;
    for (const span of pieceSpans(this.meta, piece)) {
      const fileStart = this.meta.files[span.file].offset + span.fileOffset;
      const from = Math.max(start, fileStart);
      const to = Math.min(end, fileStart + span.length);
      if (to <= from) continue;
      const target = out.subarray(from - start, to - start);
      if (this.meta.files[span.file].padding) {
        target.fill(0);
        continue;
      }
      const fd = this.open(span.file, false);
      if (fd === undefined) return false;
      const got = this.guard(this.paths[span.file], () => {
        let done = 0;
        while (done < target.length) {
          const n = fs.readSync(
            fd,
            target,
            done,
            target.length - done,
            from - this.meta.files[span.file].offset + done,
          );
          if (n === 0) break;
          done += n;
        }
        return done;
      });
      if (got < target.length) return false;
    }
    return true;
  }

  /** Size and mtime of each file on disk, or null for a missing one. */
  fileStats(): ({ size: number; mtimeMs: number } | null)[] {
    return this.paths.map((p, i) => {
      if (this.meta.files[i].padding) return { size: 0, mtimeMs: 0 };
      try {
        const st = fs.statSync(p);
        return { size: st.size, mtimeMs: st.mtimeMs };
      } catch {
        return null;
      }
    });
  }

  /** Flushes written data to disk so a crash after this loses nothing verified. */
  sync(): void {
    this.fds.forEach((fd, i) => {
      if (fd !== undefined) {
        this.guard(this.paths[i], () => fs.fdatasyncSync(fd));
      }
    });
  }

  close(): void {
    this.fds.forEach((fd, i) => {
      if (fd !== undefined) {
        try {
          fs.closeSync(fd);
        } catch { /* closing twice or a vanished fd: nothing to save */ }
      }
      this.fds[i] = undefined;
    });
  }

  /** Opens a file; for reading, a missing file gives undefined. */
  private open(file: number, forWrite: boolean): number | undefined {
    const cached = this.fds[file];
    if (cached !== undefined && (this.writable[file] || !forWrite)) {
      return cached;
    }
    const p = this.paths[file];
    if (!forWrite && !fs.existsSync(p)) return undefined;
    if (cached !== undefined) fs.closeSync(cached);
    const { O_RDWR, O_CREAT, O_RDONLY } = fs.constants;
    const { fd, writable } = this.guard(p, () => {
      fs.mkdirSync(path.dirname(p), { recursive: true });
      try {
        // O_RDWR|O_CREAT without O_TRUNC: data already there is kept.
        return { fd: fs.openSync(p, O_RDWR | O_CREAT, 0o644), writable: true };
      } catch (e) {
        // A read-only file can still be checked (and later seeded).
        if (forWrite) throw e;
        return { fd: fs.openSync(p, O_RDONLY), writable: false };
      }
    });
    this.fds[file] = fd;
    this.writable[file] = writable;
    return fd;
  }

  private guard<T>(file: string, action: () => T): T {
    try {
      return action();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new StorageError(`cannot use ${file}: ${why}`);
    }
  }
}
