// The onComplete hook (like aria2's --on-download-complete): a shell command
// run when a torrent completes, with the torrent's name, info-hash and path
// in its environment. Its failure is logged, never fatal.

export interface CompletedTorrent {
  name: string;
  infoHash: string;
  /** The downloaded file, or the folder of a multi-file torrent. */
  path: string;
}

/** Runs the hook; resolves when it has exited (or failed to start). */
export async function runCompletionHook(
  command: string,
  torrent: CompletedTorrent,
  log: (line: string) => void,
): Promise<void> {
  try {
    const result = await new Deno.Command("/bin/sh", {
      args: ["-c", command],
      env: {
        BTCLIENT_NAME: torrent.name,
        BTCLIENT_INFOHASH: torrent.infoHash,
        BTCLIENT_PATH: torrent.path,
      },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!result.success) {
      log(
        `onComplete hook for ${torrent.name} exited with code ${result.code}`,
      );
    }
  } catch (e) {
    log(
      `onComplete hook for ${torrent.name} could not run: ${
        e instanceof Error ? e.message : e
      }`,
    );
  }
}
