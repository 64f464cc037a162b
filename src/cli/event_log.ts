// --events FILE: every engine event as one JSON line, with the time, and a
// progress sample (the totals of the torrents running) each log interval:
// what a script or a test reads instead of the text meant for people.

import type { EngineEvent, TorrentStats } from "../session/mod.ts";

const encoder = new TextEncoder();

export class EventLog {
  private timer: ReturnType<typeof setInterval> | undefined;

  private constructor(private file: Deno.FsFile) {}

  static open(path: string): EventLog {
    return new EventLog(
      Deno.openSync(path, { append: true, create: true, write: true }),
    );
  }

  write(event: EngineEvent | ({ type: "progress" } & TorrentStats)): void {
    const line = JSON.stringify({ time: new Date().toISOString(), ...event });
    try {
      this.file.writeSync(encoder.encode(`${line}\n`));
    } catch { /* a full disk must not stop the download */ }
  }

  /** Samples `stats` every intervalMs until close(). */
  follow(stats: () => TorrentStats, intervalMs: number): void {
    this.timer = setInterval(
      () => this.write({ type: "progress", ...stats() }),
      intervalMs,
    );
    Deno.unrefTimer(this.timer as unknown as number);
  }

  close(): void {
    clearInterval(this.timer);
    this.file.close();
  }
}
