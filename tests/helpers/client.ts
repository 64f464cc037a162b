// Runs our own client (main.ts) as a separate process, the way a user does:
// with the permission flags of the `client` task that `deno task download`
// runs (tools/client_command.ts), never others. It is spawned directly (not
// under `deno task` or `timeout`) so that a test's SIGKILL or SIGINT reaches
// the client itself; a timer bounds its life instead.

import { clientArgv } from "../../tools/client_command.ts";

// Tests may send to loopback only: the DHT's public bootstrap routers, LSD
// multicast and the router's port mapping stay off unless a test (inside its
// own network namespace, or with a loopback-only config) asks for them.
const ISOLATED = ["--no-dht", "--no-lsd", "--no-port-mapping"];

/** One line of the client's --events file: an engine event or a progress sample. */
// deno-lint-ignore no-explicit-any
export type ClientEvent = { type: string; time: string; [key: string]: any };

export interface ClientResult {
  code: number;
  signal: Deno.Signal | null;
  output: string;
  /** Everything the client wrote to its --events file. */
  events: ClientEvent[];
}

export class ClientProcess {
  private lines: string[] = [];
  private waiters: {
    pattern: RegExp;
    resolve: (m: RegExpMatchArray) => void;
  }[] = [];
  private readonly child: Deno.ChildProcess;
  private readonly done: Promise<ClientResult>;
  /** The client's --events file, read as it grows. */
  private readonly eventsFile = Deno.makeTempFileSync({
    prefix: "btclient-events-",
  });
  private eventsRead = 0;
  private eventsPending = "";
  private readonly seenEvents: ClientEvent[] = [];

  constructor(
    args: string[],
    options: {
      cwd?: string;
      lifetimeSec?: number;
      network?: boolean;
      /** Run inside this network namespace; `ip netns exec` execs the client, so signals reach it. */
      netns?: string;
    } = {},
  ) {
    const [deno, ...denoArgs] = clientArgv([
      ...args,
      ...(options.network ? [] : ISOLATED),
      ...(args[0] === "download" || args[0] === "seed"
        ? ["--events", this.eventsFile]
        : []),
    ]);
    const command = options.netns === undefined
      ? { cmd: deno, args: denoArgs }
      : {
        cmd: "ip",
        args: ["netns", "exec", options.netns, deno, ...denoArgs],
      };
    this.child = new Deno.Command(command.cmd, {
      args: command.args,
      cwd: options.cwd,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lifetime = setTimeout(
      () => this.kill("SIGKILL"),
      (options.lifetimeSec ?? 120) * 1000,
    );
    const drained = Promise.all([
      this.read(this.child.stdout),
      this.read(this.child.stderr),
    ]);
    this.done = Promise.all([this.child.status, drained]).then(([status]) => {
      clearTimeout(lifetime);
      this.readEvents();
      Deno.removeSync(this.eventsFile);
      return {
        code: status.code,
        signal: status.signal,
        output: this.lines.join("\n"),
        events: this.seenEvents,
      };
    });
  }

  /** Resolves with the first output line matching `pattern` (seen or still to come). */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const m = line.match(pattern);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `client printed no line matching ${pattern}:\n${this.output}`,
          ),
        );
      }, timeoutMs);
      const done = (m: RegExpMatchArray) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.waiters.push({ pattern, resolve: done });
      this.done.then(() => {
        if (this.waiters.some((w) => w.resolve === done)) {
          clearTimeout(timer);
          reject(
            new Error(
              `client exited before printing ${pattern}:\n${this.output}`,
            ),
          );
        }
      });
    });
  }

  /**
   * Resolves with the first event (seen or still to come) that `matches`:
   * what tests wait on instead of log text, where the engine says it in an
   * event.
   */
  async waitForEvent(
    matches: (event: ClientEvent) => boolean,
    timeoutMs: number,
  ): Promise<ClientEvent> {
    const deadline = performance.now() + timeoutMs;
    let exited = false;
    this.done.then(() => exited = true);
    while (true) {
      if (!exited) this.readEvents();
      const found = this.seenEvents.find(matches);
      if (found) return found;
      if (exited) {
        throw new Error(
          `client exited before the event awaited:\n${this.output}`,
        );
      }
      if (performance.now() > deadline) {
        throw new Error(`client sent no such event:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Takes the complete lines the client has added to its events file. */
  private readEvents(): void {
    let bytes: Uint8Array;
    try {
      bytes = Deno.readFileSync(this.eventsFile);
    } catch {
      return;
    }
    if (bytes.length <= this.eventsRead) return;
    this.eventsPending += new TextDecoder().decode(
      bytes.subarray(this.eventsRead),
    );
    this.eventsRead = bytes.length;
    const lines = this.eventsPending.split("\n");
    this.eventsPending = lines.pop()!;
    for (const line of lines) this.seenEvents.push(JSON.parse(line));
  }

  /** The events so far (read from the file now). */
  get events(): readonly ClientEvent[] {
    this.readEvents();
    return this.seenEvents;
  }

  get pid(): number {
    return this.child.pid;
  }

  get output(): string {
    return this.lines.join("\n");
  }

  kill(signal: Deno.Signal): void {
    try {
      this.child.kill(signal);
    } catch { /* already exited */ }
  }

  wait(): Promise<ClientResult> {
    return this.done;
  }

  private async read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const line of parts) this.addLine(line);
    }
    if (pending) this.addLine(pending);
  }

  private addLine(line: string): void {
    this.lines.push(line);
    for (const w of [...this.waiters]) {
      const m = line.match(w.pattern);
      if (m) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve(m);
      }
    }
  }
}

/** The addresses the run received data from (its "stopped" events). */
export function sourcesOf(result: ClientResult): string[] {
  return result.events.filter((e) => e.type === "stopped").flatMap((e) =>
    e.sources.filter((s: { bytes: number }) => s.bytes > 0).map((
      s: { address: string },
    ) => s.address)
  );
}

/** A progress sample with at least `from` and below `to` percent done. */
export function progressBetween(
  from: number,
  to: number,
): (event: ClientEvent) => boolean {
  return (e) => {
    if (e.type !== "progress" || e.totalBytes === 0) return false;
    const percent = (e.bytesDone / e.totalBytes) * 100;
    return percent >= from && percent < to;
  };
}

/** Runs the client to its end. */
export function runClient(
  args: string[],
  cwd?: string,
  lifetimeSec = 120,
): Promise<ClientResult> {
  return new ClientProcess(args, { cwd, lifetimeSec }).wait();
}
