// libtorrent 2.0 (Debian's python3-libtorrent) as a seeder or leecher on 127.0.0.1, through
// lt_peer.py: TCP only, plaintext handshakes, no DHT/LSD/UPnP/NAT-PMP. Inside a network
// namespace a test made (`netns`), it may use another address of that namespace, and a
// seeder may run local service discovery (BEP 14 multicast).

import { DEBIAN_PYTHON } from "./mktorrent.ts";
import { ExternalProcess } from "./process.ts";

export const LT_PEER_SCRIPT = new URL("./lt_peer.py", import.meta.url).pathname;

export interface LibtorrentSeederOptions {
  torrent: string;
  /** The folder holding the payload (libtorrent's save_path). */
  dataDir: string;
  /** Listen port; 0 or absent lets the OS pick (no race with other tests). */
  port?: number;
  /** Peers to dial, "127.0.0.1:PORT". */
  connect?: string[];
  lifetimeSec?: number;
  encryption?: Encryption;
  /** Upload cap in bytes a second (none unless given). */
  uploadLimit?: number;
  /** Serve whatever part of the data is in dataDir, downloading the rest meanwhile (not a full seed). */
  partial?: boolean;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Listen on this address of the namespace; 127.0.0.1 unless given. */
  interface?: string;
  /** Local service discovery on: only with `netns`, since it multicasts. */
  lsd?: boolean;
}

/** MSE/PE policy for both directions; "disabled" (plaintext only) unless given. */
export type Encryption = "disabled" | "enabled" | "forced";

export interface LibtorrentSeeder {
  port: number;
  process: ExternalProcess;
  stop(): Promise<void>;
}

/** Starts seeding and resolves once libtorrent has checked the files and is seeding. */
export async function startLibtorrentSeeder(
  options: LibtorrentSeederOptions,
): Promise<LibtorrentSeeder> {
  const lifetimeSec = options.lifetimeSec ?? 300;
  const process = ExternalProcess.spawn({
    name: "libtorrent seeder",
    ...inNamespace(
      options.netns,
      DEBIAN_PYTHON,
      libtorrentPeerArgs({
        mode: options.partial ? "share" : "seed",
        torrent: options.torrent,
        savePath: options.dataDir,
        port: options.port ?? 0,
        connect: options.connect ?? [],
        timeoutSec: lifetimeSec,
        encryption: options.encryption,
        uploadLimit: options.uploadLimit,
        interface: options.interface,
        lsd: options.lsd,
      }),
    ),
    lifetimeSec: lifetimeSec + 5,
  });
  try {
    // the check of a 1 GiB payload from the page cache takes a few seconds
    const [, port] = await process.waitForLine(/^READY (\d+)$/, 120_000);
    return {
      port: Number(port),
      process,
      stop: async () => {
        await process.stop();
      },
    };
  } catch (error) {
    await process.stop();
    throw error;
  }
}

export interface LibtorrentLeecherOptions {
  torrent: string;
  saveDir: string;
  /** Peers to dial directly, "127.0.0.1:PORT"; the torrent's trackers are used as well. */
  connect: string[];
  timeoutSec: number;
  port?: number;
  encryption?: Encryption;
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Listen on and dial from this address of the namespace; 127.0.0.1 unless given. */
  interface?: string;
}

/** Downloads to saveDir and resolves with libtorrent's own timing (add_torrent to complete). */
export async function runLibtorrentLeecher(
  options: LibtorrentLeecherOptions,
): Promise<{ seconds: number }> {
  const process = ExternalProcess.spawn({
    name: "libtorrent leecher",
    ...inNamespace(
      options.netns,
      DEBIAN_PYTHON,
      libtorrentLeecherArgs(options),
    ),
    lifetimeSec: options.timeoutSec + 15,
  });
  try {
    const [, seconds] = await process.waitForLine(
      /^DONE ([\d.]+)$/,
      (options.timeoutSec + 5) * 1000,
    );
    await process.succeeded();
    return { seconds: Number(seconds) };
  } finally {
    await process.stop();
  }
}

/** Arguments for DEBIAN_PYTHON that run a leecher: for callers that spawn it themselves. */
export function libtorrentLeecherArgs(
  options: LibtorrentLeecherOptions,
): string[] {
  return libtorrentPeerArgs({
    mode: "leech",
    torrent: options.torrent,
    savePath: options.saveDir,
    port: options.port ?? 0,
    connect: options.connect,
    timeoutSec: options.timeoutSec,
    encryption: options.encryption,
    interface: options.interface,
  });
}

/** The command that runs cmd with args, in a network namespace when one is given. */
function inNamespace(
  netns: string | undefined,
  cmd: string,
  args: string[],
): { cmd: string; args: string[] } {
  return netns === undefined
    ? { cmd, args }
    : { cmd: "ip", args: ["netns", "exec", netns, cmd, ...args] };
}

function libtorrentPeerArgs(peer: {
  mode: "seed" | "leech" | "share";
  torrent: string;
  savePath: string;
  port: number;
  connect: string[];
  timeoutSec: number;
  encryption?: Encryption;
  uploadLimit?: number;
  interface?: string;
  lsd?: boolean;
}): string[] {
  return [
    LT_PEER_SCRIPT,
    "--mode",
    peer.mode,
    "--torrent",
    peer.torrent,
    "--save-path",
    peer.savePath,
    "--port",
    String(peer.port),
    "--timeout",
    String(peer.timeoutSec),
    "--encryption",
    peer.encryption ?? "disabled",
    "--upload-limit",
    String(peer.uploadLimit ?? 0),
    "--interface",
    peer.interface ?? "127.0.0.1",
    ...peer.connect.flatMap((address) => ["--connect", address]),
    ...(peer.lsd ? ["--lsd"] : []),
  ];
}
