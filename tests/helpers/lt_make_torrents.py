#!/usr/bin/python3
"""Makes one single-file .torrent per file of a folder with libtorrent 2.0 (a third-party
tool, in one process: fast for the thousand torrents of a scale test).

usage: lt_make_torrents.py DATA_DIR OUT_DIR
Every file DATA_DIR/NAME becomes OUT_DIR/NAME.torrent (v1 only, 16 KiB pieces, no tracker);
prints MADE <count> at the end.
"""

import os
import sys

import libtorrent as lt


def main():
    data_dir, out_dir = sys.argv[1], sys.argv[2]
    names = sorted(os.listdir(data_dir))
    for name in names:
        files = lt.file_storage()
        lt.add_files(files, os.path.join(data_dir, name))
        torrent = lt.create_torrent(files, 16384, flags=lt.create_torrent.v1_only)
        lt.set_piece_hashes(torrent, data_dir)
        with open(os.path.join(out_dir, name + ".torrent"), "wb") as out:
            out.write(lt.bencode(torrent.generate()))
    print("MADE", len(names), flush=True)


main()
