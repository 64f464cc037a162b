// A single-file fixture served by a throttled fake seeder: a download that
// lasts long enough to be interrupted, with the seeder's request log to tell
// which pieces were fetched.

import { parseMetainfo } from "../../src/metainfo/metainfo.ts";
import { type FakeSeeder, startFakeSeeder } from "./fake_seeder.ts";
import { type Fixture, makeFixture } from "./swarm_fixture.ts";

export interface SlowDownload {
  fixture: Fixture;
  meta: ReturnType<typeof parseMetainfo>;
  seeder: FakeSeeder;
}

/** 8 MiB (256 KiB pieces) served at `bytesPerSecond`. */
export async function slowDownload(
  bytesPerSecond: number,
): Promise<SlowDownload> {
  const fixture = await makeFixture({
    kind: "single",
    size: 8 * 1024 * 1024 + 11,
  });
  const meta = parseMetainfo(await Deno.readFile(fixture.torrent));
  const seeder = startFakeSeeder({
    infoHash: meta.infoHash,
    file: `${fixture.dataDir}/${fixture.name}`,
    pieceLength: meta.pieceLength,
    bytesPerSecond,
  });
  return { fixture, meta, seeder };
}
