// A connection's outgoing side, shared by both connection kinds (the
// torrent's PeerConnection and a magnet fetch's MetadataPeer): messages are
// built into one OutBuffer, and one loop at a time writes it to the stream,
// everything queued so far in one write, so that a burst of messages costs
// one syscall, not one each.

import type { PeerStream } from "../net/transport.ts";
import { OutBuffer } from "../wire/messages.ts";

export interface WriteLoopEvents {
  /** A write completed; the buffer has room again. Must not throw. */
  written(): void;
  /** A write failed: the stream is broken and nothing more is written. */
  failed(error: unknown): void;
}

export class WriteLoop {
  /** Where messages are built; flush() sends them. */
  readonly out = new OutBuffer();
  /** What is queued still goes out, but no new loop starts. */
  private finishing = false;
  private stopped = false;
  private inFlight: Promise<void> | null = null;

  constructor(
    private stream: PeerStream,
    private events: WriteLoopEvents,
  ) {}

  /** Starts writing what is queued, unless a loop is running (it takes the new bytes too). */
  flush(): void {
    if (
      this.inFlight || this.finishing || this.stopped || this.out.length === 0
    ) {
      return;
    }
    this.inFlight = this.run();
  }

  /**
   * Writes what is queued and then nothing more: resolves once it is all
   * out (or writing failed). The stream can then pass to another owner
   * without two writers interleaving on it.
   */
  async finish(): Promise<void> {
    this.flush();
    this.finishing = true;
    await this.inFlight;
  }

  /** Writes nothing more (the connection is closed); a write in flight completes or fails. */
  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    try {
      while (this.out.length > 0 && !this.stopped) {
        await this.stream.write(this.out.take());
        if (!this.stopped) this.events.written();
      }
    } catch (e) {
      this.stopped = true;
      this.events.failed(e);
    } finally {
      this.inFlight = null;
    }
  }
}
