// Progress output. On a terminal: one line redrawn a few times a second, with
// log lines printed above it. Otherwise (cron, pipes): timestamped log lines
// and a progress line every few seconds. --quiet: errors only.

import type { TorrentStats } from "../session/mod.ts";
import { formatBytes, formatDuration, formatRate } from "./format.ts";

export type ProgressMode = "terminal" | "log" | "quiet";

const encoder = new TextEncoder();
const REDRAW_MS = 250;

export class ProgressView {
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastLine = "";
  private lastStatusAt = -Infinity;

  constructor(
    readonly mode: ProgressMode,
    private logIntervalMs: number,
    private output: { writeSync(p: Uint8Array): number } = Deno.stdout,
    private logFile = "",
  ) {}

  /**
   * The view for this run: quiet, a terminal line, or log lines; on stderr
   * when stdout carries --json; log lines also appended to `logFile`.
   */
  static detect(
    quiet: boolean,
    logIntervalSeconds: number,
    sinks: { toStderr: boolean; logFile: string },
  ): ProgressView {
    const output = sinks.toStderr ? Deno.stderr : Deno.stdout;
    const mode: ProgressMode = quiet
      ? "quiet"
      : output.isTerminal()
      ? "terminal"
      : "log";
    return new ProgressView(
      mode,
      logIntervalSeconds * 1000,
      output,
      sinks.logFile,
    );
  }

  /** Prints a message line (not in quiet mode); always appends it to the log file. */
  log(line: string): void {
    if (this.logFile !== "") {
      try {
        Deno.writeTextFileSync(
          this.logFile,
          `${new Date().toISOString()} ${line}\n`,
          { append: true },
        );
      } catch { /* an unwritable log file must not stop the download */ }
    }
    if (this.mode === "quiet") return;
    if (this.mode === "terminal") {
      this.write(`\r\x1b[2K${line}\n${this.lastLine}`);
    } else {
      this.write(`${new Date().toISOString()} ${line}\n`);
    }
  }

  /**
   * A passing state (e.g. a recheck): redrawn on a terminal, logged at most
   * every log interval otherwise.
   */
  status(line: string): void {
    if (this.mode === "terminal") {
      this.lastLine = line;
      this.write(`\r\x1b[2K${line}`);
    } else if (this.mode === "log") {
      const now = performance.now();
      if (now - this.lastStatusAt < this.logIntervalMs) return;
      this.lastStatusAt = now;
      this.write(`${new Date().toISOString()} ${line}\n`);
    }
  }

  /** Redraws (or logs) from `stats` until stop(). */
  follow(stats: () => TorrentStats): void {
    if (this.mode === "quiet") return;
    const every = this.mode === "terminal" ? REDRAW_MS : this.logIntervalMs;
    this.timer = setInterval(() => this.show(stats()), every);
    Deno.unrefTimer(this.timer as unknown as number);
  }

  stop(final?: TorrentStats): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (final && this.mode !== "quiet") this.show(final);
    if (this.mode === "terminal" && this.lastLine) this.write("\n");
    this.lastLine = "";
  }

  private show(s: TorrentStats): void {
    const line = describe(s, this.mode === "terminal" ? columns() : 200);
    if (this.mode === "terminal") {
      this.lastLine = line;
      this.write(`\r\x1b[2K${line}`);
    } else {
      this.write(`${new Date().toISOString()} ${line}\n`);
    }
  }

  private write(text: string): void {
    try {
      this.output.writeSync(encoder.encode(text));
    } catch { /* a closed stdout must not stop the download */ }
  }
}

export function describe(s: TorrentStats, width: number): string {
  // Rounded down, so that 100.0% means done.
  const percent = s.totalBytes === 0
    ? 100
    : Math.floor((s.bytesDone / s.totalBytes) * 1000) / 10;
  const left = s.totalBytes - s.bytesDone;
  const eta = left === 0
    ? 0
    : s.downloadRate > 0
    ? left / s.downloadRate
    : Infinity;
  const text =
    `${percent.toFixed(1)}% ${formatBytes(s.bytesDone)}/${
      formatBytes(s.totalBytes)
    }` +
    `  down ${formatRate(s.downloadRate)}  up ${formatRate(s.uploadRate)}` +
    `  peers ${s.peers}/${s.knownPeers}  ETA ${formatDuration(eta)}`;
  return text.length > width ? text.slice(0, width) : text;
}

function columns(): number {
  try {
    return Deno.consoleSize().columns - 1;
  } catch {
    return 79;
  }
}
