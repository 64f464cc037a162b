export const VERSION = "0.1.0";
/** Azureus-style peer id prefix (BEP 20): client "TD" (TypeScript on Deno), version 0.1.0.0. */
export const PEER_ID_PREFIX = "-TD0100-";

export function makePeerId(): Uint8Array {
  const id = new Uint8Array(20);
  id.set(new TextEncoder().encode(PEER_ID_PREFIX));
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  const random = crypto.getRandomValues(new Uint8Array(12));
  random.forEach((r, i) =>
    id[8 + i] = alphabet.charCodeAt(r % alphabet.length)
  );
  return id;
}
