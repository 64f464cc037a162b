// A test payload with its torrent and a scratch folder, made once per test
// and removed afterwards.

import assert from "node:assert/strict";
import { makeTorrent } from "./mktorrent.ts";
import { makeMultiFile, makeSingleFile, sha256Tree } from "./payload.ts";

export interface Fixture {
  /** Scratch folder holding everything below. */
  root: string;
  /** Folder the seeders serve from (the torrent's save path). */
  dataDir: string;
  /** Where our client downloads to. */
  downloadDir: string;
  torrent: string;
  /** The torrent's top-level name inside dataDir. */
  name: string;
  remove(): Promise<void>;
}

export interface FixtureOptions {
  kind: "multi" | "single";
  /** Single-file size in bytes. */
  size?: number;
  announce?: string[];
  pieceLengthLog2?: number;
  /** The payload's name (default "multi" or "single.bin"). */
  name?: string;
  /** BEP 27 private flag. */
  private?: boolean;
}

export async function makeFixture(options: FixtureOptions): Promise<Fixture> {
  const root = await Deno.makeTempDir({ prefix: "btclient-test-" });
  const dataDir = `${root}/data`;
  const downloadDir = `${root}/download`;
  await Deno.mkdir(dataDir);
  const name = options.name ??
    (options.kind === "multi" ? "multi" : "single.bin");
  const payload = options.kind === "multi"
    ? await makeMultiFile(dataDir, name)
    : await makeSingleFile(dataDir, name, options.size ?? 3 * 1024 * 1024 + 5);
  const torrent = await makeTorrent(payload, `${root}/${name}.torrent`, {
    announce: options.announce ?? [],
    pieceLengthLog2: options.pieceLengthLog2,
    private: options.private,
  });
  return {
    root,
    dataDir,
    downloadDir,
    torrent,
    name,
    remove: () => Deno.remove(root, { recursive: true }),
  };
}

/** Asserts that the download holds exactly the source files, byte for byte. */
export async function assertSameTree(fixture: Fixture): Promise<void> {
  const source = await sha256Tree(`${fixture.dataDir}`);
  const copy = await sha256Tree(`${fixture.downloadDir}`);
  // The client keeps its resume data in a hidden folder beside the download.
  for (const key of [...copy.keys()]) {
    if (key.startsWith(".btclient/")) copy.delete(key);
  }
  assert.deepEqual(copy, source);
}

/** Writes a JSON config file for the client and returns its path. */
export async function writeConfig(
  fixture: Fixture,
  values: Record<string, unknown>,
): Promise<string> {
  const file = `${fixture.root}/config.json`;
  await Deno.writeTextFile(file, JSON.stringify(values));
  return file;
}

/** The client's arguments to download the fixture into its download folder. */
export function downloadArgs(fixture: Fixture, ...extra: string[]): string[] {
  return [
    "download",
    fixture.torrent,
    "--dir",
    fixture.downloadDir,
    "--port",
    "0",
    ...extra,
  ];
}
