// A fixed-size set of piece indices in the BEP 3 wire layout: piece 0 is the
// high bit of byte 0, and spare bits at the end are zero.

export class Bitfield {
  readonly bytes: Uint8Array;
  private setCount = 0;

  constructor(readonly size: number) {
    this.bytes = new Uint8Array(Math.ceil(size / 8));
  }

  /** Builds a bitfield from wire bytes; null when the length or spare bits are wrong. */
  static fromWire(bits: Uint8Array, size: number): Bitfield | null {
    const field = new Bitfield(size);
    if (bits.length !== field.bytes.length) return null;
    const spare = field.bytes.length * 8 - size;
    if (spare > 0 && (bits[bits.length - 1] & ((1 << spare) - 1)) !== 0) {
      return null;
    }
    field.bytes.set(bits);
    for (const b of bits) field.setCount += popcount(b);
    return field;
  }

  static full(size: number): Bitfield {
    const field = new Bitfield(size);
    for (let i = 0; i < size; i++) field.set(i);
    return field;
  }

  get count(): number {
    return this.setCount;
  }

  get complete(): boolean {
    return this.setCount === this.size;
  }

  has(index: number): boolean {
    return (this.bytes[index >> 3] & (0x80 >> (index & 7))) !== 0;
  }

  set(index: number): void {
    if (this.has(index)) return;
    this.bytes[index >> 3] |= 0x80 >> (index & 7);
    this.setCount++;
  }

  clear(index: number): void {
    if (!this.has(index)) return;
    this.bytes[index >> 3] &= ~(0x80 >> (index & 7));
    this.setCount--;
  }
}

function popcount(b: number): number {
  let n = 0;
  for (; b; b &= b - 1) n++;
  return n;
}
