import assert from "node:assert/strict";
import { decode, decodePrefix } from "../../src/bencode/decode.ts";
import { encode } from "../../src/bencode/encode.ts";
import { BencodeError, type BValue } from "../../src/bencode/types.ts";
import {
  asBytes,
  asDict,
  asInt,
  asList,
  asText,
  FieldError,
  isDict,
} from "../../src/bencode/access.ts";

/** Bytes of a string whose char codes are all below 256 (latin1). */
function raw(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new Error("raw() takes latin1 text");
    out[i] = c;
  }
  return out;
}

function text(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function rejects(input: string | Uint8Array, pattern: RegExp): void {
  const bytes = typeof input === "string" ? raw(input) : input;
  assert.throws(
    () => decode(bytes),
    (e: unknown) => {
      assert.ok(e instanceof BencodeError, `not a BencodeError: ${e}`);
      assert.match(e.message, pattern);
      return true;
    },
    `expected ${JSON.stringify(text(bytes))} to be rejected`,
  );
}

Deno.test("bencode decode: integers, strings, lists, dicts", () => {
  assert.equal(decode(raw("i0e")), 0);
  assert.equal(decode(raw("i42e")), 42);
  assert.equal(decode(raw("i-42e")), -42);
  assert.equal(decode(raw("i9007199254740991e")), Number.MAX_SAFE_INTEGER);
  assert.equal(decode(raw("i-9007199254740991e")), -Number.MAX_SAFE_INTEGER);
  assert.deepEqual(decode(raw("4:spam")), raw("spam"));
  assert.deepEqual(decode(raw("0:")), new Uint8Array(0));
  assert.deepEqual(decode(raw("le")), []);
  assert.deepEqual(decode(raw("l4:spami7ee")), [raw("spam"), 7]);
  const d = decode(raw("d3:cow3:moo4:spaml1:a1:bee")) as Record<
    string,
    BValue
  >;
  assert.deepEqual(Object.keys(d), ["cow", "spam"]);
  assert.deepEqual(d.cow, raw("moo"));
  assert.deepEqual(d.spam, [raw("a"), raw("b")]);
  assert.deepEqual({ ...(decode(raw("de")) as object) }, {});
});

Deno.test("bencode decode: strings keep arbitrary bytes, keys are latin1", () => {
  const bin = new Uint8Array([0, 0xff, 0x3a, 0x65, 0x80]);
  const input = new Uint8Array([...raw("5:"), ...bin]);
  assert.deepEqual(decode(input), bin);
  // A key with a high byte decodes to the latin1 character of that byte.
  const d = decode(new Uint8Array([...raw("d1:"), 0xe9, ...raw("i1ee")]));
  assert.deepEqual(Object.keys(d as object), ["\u00e9"]);
  // Values of a dict are views of the input (no copy is required, but the
  // bytes must be the right ones).
  const s = decode(raw("3:\u00ff\u0000a")) as Uint8Array;
  assert.deepEqual([...s], [0xff, 0, 0x61]);
});

Deno.test("bencode round trip: encode(decode(x)) == x for canonical input", () => {
  const samples = [
    "i0e",
    "i-1e",
    "i123456789012e",
    "0:",
    "3:abc",
    "le",
    "de",
    "lli1eeli2eee",
    "d1:ai1e1:bl1:c1:de1:cd1:xdeee",
    "d8:announce12:http://x/ann4:infod6:lengthi5e4:name1:f12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
  ];
  for (const s of samples) {
    assert.equal(text(encode(decode(raw(s)) as never)), s, s);
  }
  // Random structures survive encode -> decode -> encode.
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const gen = (depth: number): BValue => {
    const kind = depth > 3 ? rnd(2) : rnd(4);
    if (kind === 0) return rnd(2 ** 30) - 2 ** 29;
    if (kind === 1) {
      return Uint8Array.from({ length: rnd(12) }, () => rnd(256));
    }
    if (kind === 2) return Array.from({ length: rnd(4) }, () => gen(depth + 1));
    const d: Record<string, BValue> = {};
    for (let i = rnd(4); i > 0; i--) {
      d[
        String.fromCharCode(
          ...Array.from({ length: 1 + rnd(3) }, () => rnd(256)),
        )
      ] = gen(depth + 1);
    }
    return d;
  };
  for (let i = 0; i < 200; i++) {
    const v = gen(0);
    const once = encode(v as never);
    const back = decode(once);
    assert.deepEqual(encode(back as never), once);
  }
});

Deno.test("bencode decode rejects malformed integers", () => {
  rejects("i03e", /malformed integer/);
  rejects("i-0e", /malformed integer/);
  rejects("ie", /malformed integer/);
  rejects("i-e", /malformed integer/);
  rejects("i+1e", /malformed integer/);
  rejects("i1.5e", /malformed integer/);
  rejects("i 1e", /malformed integer/);
  rejects("i00e", /malformed integer/);
  rejects("i12", /unterminated integer/);
  rejects("i", /unterminated integer/);
});

Deno.test("bencode decode rejects integers beyond 2^53", () => {
  rejects("i9007199254740992e", /out of range/); // 2^53
  rejects("i9007199254740993e", /out of range/);
  rejects("i-9007199254740992e", /out of range/);
  rejects("i99999999999999999999999999e", /out of range/);
});

Deno.test("bencode decode rejects malformed and truncated strings", () => {
  rejects("03:abc", /malformed string length/);
  rejects("00:", /malformed string length/);
  rejects("-1:a", /unexpected byte 0x2d/);
  rejects("5:abc", /runs past the end/);
  rejects("1:", /runs past the end/);
  rejects("3abc", /malformed string length/);
  rejects("12345678901234567:a", /malformed string length/);
  rejects("1 :a", /malformed string length/);
});

Deno.test("bencode decode rejects unterminated lists and dicts", () => {
  rejects("l", /unexpected end of input/);
  rejects("li1e", /unexpected end of input/);
  rejects("l4:spam", /unexpected end of input/);
  rejects("d", /unexpected end of input/);
  rejects("d1:ai1e", /unexpected end of input/);
  rejects("d1:a", /unexpected end of input/);
  rejects("", /unexpected end of input/);
  rejects("x", /unexpected byte 0x78/);
  rejects("e", /unexpected byte 0x65/);
});

Deno.test("bencode decode rejects non-string dict keys and duplicate keys", () => {
  rejects("di1ei2ee", /dictionary key is not a string/);
  rejects("dlei2ee", /dictionary key is not a string/);
  rejects("ddei2ee", /dictionary key is not a string/);
  rejects("d1:ai1e1:ai2ee", /duplicate dictionary key "a"/);
  // Duplicates are caught at any depth.
  rejects("ld1:ai1e1:bi1e1:ai2eee", /duplicate dictionary key "a"/);
});

Deno.test("bencode decode: keys named like Object.prototype members are plain keys", () => {
  const d = decode(raw("d11:constructori1e9:__proto__i2e8:toStringi3ee")) as
    & Record<string, BValue>
    & object;
  assert.deepEqual(Object.keys(d).sort(), [
    "__proto__",
    "constructor",
    "toString",
  ]);
  assert.equal(d["constructor"], 1);
  assert.equal(d["toString"], 3);
  assert.ok(isDict(d));
  // A key that is only inherited on ordinary objects is not a duplicate.
  assert.equal(
    (decode(raw("d7:valueOfi1ee")) as Record<string, BValue>).valueOf,
    1,
  );
});

Deno.test("bencode decode rejects trailing garbage, decodePrefix allows it", () => {
  rejects("i1ei2e", /3 trailing bytes/);
  rejects("4:spamx", /1 trailing bytes/);
  rejects("dee", /1 trailing bytes/);
  const p = decodePrefix(raw("i1ei2e"));
  assert.equal(p.value, 1);
  assert.equal(p.end, 3);
  const q = decodePrefix(raw("i1ei2e"), 3);
  assert.equal(q.value, 2);
  assert.equal(q.end, 6);
  const r = decodePrefix(raw("le4:tail"));
  assert.deepEqual(r.value, []);
  assert.equal(r.end, 2);
});

Deno.test("bencode decode: nesting limit is 64 levels below the top", () => {
  const nested = (n: number) => "l".repeat(n) + "e".repeat(n);
  // Depth 0 is the top value; 65 lists go down to depth 64, which is allowed.
  assert.doesNotThrow(() => decode(raw(nested(65))));
  rejects(nested(66), /nesting deeper than 64/);
  // Deep dicts too.
  const dicts = (n: number) => "d1:a".repeat(n) + "i1e" + "e".repeat(n);
  assert.doesNotThrow(() => decode(raw(dicts(64))));
  rejects(dicts(65), /nesting deeper than 64/);
  // Far deeper input fails cleanly rather than overflowing the stack.
  rejects(nested(100_000), /nesting deeper than 64/);
});

Deno.test("bencode decodePrefix: spans of top-level dict values and end", () => {
  const input = raw("d1:ai1e4:infod1:xi2ee1:zl1:qee");
  const p = decodePrefix(input);
  assert.equal(p.end, input.length);
  const expect = (key: string, valueText: string) => {
    const span = p.spans.get(key);
    assert.ok(span, `no span for ${key}`);
    const [s, e] = span;
    assert.equal(text(input.subarray(s, e)), valueText, key);
  };
  expect("a", "i1e");
  expect("info", "d1:xi2ee");
  expect("z", "l1:qe");
  assert.equal(p.spans.size, 3);
  // Only top-level keys get spans.
  assert.equal(p.spans.get("x"), undefined);
  // With a start offset the spans are absolute offsets in the input.
  const prefixed = raw("xxxd4:infoi7ee");
  const q = decodePrefix(prefixed, 3);
  assert.deepEqual(q.spans.get("info"), [10, 13]);
  assert.equal(q.end, prefixed.length);
  // A non-dict top value has no spans.
  assert.equal(decodePrefix(raw("li1ee")).spans.size, 0);
});

Deno.test("bencode decode: error offsets point at the problem", () => {
  // The integer text starts at byte 8.
  assert.throws(() => decode(raw("l4:spami03ee")), /at byte 8/);
  assert.throws(() => decode(raw("d1:ai1e1:ai2ee")), /at byte 10/);
});

Deno.test("bencode encode: exact bytes", () => {
  assert.equal(text(encode(0)), "i0e");
  assert.equal(text(encode(-7)), "i-7e");
  assert.equal(text(encode(Number.MAX_SAFE_INTEGER)), "i9007199254740991e");
  assert.equal(text(encode("spam")), "4:spam");
  // JS strings are UTF-8: "é" is 2 bytes.
  assert.deepEqual(encode("\u00e9"), new Uint8Array([0x32, 0x3a, 0xc3, 0xa9]));
  assert.deepEqual(
    encode(new Uint8Array([0, 255])),
    new Uint8Array([0x32, 0x3a, 0, 255]),
  );
  assert.equal(text(encode([1, "a", [], {}])), "li1e1:aledee");
  // undefined values are left out.
  assert.equal(text(encode({ a: 1, b: undefined })), "d1:ai1ee");
});

Deno.test("bencode encode: dict keys sorted by raw bytes", () => {
  assert.equal(
    text(encode({ zeta: 1, alpha: 2, Beta: 3, "a b": 4, a: 5, "": 6 })),
    "d0:i6e4:Betai3e1:ai5e3:a bi4e5:alphai2e4:zetai1ee",
  );
  // Bytes above 0x7f sort after ASCII; keys are written as latin1 bytes.
  const out = encode({ "\u00e9": 1, "z": 2, "\u0080": 3 });
  assert.deepEqual(
    out,
    new Uint8Array([
      ...raw("d1:z"),
      ...raw("i2e1:"),
      0x80,
      ...raw("i3e1:"),
      0xe9,
      ...raw("i1ee"),
    ]),
  );
  // A decoded dict with unsorted keys is written sorted.
  const unsorted = decode(raw("d1:bi1e1:ai2ee"));
  assert.equal(text(encode(unsorted as never)), "d1:ai2e1:bi1ee");
});

Deno.test("bencode encode rejects non-integers and non-latin1 keys", () => {
  for (const bad of [1.5, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53)]) {
    assert.throws(() => encode(bad), BencodeError, String(bad));
    assert.throws(() => encode([bad]), BencodeError, String(bad));
    assert.throws(() => encode({ k: bad }), BencodeError, String(bad));
  }
  assert.throws(() => encode(0.1), /not a safe integer/);
  assert.throws(() => encode({ "\u20ac": 1 }), /not latin1/);
});

Deno.test("bencode accessors: typed values and messages naming the key", () => {
  const d = decode(raw("d1:ai1e1:b2:hi1:cle1:ddee"));
  const dict = asDict(d, "root");
  assert.equal(asInt(dict.a, "a"), 1);
  assert.deepEqual(asBytes(dict.b, "b"), raw("hi"));
  assert.equal(asText(dict.b, "b"), "hi");
  assert.deepEqual(asList(dict.c, "c"), []);
  assert.ok(isDict(asDict(dict.d, "d")));
  assert.equal(isDict(dict.a), false);
  assert.equal(isDict(dict.b), false);
  assert.equal(isDict(dict.c), false);
  assert.equal(isDict(undefined), false);
  assert.throws(() => asInt(dict.b, "x.b"), FieldError);
  assert.throws(
    () => asInt(dict.b, "x.b"),
    /^FieldError: x\.b is a string, not an integer$/,
  );
  assert.throws(
    () => asBytes(dict.a, "x.a"),
    /x\.a is an integer, not a string/,
  );
  assert.throws(
    () => asList(dict.d, "x.d"),
    /x\.d is a dictionary, not a list/,
  );
  assert.throws(
    () => asDict(dict.c, "x.c"),
    /x\.c is a list, not a dictionary/,
  );
  assert.throws(
    () => asDict(dict.q, "x.q"),
    /x\.q is missing, not a dictionary/,
  );
  // Invalid UTF-8 becomes U+FFFD rather than throwing.
  assert.equal(asText(new Uint8Array([0x61, 0xff]), "t"), "a\ufffd");
});
