// BEP 6 "Allowed Fast Set Generation": the canonical k pieces a peer at a
// given IPv4 address may fetch from us while choked. Canonical, so that two
// clients offering k pieces to the same peer offer the same k.

import { createHash } from "node:crypto";

/** BEP 6 suggests k = 10. */
export const ALLOWED_FAST_COUNT = 10;

/** The allowed fast set for a peer; empty for IPv6 (BEP 6 has no provision). */
export function allowedFastSet(
  ipv4: string,
  infoHash: Uint8Array,
  pieceCount: number,
  k = ALLOWED_FAST_COUNT,
): number[] {
  const octets = ipv4.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) {
    return [];
  }
  const want = Math.min(k, pieceCount);
  // Only the /24 counts, so several addresses on one network get one set.
  let x: Uint8Array = new Uint8Array([
    octets[0],
    octets[1],
    octets[2],
    0,
    ...infoHash,
  ]);
  const set: number[] = [];
  while (set.length < want) {
    x = new Uint8Array(createHash("sha1").update(x).digest());
    const view = new DataView(x.buffer, x.byteOffset);
    for (let i = 0; i < 5 && set.length < want; i++) {
      const index = view.getUint32(i * 4) % pieceCount;
      if (!set.includes(index)) set.push(index);
    }
  }
  return set;
}
