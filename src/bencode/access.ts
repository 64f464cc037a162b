// Typed accessors over decoded dictionaries. Each names the offending key in
// its error, so a caller can turn a malformed message into a one-line report.

import type { BDict, BValue } from "./types.ts";

export class FieldError extends Error {
  override name = "FieldError";
}

const utf8 = new TextDecoder("utf-8", { fatal: false });

export function isDict(v: BValue | undefined): v is BDict {
  return typeof v === "object" && v !== null && !Array.isArray(v) &&
    !(v instanceof Uint8Array);
}

export function asDict(v: BValue | undefined, what: string): BDict {
  if (!isDict(v)) {
    throw new FieldError(`${what} is ${describe(v)}, not a dictionary`);
  }
  return v;
}

export function asList(v: BValue | undefined, what: string): BValue[] {
  if (!Array.isArray(v)) {
    throw new FieldError(`${what} is ${describe(v)}, not a list`);
  }
  return v;
}

export function asInt(v: BValue | undefined, what: string): number {
  if (typeof v !== "number") {
    throw new FieldError(`${what} is ${describe(v)}, not an integer`);
  }
  return v;
}

export function asBytes(v: BValue | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) {
    throw new FieldError(`${what} is ${describe(v)}, not a string`);
  }
  return v;
}

/** A byte string read as UTF-8 (invalid sequences become U+FFFD). */
export function asText(v: BValue | undefined, what: string): string {
  return utf8.decode(asBytes(v, what));
}

export function describe(v: BValue | undefined): string {
  if (v === undefined) return "missing";
  if (typeof v === "number") return "an integer";
  if (v instanceof Uint8Array) return "a string";
  if (Array.isArray(v)) return "a list";
  return "a dictionary";
}
