// One run at a time per download folder: an exclusive advisory lock on
// <downloadDir>/.btclient/lock. A second run finds it taken and stops before
// touching anything; the lock dies with its process, even on SIGKILL.

import * as path from "node:path";

export class FolderLockedError extends Error {
  override name = "FolderLockedError";
}

export class FolderLock {
  private constructor(private file: Deno.FsFile) {}

  static async acquire(downloadDir: string): Promise<FolderLock> {
    const dir = path.join(downloadDir, ".btclient");
    await Deno.mkdir(dir, { recursive: true });
    const lockPath = path.join(dir, "lock");
    const file = await Deno.open(lockPath, {
      read: true,
      write: true,
      create: true,
    });
    if (!(await file.tryLock(true))) {
      file.close();
      let holder = "";
      try {
        holder = (await Deno.readTextFile(lockPath)).trim();
      } catch { /* the holder's pid is only informative */ }
      throw new FolderLockedError(
        `${downloadDir} is in use by another btclient run${
          holder ? ` (pid ${holder})` : ""
        }`,
      );
    }
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    return new FolderLock(file);
  }

  release(): void {
    try {
      this.file.close();
    } catch { /* already closed */ }
  }
}
