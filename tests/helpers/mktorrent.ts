// .torrent files made by Debian's mktorrent, a third-party tool (a fairer test of our parser
// than torrents of our own making), and reference info-hashes computed by libtorrent.

import { ExternalProcess } from "./process.ts";

/** Debian's python3: another python3 earlier on PATH may lack the libtorrent module. */
export const DEBIAN_PYTHON = "/usr/bin/python3";

export interface MakeTorrentOptions {
  /** Tracker URLs, each in a tier of its own (mktorrent's repeated -a). */
  announce: string[];
  /** Piece length as a power of two; 18 (256 KiB) unless given. */
  pieceLengthLog2?: number;
  private?: boolean;
}

/** Runs `mktorrent` on a file or folder, writing outFile (which must not exist yet). */
export async function makeTorrent(
  path: string,
  outFile: string,
  options: MakeTorrentOptions,
): Promise<string> {
  const args = [`-l`, String(options.pieceLengthLog2 ?? 18), "-o", outFile];
  for (const url of options.announce) args.push("-a", url);
  if (options.private) args.push("-p");
  args.push(path);
  const mktorrent = ExternalProcess.spawn({
    name: "mktorrent",
    cmd: "mktorrent",
    args,
    lifetimeSec: 300,
  });
  await mktorrent.succeeded();
  return outFile;
}

/** The v1 info-hash (40 hex digits) of a .torrent file, as libtorrent computes it. */
export async function infoHashOf(torrentFile: string): Promise<string> {
  const python = ExternalProcess.spawn({
    name: "libtorrent info-hash",
    cmd: DEBIAN_PYTHON,
    args: [
      "-c",
      "import sys, libtorrent as lt; print('INFOHASH', lt.torrent_info(sys.argv[1]).info_hashes().v1)",
      torrentFile,
    ],
    lifetimeSec: 60,
  });
  const [, hex] = await python.waitForLine(/^INFOHASH ([0-9a-f]{40})$/, 60_000);
  await python.succeeded();
  return hex;
}
