// Helpers shared by the benchmarks (bench/download.ts, bench/seed.ts).

import {
  type FakeTracker,
  startFakeTracker,
} from "../tests/helpers/fake_tracker.ts";
import { makeTorrent } from "../tests/helpers/mktorrent.ts";
import { makeSingleFile, sha256File } from "../tests/helpers/payload.ts";

export const MIB = 1024 * 1024;

/** Our client talks to the benchmark's loopback peers only: no DHT, LSD or router. */
export const LOOPBACK_ONLY = ["--no-dht", "--no-lsd", "--no-port-mapping"];

/** Undo steps run newest first, at the end or on Ctrl-C (children live in their own
 * process groups, so the terminal's SIGINT does not reach them). */
export class CleanupStack {
  #steps: Array<() => Promise<void>> = [];

  /** Adds a step; the returned function drops it again once it has been done inline. */
  push(step: () => Promise<void>): () => void {
    this.#steps.push(step);
    return () => {
      this.#steps = this.#steps.filter((s) => s !== step);
    };
  }

  async run(): Promise<void> {
    for (const step of this.#steps.splice(0).reverse()) {
      await step().catch((error) => console.error(`cleanup: ${error}`));
    }
  }
}

/**
 * Writes and deletes a file of the payload's size before a measured run. On
 * this VM the first GiB of page-cache writes after memory was freed a while
 * (e.g. after aria2c's 7 s run) costs 1.7-2.0 s against 0.25-0.29 s next time,
 * measured with plain dd, whichever program writes: without this, the client
 * that runs after aria2c pays it.
 */
export async function absorbFirstTouch(
  path: string,
  size: number,
): Promise<void> {
  const chunk = new Uint8Array(MIB);
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    for (let done = 0; done < size; done += chunk.length) {
      let off = 0;
      while (off < chunk.length) off += await file.write(chunk.subarray(off));
    }
  } finally {
    file.close();
  }
  await removeTree(path);
}

/**
 * Removes a folder tree (an interrupt may have removed it already), then
 * lets the kernel finish with it: freeing a just-written GiB costs the next
 * writer about a second of system time, which is not that client's doing.
 */
export async function removeTree(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  await new Deno.Command("sync").output();
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${flag}: expected a positive integer, got "${text}"`);
  }
  return value;
}

export function log(message: string): void {
  console.error(message);
}

/** A comma-separated list flag, each name checked against the known ones. */
export function parseNames<T extends string>(
  text: string,
  known: readonly T[],
  flag: string,
): T[] {
  return text.split(",").map((name) => {
    if (!(known as readonly string[]).includes(name)) {
      throw new Error(
        `${flag}: unknown name "${name}" (known: ${known.join(", ")})`,
      );
    }
    return name as T;
  });
}

/** A benchmark's temp folder and cleanups; Ctrl-C runs the cleanups and exits. */
export class BenchWorkspace {
  readonly cleanups = new CleanupStack();
  interrupted = false;
  readonly #onInterrupt = () => {
    this.interrupted = true;
    log("interrupted: stopping the clients and deleting the temp dir");
    this.cleanups.run().finally(() => Deno.exit(130));
  };

  private constructor(readonly workDir: string) {
    this.cleanups.push(() => removeTree(workDir));
    Deno.addSignalListener("SIGINT", this.#onInterrupt);
  }

  static async open(prefix: string): Promise<BenchWorkspace> {
    return new BenchWorkspace(await Deno.makeTempDir({ prefix }));
  }

  async close(): Promise<void> {
    await this.cleanups.run();
    Deno.removeSignalListener("SIGINT", this.#onInterrupt);
  }
}

export interface BenchPayload {
  payload: string;
  sourceSha256: string;
  tracker: FakeTracker;
  torrent: string;
}

/**
 * A random single-file payload in dataDir, flushed to disk, with a torrent
 * of 1 MiB pieces whose announce URL is a fake tracker (for aria2c).
 */
export async function makeBenchPayload(
  workspace: BenchWorkspace,
  dataDir: string,
  name: string,
  sizeMib: number,
): Promise<BenchPayload> {
  log(`making a ${sizeMib} MiB payload in ${dataDir}`);
  await Deno.mkdir(dataDir, { recursive: true });
  const payload = await makeSingleFile(dataDir, name, sizeMib * MIB);
  const sourceSha256 = await sha256File(payload);
  // Flush the new payload now, so its writeback does not slow whichever
  // transfer happens to run first.
  await new Deno.Command("sync").output();
  const tracker = await startFakeTracker();
  workspace.cleanups.push(tracker.stop);
  const torrent = await makeTorrent(
    payload,
    `${workspace.workDir}/payload.torrent`,
    {
      announce: [tracker.url],
      pieceLengthLog2: 20,
    },
  );
  return { payload, sourceSha256, tracker, torrent };
}
