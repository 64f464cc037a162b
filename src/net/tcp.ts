// TCP, the first transport: dialing bounded by an abort signal, and a
// listener that yields each accepted connection as a stream.

import { type PeerAddress, unmapIPv4 } from "./address.ts";
import type { PeerStream, StreamListener } from "./transport.ts";

/** Connects to host:port; rejects when the signal aborts first. */
export async function dialTcp(
  host: string,
  port: number,
  signal: AbortSignal,
): Promise<PeerStream> {
  return new TcpStream(await Deno.connect({ hostname: host, port, signal }));
}

/** Listens on hostname:port (0: any free port); throws Deno.errors.AddrInUse when it is taken. */
export function listenTcp(hostname: string, port: number): StreamListener {
  return new TcpListener(Deno.listen({ hostname, port }));
}

class TcpStream implements PeerStream {
  readonly kind = "tcp";
  readonly remote: PeerAddress;
  private closed = false;

  constructor(private conn: Deno.TcpConn) {
    const { hostname, port } = conn.remoteAddr;
    this.remote = { host: unmapIPv4(hostname), port };
  }

  read(into: Uint8Array): Promise<number | null> {
    // Handed straight through: no await of ours on the hot path.
    return this.conn.read(into);
  }

  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) off += await this.conn.write(data.subarray(off));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* the socket failed and is gone already */ }
  }
}

class TcpListener implements StreamListener {
  constructor(private listener: Deno.TcpListener) {}

  get port(): number {
    return this.listener.addr.port;
  }

  async accept(): Promise<PeerStream> {
    return new TcpStream(await this.listener.accept());
  }

  close(): void {
    try {
      this.listener.close();
    } catch { /* closed already */ }
  }
}
