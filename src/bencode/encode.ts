// Bencode encoder (BEP 3). Dictionary keys are written in byte order, as the
// spec requires; JS strings are written as UTF-8, dictionary keys as latin1
// so that a decoded dictionary re-encodes to the same bytes.

import { BencodeError } from "./types.ts";

/** What the encoder accepts: decoded values plus plain strings. */
export type Encodable =
  | number
  | string
  | Uint8Array
  | Encodable[]
  | { [key: string]: Encodable | undefined };

const utf8 = new TextEncoder();

export function encode(value: Encodable): Uint8Array {
  const parts: Uint8Array[] = [];
  write(value, parts);
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function write(value: Encodable, parts: Uint8Array[]): void {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new BencodeError(`cannot encode ${value}: not a safe integer`);
    }
    parts.push(ascii(`i${value}e`));
  } else if (typeof value === "string") {
    const bytes = utf8.encode(value);
    parts.push(ascii(`${bytes.length}:`), bytes);
  } else if (value instanceof Uint8Array) {
    parts.push(ascii(`${value.length}:`), value);
  } else if (Array.isArray(value)) {
    parts.push(ascii("l"));
    for (const item of value) write(item, parts);
    parts.push(ascii("e"));
  } else {
    parts.push(ascii("d"));
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const key of keys) {
      const k = latin1Bytes(key);
      parts.push(ascii(`${k.length}:`), k);
      write(value[key]!, parts);
    }
    parts.push(ascii("e"));
  }
}

function ascii(text: string): Uint8Array {
  return latin1Bytes(text);
}

function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) {
      throw new BencodeError(`dictionary key "${text}" is not latin1`);
    }
    out[i] = c;
  }
  return out;
}
