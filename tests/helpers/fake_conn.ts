// An in-memory peer stream (the transport seam), for unit tests of the
// connection code: the test pushes the bytes the peer "sends", and reads
// back what was written, decoded message by message.

import type { PeerStream } from "../../src/net/transport.ts";
import type { PeerAddress } from "../../src/net/address.ts";
import { OutBuffer } from "../../src/wire/messages.ts";
import { type WireHandler, WireReader } from "../../src/wire/reader.ts";

export class FakeConn implements PeerStream {
  readonly kind = "tcp";
  closed = false;
  private incoming: Uint8Array[] = [];
  private written: Uint8Array[] = [];
  private wake: (() => void) | null = null;

  constructor(
    readonly remote: PeerAddress = { host: "127.0.0.1", port: 6881 },
  ) {}

  /** Bytes for the next read(s). */
  push(bytes: Uint8Array): void {
    this.incoming.push(bytes.slice());
    this.wake?.();
  }

  /** Encodes messages with OutBuffer and pushes them. */
  send(build: (out: OutBuffer) => void): void {
    const out = new OutBuffer();
    build(out);
    this.push(out.take());
  }

  async read(into: Uint8Array): Promise<number | null> {
    while (this.incoming.length === 0) {
      if (this.closed) return null;
      await new Promise<void>((resolve) => this.wake = resolve);
      this.wake = null;
    }
    if (this.closed) return null;
    const next = this.incoming[0];
    const n = Math.min(into.length, next.length);
    into.set(next.subarray(0, n));
    if (n === next.length) this.incoming.shift();
    else this.incoming[0] = next.subarray(n);
    return n;
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Deno.errors.BadResource());
    this.written.push(bytes.slice());
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** Removes and returns the first n bytes written (a handshake, say). */
  takeWritten(n: number): Uint8Array {
    const all = new Uint8Array(this.written.reduce((t, c) => t + c.length, 0));
    let at = 0;
    for (const chunk of this.written) {
      all.set(chunk, at);
      at += chunk.length;
    }
    this.written = [all.slice(n)];
    return all.slice(0, n);
  }

  /** Every message written so far, as [handler method, ...arguments]; the buffer is emptied. */
  sentMessages(): unknown[][] {
    return decodeMessages(...this.written.splice(0));
  }
}

/** Peer-wire messages in `chunks`, as [handler method, ...arguments]. */
export function decodeMessages(...chunks: Uint8Array[]): unknown[][] {
  const seen: unknown[][] = [];
  const handler = new Proxy({}, {
    get: (_target, name) => (...args: unknown[]) =>
      seen.push([
        name,
        ...args.map((a) => a instanceof Uint8Array ? a.slice() : a),
      ]),
  }) as WireHandler;
  const reader = new WireReader(handler, {
    maxMessageLength: 1 << 20,
    bufferSize: 1 << 16,
  });
  for (const chunk of chunks) reader.feed(chunk);
  return seen;
}

/** Lets pending promise callbacks (reads, writes) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
}
