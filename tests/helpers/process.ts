// An external program started by a test: bounded lifetime, output kept for error messages,
// stopped by its recorded PID (never by name) and awaited, so Deno's sanitizers stay on.

export interface ExternalProcessOptions {
  /** Short label for error messages, e.g. "libtorrent seeder". */
  name: string;
  cmd: string;
  args: string[];
  /** Hard limit: the process is killed after this many seconds even if the test runner dies. */
  lifetimeSec: number;
  cwd?: string;
  env?: Record<string, string>;
}

/** How long stop() waits after SIGTERM before the SIGKILL. */
const STOP_GRACE_SEC = 3;
const KEPT_LINES = 400;

interface LineWaiter {
  pattern: RegExp;
  resolve: (match: RegExpMatchArray) => void;
}

export class ExternalProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves when the process has exited and its output has been read to the end. */
  readonly exited: Promise<Deno.CommandStatus>;
  #lines: string[] = [];
  #waiters = new Set<LineWaiter>();
  #hasExited = false;

  private constructor(options: ExternalProcessOptions) {
    this.name = options.name;
    // coreutils `timeout` bounds the lifetime outside this process, so a crashed test run
    // leaves nothing behind. It makes itself a process-group leader and forwards SIGTERM to
    // the program, escalating to SIGKILL after the grace period on its own.
    const child = new Deno.Command("timeout", {
      args: [
        `--kill-after=${STOP_GRACE_SEC}s`,
        `${options.lifetimeSec}s`,
        options.cmd,
        ...options.args,
      ],
      cwd: options.cwd,
      // Tests wait on lines as they come: a Python helper (http.server, the
      // libtorrent scripts) must not hold them in a pipe's block buffer, which
      // it does unless the environment happens to say otherwise.
      env: { PYTHONUNBUFFERED: "1", ...options.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = child.pid;
    const drained = Promise.all([
      this.#readLines(child.stdout),
      this.#readLines(child.stderr),
    ]);
    this.exited = Promise.all([child.status, drained]).then(([status]) => {
      this.#hasExited = true;
      this.#waiters.clear();
      return status;
    });
  }

  static spawn(options: ExternalProcessOptions): ExternalProcess {
    return new ExternalProcess(options);
  }

  /** Waits for an output line (stdout or stderr) matching pattern, including lines already seen. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.#lines) {
      const match = line.match(pattern);
      if (match) return Promise.resolve(match);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    let waiter: LineWaiter | undefined;
    const matched = new Promise<RegExpMatchArray>((resolve) => {
      waiter = { pattern, resolve };
      this.#waiters.add(waiter);
    });
    const failed = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            this.error(
              `printed no line matching ${pattern} within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      this.exited.then((status) =>
        reject(
          this.error(
            `exited (${describeStatus(status)}) before printing ${pattern}`,
          ),
        )
      );
    });
    failed.catch(() => {}); // the race below reports it; this only silences the loser
    return Promise.race([matched, failed]).finally(() => {
      clearTimeout(timer);
      if (waiter) this.#waiters.delete(waiter);
    });
  }

  /** The last lines of output on one line, for error messages. */
  tail(lineCount = 8): string {
    const text = this.#lines.slice(-lineCount).join(" | ");
    return text.length > 1000 ? "…" + text.slice(-1000) : text;
  }

  /** An Error naming this process, with the tail of its output. */
  error(what: string): Error {
    return new Error(
      `${this.name} (pid ${this.pid}) ${what}; output: ${
        this.tail() || "(none)"
      }`,
    );
  }

  /** Waits for a normal exit with status 0, else throws with the tail of the output. */
  async succeeded(): Promise<void> {
    const status = await this.exited;
    if (!status.success) throw this.error(`failed (${describeStatus(status)})`);
  }

  /** SIGTERM, SIGKILL to the whole group if still alive after the grace period; awaits exit. */
  async stop(): Promise<Deno.CommandStatus> {
    if (!this.#hasExited) {
      signal(this.pid, "SIGTERM");
      const killTimer = setTimeout(() => {
        // timeout(1) should have escalated already; the group id is the recorded PID
        if (!this.#hasExited) signal(-this.pid, "SIGKILL");
      }, (STOP_GRACE_SEC + 2) * 1000);
      try {
        await this.exited;
      } finally {
        clearTimeout(killTimer);
      }
    }
    return await this.exited;
  }

  async #readLines(stream: ReadableStream<Uint8Array>): Promise<void> {
    let partial = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      const pieces = (partial + text).split(/\r?\n|\r/);
      partial = pieces.pop() ?? "";
      for (const line of pieces) this.#addLine(line);
    }
    if (partial) this.#addLine(partial);
  }

  #addLine(line: string): void {
    if (line.trim() === "") return;
    this.#lines.push(line);
    if (this.#lines.length > KEPT_LINES) {
      this.#lines.splice(0, this.#lines.length - KEPT_LINES);
    }
    for (const waiter of this.#waiters) {
      const match = line.match(waiter.pattern);
      if (match) waiter.resolve(match);
    }
  }
}

export function describeStatus(status: Deno.CommandStatus): string {
  if (status.signal) return `signal ${status.signal}`;
  // timeout(1) exits 124 when the lifetime ran out, 137 when it had to SIGKILL
  if (status.code === 124 || status.code === 137) {
    return `lifetime exceeded, code ${status.code}`;
  }
  return `code ${status.code}`;
}

function signal(pid: number, name: Deno.Signal): void {
  try {
    Deno.kill(pid, name);
  } catch (error) {
    // it may have exited between the check and the kill
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
