// A loopback DHT (BEP 5) of libtorrent 2.0 sessions through lt_dht.py: plain nodes that know
// each other, optionally a seeder that announces into the DHT (no trackers) and a leecher
// that starts from a bare magnet link. One Python process holds every session; it has a
// bounded lifetime and is stopped by its PID.

import { DEBIAN_PYTHON } from "./mktorrent.ts";
import { ExternalProcess } from "./process.ts";

export const LT_DHT_SCRIPT = new URL("./lt_dht.py", import.meta.url).pathname;

export interface LibtorrentDhtOptions {
  /** Plain DHT nodes, bootstrapped to each other; 4 unless given. */
  nodes?: number;
  /** Seed this torrent from dataDir (libtorrent's save_path) and announce it into the DHT. */
  seed?: { torrent: string; dataDir: string };
  /** Download this magnet link into saveDir, with peers from the DHT only. */
  leechMagnet?: { uri: string; saveDir: string };
  /** Other DHT nodes every session should know, "127.0.0.1:PORT" (e.g. our own node). */
  bootstrap?: string[];
  /** Info-hashes (40 hex digits) that a plain node looks up with get_peers every 2 s. */
  lookup?: string[];
  /** Hard limit on the process; 300 s unless given. */
  lifetimeSec?: number;
}

export interface LibtorrentDht {
  /** UDP ports of the plain nodes on 127.0.0.1, for a bootstrap list. */
  dhtPorts: number[];
  /** The seeder's TCP listen port (and its DHT port), once a plain node's lookup found it. */
  seederPort?: number;
  /** The leecher's TCP listen port (and its DHT port). */
  leecherPort?: number;
  process: ExternalProcess;
  /** Resolves with libtorrent's download time in seconds once the magnet leecher is done. */
  waitLeechDone?(timeoutMs: number): Promise<number>;
  /** Resolves once a lookup (see `lookup`) found `address` ("IP:PORT") for infoHashHex. */
  waitForPeer(
    infoHashHex: string,
    address: string,
    timeoutMs: number,
  ): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the DHT; resolves when every node knows another one and the seeder (if any) is findable. */
export async function startLibtorrentDht(
  options: LibtorrentDhtOptions,
): Promise<LibtorrentDht> {
  const lifetimeSec = options.lifetimeSec ?? 300;
  const args = [
    LT_DHT_SCRIPT,
    "--nodes",
    String(options.nodes ?? 4),
    "--timeout",
    String(lifetimeSec),
    ...(options.bootstrap ?? []).flatMap((node) => ["--bootstrap", node]),
    ...(options.lookup ?? []).flatMap((hex) => ["--lookup", hex.toLowerCase()]),
  ];
  if (options.seed) {
    args.push("--seed-torrent", options.seed.torrent);
    args.push("--seed-data", options.seed.dataDir);
  }
  if (options.leechMagnet) {
    args.push("--leech-magnet", options.leechMagnet.uri);
    args.push("--leech-save", options.leechMagnet.saveDir);
  }
  const process = ExternalProcess.spawn({
    name: "libtorrent DHT",
    cmd: DEBIAN_PYTHON,
    args,
    lifetimeSec: lifetimeSec + 5,
  });
  try {
    const [, ports] = await process.waitForLine(/^READY ([\d,]+)$/, 30_000);
    const dht: LibtorrentDht = {
      dhtPorts: ports.split(",").map(Number),
      process,
      waitForPeer: async (infoHashHex, address, timeoutMs) => {
        const line = new RegExp(
          `^PEERS ${infoHashHex.toLowerCase()} ${
            address.replaceAll(".", "\\.")
          }$`,
        );
        await process.waitForLine(line, timeoutMs);
      },
      stop: async () => {
        await process.stop();
      },
    };
    if (options.seed) {
      // the seeder checks its files, then announces; a lookup must find it
      const [, port] = await process.waitForLine(/^SEEDER (\d+)$/, 60_000);
      dht.seederPort = Number(port);
    }
    if (options.leechMagnet) {
      const [, port] = await process.waitForLine(/^LEECHER (\d+)$/, 10_000);
      dht.leecherPort = Number(port);
      dht.waitLeechDone = async (timeoutMs) => {
        const [, seconds] = await process.waitForLine(
          /^DONE ([\d.]+)$/,
          timeoutMs,
        );
        return Number(seconds);
      };
    }
    return dht;
  } catch (error) {
    await process.stop();
    throw error;
  }
}
