// Maps the torrent's byte stream onto its files: a piece may start in one
// file and end in another, and padding files (BEP 47) hold zeros that never
// touch the disk.

import type { Metainfo } from "../metainfo/metainfo.ts";

/** One run of a piece that lies inside one file. */
export interface FileSpan {
  file: number;
  /** Offset inside the file. */
  fileOffset: number;
  /** Offset inside the piece. */
  pieceOffset: number;
  length: number;
}

export function pieceSpans(meta: Metainfo, piece: number): FileSpan[] {
  const start = piece * meta.pieceLength;
  const end = Math.min(start + meta.pieceLength, meta.totalLength);
  const spans: FileSpan[] = [];
  // Binary search for the first file that ends after `start`.
  let lo = 0;
  let hi = meta.files.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const f = meta.files[mid];
    if (f.offset + f.length <= start) lo = mid + 1;
    else hi = mid;
  }
  for (let i = lo; i < meta.files.length; i++) {
    const f = meta.files[i];
    if (f.offset >= end) break;
    const from = Math.max(start, f.offset);
    const to = Math.min(end, f.offset + f.length);
    if (to > from) {
      spans.push({
        file: i,
        fileOffset: from - f.offset,
        pieceOffset: from - start,
        length: to - from,
      });
    }
  }
  return spans;
}
