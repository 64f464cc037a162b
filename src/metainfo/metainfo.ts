// .torrent parsing and validation (BEP 3, BEP 12 announce-list, BEP 27
// private flag, BEP 47 padding files). The info-hash is the SHA-1 of the raw
// `info` bytes as they stand in the file, never of a re-encoding.

import { createHash } from "node:crypto";
import { decodePrefix } from "../bencode/decode.ts";
import {
  asBytes,
  asDict,
  asInt,
  asList,
  asText,
  FieldError,
} from "../bencode/access.ts";
import { type BDict, BencodeError } from "../bencode/types.ts";
import { diskName, quoted, uniquePaths } from "./file_names.ts";

export interface TorrentFile {
  /**
   * Path components below the torrent's folder (single-file: [name]), as
   * named on disk: the torrent's own names made fit for Linux (file_names.ts).
   */
  path: string[];
  length: number;
  /** Offset of the file's first byte in the torrent's byte stream. */
  offset: number;
  /** BEP 47 padding file: zeros that are never written to disk. */
  padding: boolean;
}

export interface Metainfo {
  infoHash: Uint8Array;
  infoHashHex: string;
  /** The raw bencoded info dictionary (served to peers by ut_metadata later). */
  infoBytes: Uint8Array;
  /** The torrent's file or folder name, as named on disk (like each path). */
  name: string;
  pieceLength: number;
  pieceCount: number;
  /** pieceCount SHA-1 digests, 20 bytes each. */
  pieceHashes: Uint8Array;
  totalLength: number;
  /** True when the files live in a folder named `name`. */
  multiFile: boolean;
  files: TorrentFile[];
  private: boolean;
  /** Tracker URLs grouped in tiers (BEP 12); a lone `announce` is one tier. */
  trackers: string[][];
}

/** A .torrent that cannot be used; the message names what is wrong. */
export class TorrentFileError extends Error {
  override name = "TorrentFileError";
}

const MAX_PIECE_LENGTH = 256 * 1024 * 1024;
/** 2^50 bytes (1 PiB): far beyond any real torrent, well inside 2^53. */
const MAX_TOTAL_LENGTH = 2 ** 50;
const SUPPORTED_TRACKER = /^(https?|udp):\/\//i;

export function parseMetainfo(raw: Uint8Array): Metainfo {
  try {
    return parse(raw);
  } catch (e) {
    if (e instanceof BencodeError) {
      throw new TorrentFileError(`not a valid bencoded torrent: ${e.message}`);
    }
    if (e instanceof FieldError) throw new TorrentFileError(e.message);
    throw e;
  }
}

function parse(raw: Uint8Array): Metainfo {
  const top = decodePrefix(raw);
  if (top.end !== raw.length) {
    throw new TorrentFileError(
      `${raw.length - top.end} bytes of garbage after the torrent data`,
    );
  }
  const root = asDict(top.value, "the torrent file");
  const info = asDict(root["info"], "info");
  const [infoStart, infoEnd] = top.spans.get("info")!;
  const infoBytes = raw.slice(infoStart, infoEnd);
  const infoHash = new Uint8Array(
    createHash("sha1").update(infoBytes).digest(),
  );

  if (info["pieces"] === undefined && info["file tree"] !== undefined) {
    throw new TorrentFileError(
      "BitTorrent v2-only torrents are not supported (info has no pieces)",
    );
  }
  const name = safeComponent(asText(info["name"], "info.name"), "info.name");
  const pieceLength = asInt(info["piece length"], "info.piece length");
  if (pieceLength <= 0 || pieceLength > MAX_PIECE_LENGTH) {
    throw new TorrentFileError(
      `info.piece length is ${pieceLength}, not between 1 and ${MAX_PIECE_LENGTH}`,
    );
  }
  const pieceHashes = asBytes(info["pieces"], "info.pieces");
  if (pieceHashes.length % 20 !== 0) {
    throw new TorrentFileError(
      `info.pieces is ${pieceHashes.length} bytes, not a multiple of 20`,
    );
  }

  const multiFile = info["files"] !== undefined;
  if (multiFile && info["length"] !== undefined) {
    throw new TorrentFileError("info has both length and files");
  }
  const files = multiFile ? parseFiles(info) : [singleFile(info, name)];
  const totalLength = files.reduce((sum, f) => sum + f.length, 0);
  if (totalLength === 0) {
    throw new TorrentFileError("the torrent holds no data (total length 0)");
  }
  if (totalLength > MAX_TOTAL_LENGTH) {
    throw new TorrentFileError(`total length ${totalLength} is absurdly large`);
  }
  const pieceCount = pieceHashes.length / 20;
  const expectedPieces = Math.ceil(totalLength / pieceLength);
  if (pieceCount !== expectedPieces) {
    throw new TorrentFileError(
      `info.pieces has ${pieceCount} hashes but ${totalLength} bytes in ` +
        `${pieceLength}-byte pieces need ${expectedPieces}`,
    );
  }

  return {
    infoHash,
    infoHashHex: toHex(infoHash),
    infoBytes,
    name,
    pieceLength,
    pieceCount,
    pieceHashes: pieceHashes.slice(),
    totalLength,
    multiFile,
    files,
    private: info["private"] === 1,
    trackers: parseTrackers(root),
  };
}

function singleFile(info: BDict, name: string): TorrentFile {
  const length = asInt(info["length"], "info.length");
  if (length < 0) {
    throw new TorrentFileError(`info.length is negative (${length})`);
  }
  return { path: [name], length, offset: 0, padding: false };
}

function parseFiles(info: BDict): TorrentFile[] {
  const list = asList(info["files"], "info.files");
  if (list.length === 0) throw new TorrentFileError("info.files is empty");
  const files: TorrentFile[] = [];
  // Keys of the torrent's own paths, as JSON so that a "/" inside a name
  // cannot pass for a folder.
  const seen = new Set<string>();
  const folders = new Set<string>();
  let offset = 0;
  list.forEach((entry, i) => {
    const what = `info.files[${i}]`;
    const file = asDict(entry, what);
    const length = asInt(file["length"], `${what}.length`);
    if (length < 0) {
      throw new TorrentFileError(`${what}.length is negative (${length})`);
    }
    const rawPath = file["path.utf-8"] ?? file["path"];
    const given = asList(rawPath, `${what}.path`).map((p, j) =>
      asText(p, `${what}.path[${j}]`)
    );
    if (given.length === 0) {
      throw new TorrentFileError(`${what}.path is empty`);
    }
    const parts = given.map((p, j) => safeComponent(p, `${what}.path[${j}]`));
    const attr = file["attr"];
    const padding = attr instanceof Uint8Array &&
      asText(attr, "attr").includes("p");
    const key = JSON.stringify(given);
    if (!padding) {
      if (seen.has(key) || folders.has(key)) {
        throw new TorrentFileError(
          `${what}.path ${quoted(given.join("/"))} appears twice`,
        );
      }
      for (let k = 1; k < given.length; k++) {
        const folder = given.slice(0, k);
        if (seen.has(JSON.stringify(folder))) {
          throw new TorrentFileError(
            `${what}.path ${quoted(given.join("/"))} is inside the file ${
              quoted(folder.join("/"))
            }`,
          );
        }
        folders.add(JSON.stringify(folder));
      }
      seen.add(key);
    }
    files.push({ path: parts, length, offset, padding });
    offset += length;
  });
  // Padding files never reach the disk, so only the others need names of their own.
  const onDisk = files.filter((f) => !f.padding);
  uniquePaths(onDisk.map((f) => f.path)).forEach((p, k) => onDisk[k].path = p);
  return files;
}

/**
 * A file or folder name of the torrent as it goes on disk (see diskName).
 * What cannot name a file or folder inside the download folder is refused.
 */
function safeComponent(text: string, what: string): string {
  if (text.length === 0) throw new TorrentFileError(`${what} is empty`);
  const name = diskName(text);
  if (name === "..") {
    throw new TorrentFileError(
      `${what} is ${quoted(text)}, which would escape the download folder`,
    );
  }
  if (name === ".") {
    throw new TorrentFileError(
      `${what} is ${quoted(text)}, which names the folder itself`,
    );
  }
  if (name.length === 0) {
    throw new TorrentFileError(
      `${what} ${quoted(text)} has no characters left for a file name`,
    );
  }
  return name;
}

function parseTrackers(root: BDict): string[][] {
  const tiers: string[][] = [];
  const list = root["announce-list"];
  if (Array.isArray(list)) {
    for (const tier of list) {
      if (!Array.isArray(tier)) continue;
      const urls = tier.filter((u) => u instanceof Uint8Array)
        .map((u) => asText(u, "announce-list url").trim())
        .filter((u) => SUPPORTED_TRACKER.test(u));
      if (urls.length > 0) tiers.push([...new Set(urls)]);
    }
  }
  // BEP 12: announce is used only when announce-list is absent or empty.
  if (tiers.length === 0 && root["announce"] instanceof Uint8Array) {
    const url = asText(root["announce"], "announce").trim();
    if (SUPPORTED_TRACKER.test(url)) tiers.push([url]);
  }
  return tiers;
}

export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}
