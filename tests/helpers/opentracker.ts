// Runs Debian's opentracker (HTTP and UDP tracker) on 127.0.0.1 for a test.
// Debian builds it whitelist-only, and as root it chroots into -d DIR before
// reading the whitelist, so the whitelist path is given relative to DIR.

export interface RunningOpentracker {
  httpUrl: string;
  udpUrl: string;
  stop(): Promise<void>;
}

/** Upper bound on the tracker's life, should the test process die without stop(). */
const LIFETIME_SECONDS = 300;
const STARTUP_TIMEOUT_MS = 5000;

export async function startOpentracker(
  infoHashesHex: string[],
): Promise<RunningOpentracker> {
  const binary = await findOnPath("opentracker");
  if (!binary) {
    throw new Error(
      "opentracker is not installed; install it (apt-get install opentracker) to run the tracker interop tests",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "opentracker-" });
  // Read after the chroot, possibly as `nobody`.
  await Deno.chmod(dir, 0o755);
  const whitelist = `${dir}/whitelist.txt`;
  await Deno.writeTextFile(
    whitelist,
    infoHashesHex.map((h) => h.toLowerCase() + "\n").join(""),
  );
  await Deno.chmod(whitelist, 0o644);

  const port = freeTcpPort();
  const args = ["-i", "127.0.0.1", "-p", String(port), "-P", String(port)];
  args.push("-d", dir, "-w", "/whitelist.txt", "-u", "nobody");
  const child = new Deno.Command("timeout", {
    args: ["--kill-after=5", String(LIFETIME_SECONDS), binary, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Drains stderr for as long as the process runs; resolves when it exits.
  const exited = child.output();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await exited;
    await Deno.remove(dir, { recursive: true });
  };

  try {
    await waitForTcp(port, exited);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    httpUrl: `http://127.0.0.1:${port}/announce`,
    udpUrl: `udp://127.0.0.1:${port}/announce`,
    stop,
  };
}

async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const info = await Deno.stat(`${dir}/${name}`);
      if (info.isFile) return `${dir}/${name}`;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Resolves once the port accepts a TCP connection; fails if the process exits first. */
async function waitForTcp(
  port: number,
  exited: Promise<Deno.CommandOutput>,
): Promise<void> {
  let exit: Deno.CommandOutput | undefined;
  exited.then((out) => exit = out, () => {});
  const deadline = performance.now() + STARTUP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (exit) {
      const why = new TextDecoder().decode(exit.stderr).trim().split("\n").at(
        -1,
      );
      throw new Error(
        `opentracker exited with code ${exit.code} at startup: ${why}`,
      );
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(
    `opentracker did not accept TCP on 127.0.0.1:${port} within ${STARTUP_TIMEOUT_MS} ms`,
  );
}
