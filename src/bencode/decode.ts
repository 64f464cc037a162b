// Strict bencode decoder (BEP 3). It keeps byte strings as Uint8Array, rejects
// every non-canonical form a lenient decoder lets through, and records the raw
// byte span of each top-level dictionary value: the info-hash must be the
// SHA-1 of the `info` bytes exactly as they stand in the file.

import { type BDict, BencodeError, type BValue } from "./types.ts";

/** Where a decoded top-level dictionary value sits in the input: [start, end). */
export type ByteSpan = readonly [start: number, end: number];

export interface Decoded {
  value: BValue;
  /** Spans of the values of a top-level dictionary, by key. */
  spans: Map<string, ByteSpan>;
  /** Offset just past the decoded value. */
  end: number;
}

const MAX_DEPTH = 64;
const latin1 = new TextDecoder("latin1");

/** Decodes exactly one value that must fill the whole input. */
export function decode(input: Uint8Array): BValue {
  const decoded = decodePrefix(input);
  if (decoded.end !== input.length) {
    throw new BencodeError(
      `${input.length - decoded.end} trailing bytes after the value`,
    );
  }
  return decoded.value;
}

/** Decodes one value at the start of the input; bytes after it are allowed. */
export function decodePrefix(input: Uint8Array, start = 0): Decoded {
  const parser = new Parser(input, start);
  const value = parser.value(0);
  return { value, spans: parser.spans, end: parser.pos };
}

class Parser {
  pos: number;
  readonly spans = new Map<string, ByteSpan>();

  constructor(readonly buf: Uint8Array, start: number) {
    this.pos = start;
  }

  value(depth: number): BValue {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    const c = this.peek();
    if (c === 0x69) return this.integer(); // i
    if (c === 0x6c) return this.list(depth); // l
    if (c === 0x64) return this.dict(depth); // d
    if (c >= 0x30 && c <= 0x39) return this.bytes();
    this.fail(`unexpected byte 0x${c.toString(16).padStart(2, "0")}`);
  }

  integer(): number {
    this.pos++; // 'i'
    const end = this.buf.indexOf(0x65, this.pos); // 'e'
    if (end < 0) this.fail("unterminated integer");
    const text = latin1.decode(this.buf.subarray(this.pos, end));
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) {
      this.fail(`malformed integer "${text.slice(0, 24)}"`);
    }
    const n = Number(text);
    if (!Number.isSafeInteger(n)) this.fail(`integer ${text} out of range`);
    this.pos = end + 1;
    return n;
  }

  bytes(): Uint8Array {
    const colon = this.buf.indexOf(0x3a, this.pos); // ':'
    if (colon < 0 || colon - this.pos > 16) {
      this.fail("malformed string length");
    }
    const text = latin1.decode(this.buf.subarray(this.pos, colon));
    if (!/^(0|[1-9][0-9]*)$/.test(text)) {
      this.fail(`malformed string length "${text}"`);
    }
    const length = Number(text);
    const start = colon + 1;
    if (start + length > this.buf.length) {
      this.fail(`string of ${length} bytes runs past the end of the input`);
    }
    this.pos = start + length;
    return this.buf.subarray(start, this.pos);
  }

  list(depth: number): BValue[] {
    this.pos++; // 'l'
    const items: BValue[] = [];
    while (this.peek() !== 0x65) items.push(this.value(depth + 1));
    this.pos++;
    return items;
  }

  dict(depth: number): BDict {
    this.pos++; // 'd'
    const result: BDict = Object.create(null);
    while (this.peek() !== 0x65) {
      if (this.buf[this.pos] < 0x30 || this.buf[this.pos] > 0x39) {
        this.fail("dictionary key is not a string");
      }
      const key = latin1.decode(this.bytes());
      if (key in result) this.fail(`duplicate dictionary key "${key}"`);
      const valueStart = this.pos;
      result[key] = this.value(depth + 1);
      if (depth === 0) this.spans.set(key, [valueStart, this.pos]);
    }
    this.pos++;
    return result;
  }

  peek(): number {
    if (this.pos >= this.buf.length) this.fail("unexpected end of input");
    return this.buf[this.pos];
  }

  fail(why: string): never {
    throw new BencodeError(`${why} at byte ${this.pos}`);
  }
}
