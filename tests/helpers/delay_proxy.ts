// A TCP forwarder on 127.0.0.1 that holds every new connection for a while
// before it reaches the target: a test can make one peer answer later than
// another without changing the peer itself.

export interface DelayProxy {
  port: number;
  stop(): Promise<void>;
}

export function startDelayProxy(
  targetPort: number,
  delayMs: number,
): DelayProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const pipes: Promise<unknown>[] = [];
  const forward = async (inbound: Deno.Conn) => {
    open.add(inbound);
    await new Promise((r) => setTimeout(r, delayMs));
    let outbound: Deno.Conn;
    try {
      outbound = await Deno.connect({
        hostname: "127.0.0.1",
        port: targetPort,
      });
    } catch {
      open.delete(inbound);
      inbound.close();
      return;
    }
    open.add(outbound);
    const closeBoth = () => {
      for (const c of [inbound, outbound]) {
        open.delete(c);
        try {
          c.close();
        } catch { /* already closed */ }
      }
    };
    await Promise.allSettled([
      inbound.readable.pipeTo(outbound.writable, { preventClose: true }),
      outbound.readable.pipeTo(inbound.writable, { preventClose: true }),
    ].map((p) => p.finally(closeBoth)));
  };
  const accepting = (async () => {
    try {
      for await (const conn of listener) pipes.push(forward(conn));
    } catch { /* listener closed */ }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    stop: async () => {
      listener.close();
      await accepting;
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await Promise.allSettled(pipes);
    },
  };
}
