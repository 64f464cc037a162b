// Gives an existing .torrent an announce URL without touching its info
// dictionary (so its info-hash stays the same).

/**
 * Writes a copy of a torrent that has no announce key with `announce` set.
 * "announce" sorts before every other top-level key of mktorrent's output,
 * so it goes right after the opening "d"; the info bytes stay as they were.
 */
export async function withAnnounce(
  torrent: string,
  url: string,
  out: string,
): Promise<string> {
  const original = await Deno.readFile(torrent);
  const key = new TextEncoder().encode(`8:announce${url.length}:${url}`);
  await Deno.writeFile(
    out,
    new Uint8Array([0x64, ...key, ...original.subarray(1)]),
  );
  return out;
}
