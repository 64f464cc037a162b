// Random payloads made at test time, and sha256 trees to compare a download with its source.

import { createHash } from "node:crypto";

const CHUNK = 1 << 20;
/** crypto.getRandomValues fills at most 64 KiB per call. */
const RANDOM_CALL_MAX = 65536;

/** The multi-file layout: lengths chosen to straddle piece boundaries of any power-of-two size. */
export const MULTI_FILE_LAYOUT: ReadonlyArray<{ path: string; size: number }> =
  [
    { path: "a.bin", size: 2.5 * 1024 * 1024 + 123 },
    { path: "sub/deeper/b.bin", size: 1024 * 1024 + 7 },
    { path: "one.byte", size: 1 },
    { path: "empty.txt", size: 0 },
    { path: "sub/c.dat", size: 300 * 1024 },
  ];

/** Writes `size` random bytes to dir/name in 1 MiB chunks (about 2 GiB/s of randomness). */
export async function makeSingleFile(
  dir: string,
  name: string,
  size: number,
): Promise<string> {
  const path = `${dir}/${name}`;
  await writeRandomFile(path, size);
  return path;
}

/** Makes dir/name/ holding MULTI_FILE_LAYOUT with random contents; returns that folder's path. */
export async function makeMultiFile(
  dir: string,
  name: string,
): Promise<string> {
  const root = `${dir}/${name}`;
  for (const file of MULTI_FILE_LAYOUT) {
    const path = `${root}/${file.path}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await writeRandomFile(path, file.size);
  }
  return root;
}

/** sha256 (hex) of every file under dir, keyed by its path relative to dir with "/" separators. */
export async function sha256Tree(dir: string): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  const visit = async (relative: string): Promise<void> => {
    const entries = [];
    for await (
      const entry of Deno.readDir(relative ? `${dir}/${relative}` : dir)
    ) {
      entries.push(entry);
    }
    entries.sort((a, b) => a.name < b.name ? -1 : 1);
    for (const entry of entries) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory) await visit(path);
      else if (entry.isFile) sums.set(path, await sha256File(`${dir}/${path}`));
    }
  };
  await visit("");
  return sums;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(CHUNK);
  for (;;) {
    const count = await file.read(buffer);
    if (count === null) break;
    hash.update(buffer.subarray(0, count));
  }
  return hash.digest("hex");
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  using file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const chunk = new Uint8Array(CHUNK);
  for (let written = 0; written < size;) {
    const part = chunk.subarray(0, Math.min(CHUNK, size - written));
    for (let offset = 0; offset < part.length; offset += RANDOM_CALL_MAX) {
      crypto.getRandomValues(part.subarray(offset, offset + RANDOM_CALL_MAX));
    }
    await writeAll(file, part);
    written += part.length;
  }
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await file.write(bytes.subarray(offset));
  }
}
