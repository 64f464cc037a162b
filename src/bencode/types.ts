/** A decoded bencode value. Byte strings stay bytes; keys are latin1 strings. */
export type BValue = number | Uint8Array | BValue[] | BDict;
export type BDict = { [key: string]: BValue };

/** Input that is not valid, canonical bencode. */
export class BencodeError extends Error {
  override name = "BencodeError";
}
