// The listen socket and the session-wide peer sources: accepts incoming
// peers, reads their handshake and hands each to the torrent whose info-hash
// it names; owns the one DHT node (BEP 5) and Local Service Discovery
// (BEP 14) that every public torrent shares, and routes the peers LSD hears
// to the torrent (or metadata fetch) they belong to.

import * as path from "node:path";
import { type OpenedPeer, readHandshake } from "./peer/handshake_io.ts";
import { toHex } from "./metainfo/metainfo.ts";
import type { Torrent } from "./torrent.ts";
import type { PeerAddress } from "./tracker/types.ts";
import { DhtNode } from "./dht/dht_node.ts";
import { LocalDiscovery } from "./lsd/local_discovery.ts";

export interface DiscoverySettings {
  dht: boolean;
  dhtBootstrap: string[];
  lsd: boolean;
  /** Where the DHT routing table is kept between runs. */
  stateDir: string;
}

/** Something that takes peers for one info-hash: a torrent, or a magnet link's metadata fetch. */
export interface PeerSink {
  addPeers(peers: PeerAddress[], source: string): void;
  /** Takes over an incoming connection whose handshake named this info-hash. */
  acceptIncoming(opened: OpenedPeer, host: string, port: number): Promise<void>;
}

export class Session {
  dht: DhtNode | null = null;
  lsd: LocalDiscovery | null = null;
  private listener: Deno.TcpListener | null = null;
  /** Torrents and metadata fetches by info-hash (hex). */
  private sinks = new Map<string, PeerSink>();
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

  /**
   * Starts the DHT node (UDP on the listen port's number) and LSD, as
   * configured. A failure to start either is logged; the run goes on
   * without it.
   */
  async startDiscovery(
    settings: DiscoverySettings,
    listenPort: number,
  ): Promise<void> {
    if (settings.dht) {
      try {
        this.dht = await DhtNode.start({
          host: "0.0.0.0",
          port: listenPort,
          bootstrap: settings.dhtBootstrap,
          stateFile: path.join(settings.stateDir, "dht.dat"),
          log: this.log,
        });
      } catch (e) {
        this.log(`DHT is off: ${e instanceof Error ? e.message : e}`);
      }
    }
    if (settings.lsd) {
      try {
        this.lsd = await LocalDiscovery.start({
          listenPort,
          log: this.log,
          onPeer: (infoHashHex, host, port) =>
            this.sinks.get(infoHashHex)?.addPeers([{ host, port }], "lsd"),
        });
      } catch (e) {
        this.log(
          `local discovery is off: ${e instanceof Error ? e.message : e}`,
        );
      }
    }
  }

  add(torrent: Torrent): void {
    this.addSink(torrent.meta.infoHashHex, torrent);
  }

  remove(torrent: Torrent): void {
    this.removeSink(torrent.meta.infoHashHex, torrent);
  }

  /** Routes incoming and discovered peers for an info-hash (a magnet link's fetch has no Torrent yet). */
  addSink(infoHashHex: string, sink: PeerSink): void {
    this.sinks.set(infoHashHex, sink);
  }

  removeSink(infoHashHex: string, sink: PeerSink): void {
    if (this.sinks.get(infoHashHex) === sink) this.sinks.delete(infoHashHex);
  }

  async close(): Promise<void> {
    this.listener?.close();
    for (const conn of this.pending) conn.close();
    await Promise.all([this.acceptLoop, this.dht?.close(), this.lsd?.close()]);
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
      const sink = this.sinks.get(toHex(remote.infoHash));
      if (!sink) {
        conn.close();
        return;
      }
      const addr = conn.remoteAddr;
      const host = addr.hostname.startsWith("::ffff:")
        ? addr.hostname.slice(7)
        : addr.hostname;
      await sink.acceptIncoming({ conn, remote, leftover }, host, addr.port);
    } catch {
      if (this.pending.delete(conn)) {
        try {
          conn.close();
        } catch { /* closed by the handshake timeout */ }
      }
    }
  }
}
