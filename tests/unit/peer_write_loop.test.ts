// The write loop both connection kinds send through: what is queued while a
// write is in flight goes out in the next single write; a failed write
// stops it; finish() lets the queued bytes out and starts nothing after, so
// a handed-over stream never has two writers.

import assert from "node:assert/strict";
import type { PeerStream } from "../../src/net/transport.ts";
import { WriteLoop } from "../../src/peer/write_loop.ts";
import { MessageId } from "../../src/wire/messages.ts";

/** A stream whose writes complete only when the test says so. */
class GatedStream implements PeerStream {
  readonly kind = "tcp";
  readonly remote = { host: "127.0.0.1", port: 1 };
  writes: Uint8Array[] = [];
  private pending: { resolve: () => void; reject: (e: Error) => void }[] = [];

  read(): Promise<number | null> {
    return Promise.resolve(null);
  }

  write(data: Uint8Array): Promise<void> {
    this.writes.push(data.slice());
    return new Promise((resolve, reject) =>
      this.pending.push({ resolve, reject })
    );
  }

  close(): void {}

  get waiting(): number {
    return this.pending.length;
  }

  async complete(error?: Error): Promise<void> {
    const next = this.pending.shift()!;
    if (error) next.reject(error);
    else next.resolve();
    for (let i = 0; i < 5; i++) await Promise.resolve();
  }
}

function loop() {
  const stream = new GatedStream();
  const events = { written: 0, failures: [] as unknown[] };
  const writer = new WriteLoop(stream, {
    written: () => events.written++,
    failed: (e) => events.failures.push(e),
  });
  return { stream, events, writer };
}

Deno.test("write loop: messages queued during a write go out together in the next one", async () => {
  const { stream, events, writer } = loop();
  writer.flush();
  assert.equal(stream.writes.length, 0, "nothing queued, nothing written");

  writer.out.simple(MessageId.Unchoke);
  writer.flush();
  writer.out.have(3);
  writer.flush();
  writer.out.have(4);
  writer.flush();
  assert.equal(stream.writes.length, 1);
  assert.equal(stream.writes[0].length, 5);

  await stream.complete();
  assert.equal(events.written, 1);
  assert.equal(stream.writes.length, 2, "the two haves in one write");
  assert.equal(stream.writes[1].length, 18);

  await stream.complete();
  assert.equal(events.written, 2);
  assert.equal(stream.waiting, 0, "the loop ends when the buffer is empty");
  writer.out.simple(MessageId.Choke);
  writer.flush();
  assert.equal(stream.writes.length, 3, "and starts again on the next flush");
});

Deno.test("write loop: a failed write stops it for good", async () => {
  const { stream, events, writer } = loop();
  writer.out.simple(MessageId.Interested);
  writer.flush();
  writer.out.have(1);
  const reset = new Error("connection reset");
  await stream.complete(reset);
  assert.deepEqual(events.failures, [reset]);
  assert.equal(events.written, 0);
  writer.flush();
  assert.equal(stream.writes.length, 1, "nothing written after the failure");
});

Deno.test("write loop: finish() sends what is queued, then nothing more; stop() drops the rest", async () => {
  const { stream, writer } = loop();
  writer.out.simple(MessageId.HaveNone);
  writer.flush();
  writer.out.have(7);
  let finished = false;
  const finishing = writer.finish().then(() => finished = true);
  writer.out.have(8);
  writer.flush();
  assert.equal(stream.writes.length, 1);
  await stream.complete();
  assert.equal(stream.writes.length, 2, "the queued haves still go out");
  assert.equal(stream.writes[1].length, 18);
  assert.equal(finished, false, "not before they are written");
  await stream.complete();
  await finishing;
  writer.out.have(9);
  writer.flush();
  assert.equal(stream.writes.length, 2, "no new loop after finish()");

  const second = loop();
  second.writer.out.simple(MessageId.Unchoke);
  second.writer.flush();
  second.writer.out.have(1);
  second.writer.stop();
  await second.stream.complete();
  assert.equal(second.events.written, 0);
  assert.equal(second.stream.writes.length, 1, "stopped: the rest stays");
});
