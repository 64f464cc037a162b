// The names a torrent's files get on disk. A torrent may hold names no Linux
// file system accepts: longer than 255 bytes (ext4's NAME_MAX counts UTF-8
// bytes, not characters), or with a path separator or a control character
// inside. They are mapped the way libtorrent 2.0 maps them on Linux
// (sanitize_append_path_element and resolve_duplicate_filenames in its
// torrent_info.cpp), so that a folder a libtorrent-based client downloaded is
// found by ours, and the reverse. The mapping depends on the info dictionary
// alone: every run, and so a resumed one, finds the same files; the info-hash
// is the hash of the raw bytes and never sees these names.

/** Linux PATH_MAX (4096) less its terminating NUL: the longest path open() takes. */
export const PATH_MAX_BYTES = 4095;
/** Linux NAME_MAX: the most bytes in one file or folder name. */
const NAME_MAX_BYTES = 255;
/** A name is cut once this many bytes are kept (libtorrent's limit, leaving room below 255). */
const CUT_AT_BYTES = 240;
/** After a cut, an extension is kept when its dot is among the name's last 9 bytes (as libtorrent). */
const EXTENSION_WINDOW_BYTES = 9;
/** Marks that reverse the writing direction, which can disguise an extension ("txt.exe" shown as "exe.txt"); libtorrent drops them. */
const DIRECTION_MARKS = new Set([
  0x200e,
  0x200f,
  0x202a,
  0x202b,
  0x202c,
  0x202d,
  0x202e,
]);
const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const DOT = 0x2e;

const utf8 = new TextEncoder();

export const byteLength = (text: string): number => utf8.encode(text).length;

/**
 * One file or folder name as it is written on disk: path separators and
 * direction marks dropped, control characters made "_", and a name of 240
 * bytes or more cut at a character boundary, keeping a short extension. The
 * result is at most 252 bytes; it may be "", "." or "..", which the caller
 * refuses.
 */
export function diskName(name: string): string {
  const encoded = utf8.encode(name);
  const chars: { text: string; code: number; start: number }[] = [];
  let start = 0;
  for (const text of name) {
    const code = text.codePointAt(0)!;
    chars.push({ text, code, start });
    start += utf8Length(code);
  }
  let out = "";
  let kept = 0;
  let cut = false;
  for (let i = 0; i < chars.length; i++) {
    const { text, code, start } = chars[i];
    if (code === SLASH || code === BACKSLASH || DIRECTION_MARKS.has(code)) {
      continue;
    }
    const shown = code < 0x20 ? "_" : text;
    out += shown;
    kept += utf8Length(shown.codePointAt(0)!);
    if (kept < CUT_AT_BYTES || cut) continue;
    cut = true;
    // The name's last dot starts an extension when it lies after this
    // character and within the last 9 bytes; without one the cut is final.
    const dot = encoded.lastIndexOf(DOT);
    const last = encoded.length - EXTENSION_WINDOW_BYTES;
    if (dot <= start || dot < last) break;
    // Skip to the dot (an ASCII byte, so a character's start).
    i = chars.findIndex((c) => c.start === dot) - 1;
  }
  return out;
}

/**
 * Renames files whose on-disk path an earlier file or any folder of the
 * torrent already has: "name.1.ext", "name.2.ext", ... Names are compared
 * ignoring ASCII case, as libtorrent does, so that two files cannot become
 * one on a case-insensitive file system (an exFAT stick, an SMB share).
 */
export function uniquePaths(paths: string[][]): string[][] {
  const key = (parts: string[]) =>
    parts.join("/").replace(/[A-Z]+/g, (s) => s.toLowerCase());
  const taken = new Set<string>();
  for (const parts of paths) {
    for (let k = 1; k < parts.length; k++) taken.add(key(parts.slice(0, k)));
  }
  // Where numbering goes on for a name, so that n files of one name cost O(n).
  const nextNumber = new Map<string, number>();
  return paths.map((parts) => {
    const wanted = key(parts);
    let chosen = parts;
    let n = nextNumber.get(wanted) ?? 1;
    while (taken.has(key(chosen))) {
      chosen = [...parts.slice(0, -1), numbered(parts[parts.length - 1], n++)];
    }
    nextNumber.set(wanted, n);
    taken.add(key(chosen));
    return chosen;
  });
}

/** "name.ext" becomes "name.N.ext" ("name.N" without an extension), still within NAME_MAX. */
function numbered(name: string, n: number): string {
  const dot = name.lastIndexOf(".");
  const [base, extension] = dot > 0
    ? [name.slice(0, dot), name.slice(dot)]
    : [name, ""];
  const suffix = `.${n}${extension}`;
  return cutToBytes(base, NAME_MAX_BYTES - byteLength(suffix)) + suffix;
}

/** The longest start of `text` within `limit` UTF-8 bytes, cut at a character boundary. */
function cutToBytes(text: string, limit: number): string {
  let out = "";
  let size = 0;
  for (const char of text) {
    size += utf8Length(char.codePointAt(0)!);
    if (size > limit) break;
    out += char;
  }
  return out;
}

function utf8Length(code: number): number {
  return code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
}

/** A name quoted for a one-line message: escaped, and shortened when long. */
export function quoted(text: string): string {
  const chars = [...text];
  return JSON.stringify(
    chars.length > 60 ? `${chars.slice(0, 60).join("")}…` : text,
  );
}
