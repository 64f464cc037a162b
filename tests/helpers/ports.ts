// Loopback ports for test processes. Everything binds to 127.0.0.1 only (see INTEROP.md).

/** A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it back, close). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; throws after timeoutMs. */
export async function waitForTcp(
  port: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port,
        signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      });
      conn.close();
      return;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(
    `nothing accepted TCP on 127.0.0.1:${port} within ${timeoutMs} ms (${lastError})`,
  );
}
