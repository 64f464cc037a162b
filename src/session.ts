// The listen socket: accepts incoming peers, reads their handshake and hands
// each to the torrent whose info-hash it names. One torrent for now; the
// session is where many torrents will share the port and peer budget.

import { readHandshake } from "./peer/handshake_io.ts";
import { toHex } from "./metainfo/metainfo.ts";
import type { Torrent } from "./torrent.ts";

export class Session {
  private listener: Deno.TcpListener | null = null;
  private torrents = new Map<string, Torrent>();
  private acceptLoop: Promise<void> | null = null;
  private pending = new Set<Deno.Conn>();

  constructor(
    private handshakeTimeoutMs: number,
    private log: (line: string) => void,
  ) {}

  /** Listens on the port; if it is taken, on any free port. Returns the port. */
  listen(port: number): number {
    try {
      this.listener = Deno.listen({ hostname: "0.0.0.0", port });
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
      this.listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
      this.log(
        `port ${port} is in use; listening on ${this.listener.addr.port} instead`,
      );
    }
    this.acceptLoop = this.accept(this.listener);
    return this.listener.addr.port;
  }

  add(torrent: Torrent): void {
    this.torrents.set(torrent.meta.infoHashHex, torrent);
  }

  remove(torrent: Torrent): void {
    if (this.torrents.get(torrent.meta.infoHashHex) === torrent) {
      this.torrents.delete(torrent.meta.infoHashHex);
    }
  }

  async close(): Promise<void> {
    this.listener?.close();
    for (const conn of this.pending) conn.close();
    await this.acceptLoop;
  }

  private async accept(listener: Deno.TcpListener): Promise<void> {
    try {
      for await (const conn of listener) this.greet(conn);
    } catch { /* the listener was closed */ }
  }

  private async greet(conn: Deno.TcpConn): Promise<void> {
    this.pending.add(conn);
    try {
      const { remote, leftover } = await readHandshake(
        conn,
        this.handshakeTimeoutMs,
      );
      this.pending.delete(conn);
      const torrent = this.torrents.get(toHex(remote.infoHash));
      if (!torrent) {
        conn.close();
        return;
      }
      const addr = conn.remoteAddr;
      const host = addr.hostname.startsWith("::ffff:")
        ? addr.hostname.slice(7)
        : addr.hostname;
      await torrent.acceptIncoming({ conn, remote, leftover }, host, addr.port);
    } catch {
      if (this.pending.delete(conn)) {
        try {
          conn.close();
        } catch { /* closed by the handshake timeout */ }
      }
    }
  }
}
