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

export interface ClientResult {
  code: number;
  signal: Deno.Signal | null;
  output: string;
}

export class ClientProcess {
  private lines: string[] = [];
  private waiters: {
    pattern: RegExp;
    resolve: (m: RegExpMatchArray) => void;
  }[] = [];
  private readonly child: Deno.ChildProcess;
  private readonly done: Promise<ClientResult>;

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
      return {
        code: status.code,
        signal: status.signal,
        output: this.lines.join("\n"),
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

/** Runs the client to its end. */
export function runClient(
  args: string[],
  cwd?: string,
  lifetimeSec = 120,
): Promise<ClientResult> {
  return new ClientProcess(args, { cwd, lifetimeSec }).wait();
}
