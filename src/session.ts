// The listen socket and the session-wide peer sources: accepts incoming
// peers, reads their handshake and hands each to the torrent whose info-hash
// it names; owns the one DHT node (BEP 5) and Local Service Discovery
// (BEP 14) that every public torrent shares, and routes the peers LSD hears
// to the torrent (or metadata fetch) they belong to. A failure of our own
// while taking a peer, or of the listen socket, is logged with its stack and
// counted; the accept loop keeps going.

import * as path from "node:path";
import { listenTcp } from "./net/tcp.ts";
import type { PeerStream, StreamListener } from "./net/transport.ts";
import { InternalErrors } from "./peer/faults.ts";
import { type OpenedPeer, readHandshake } from "./peer/handshake_io.ts";
import { WireError } from "./wire/handshake.ts";
import { toHex } from "./metainfo/metainfo.ts";
import type { Torrent } from "./torrent.ts";
import type { PeerAddress } from "./net/address.ts";
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

/** Wait before accepting again after accept() failed (out of file descriptors...); doubles while it keeps failing. */
const ACCEPT_RETRY_MS = 1000;
const MAX_ACCEPT_RETRY_MS = 60_000;

export class Session {
  dht: DhtNode | null = null;
  lsd: LocalDiscovery | null = null;
  readonly internalErrors: InternalErrors;
  private listener: StreamListener | null = null;
  /** Torrents and metadata fetches by info-hash (hex). */
  private sinks = new Map<string, PeerSink>();
  private acceptLoop: Promise<void> | null = null;
  private pending = new Set<PeerStream>();
  private closing = false;
  private closed!: Promise<void>;
  private markClosed!: () => void;

  constructor(
    private handshakeTimeoutMs: number,
    private log: (line: string) => void,
    private sleep: (ms: number) => Promise<void> = unrefSleep,
  ) {
    this.internalErrors = new InternalErrors(log);
    this.closed = new Promise((resolve) => this.markClosed = resolve);
  }

  /** Listens on the port; if it is taken, on any free port. Returns the port. */
  listen(port: number): number {
    try {
      this.listener = listenTcp("0.0.0.0", port);
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
      this.listener = listenTcp("0.0.0.0", 0);
      this.log(
        `port ${port} is in use; listening on ${this.listener.port} instead`,
      );
    }
    this.serve(this.listener);
    return this.listener.port;
  }

  /** Accepts peers from the listener until close(). */
  serve(listener: StreamListener): void {
    this.listener = listener;
    this.acceptLoop = this.accept(listener);
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
    this.closing = true;
    this.markClosed();
    this.listener?.close();
    for (const conn of this.pending) conn.close();
    await Promise.all([this.acceptLoop, this.dht?.close(), this.lsd?.close()]);
  }

  private async accept(listener: StreamListener): Promise<void> {
    let retryMs = ACCEPT_RETRY_MS;
    while (!this.closing) {
      let conn: PeerStream;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (this.closing) return;
        this.internalErrors.report(
          `accepting peers (trying again in ${retryMs / 1000} s)`,
          e,
        );
        await Promise.race([this.sleep(retryMs), this.closed]);
        retryMs = Math.min(MAX_ACCEPT_RETRY_MS, retryMs * 2);
        continue;
      }
      retryMs = ACCEPT_RETRY_MS;
      this.greet(conn);
    }
  }

  private async greet(conn: PeerStream): Promise<void> {
    this.pending.add(conn);
    let opened: OpenedPeer;
    try {
      const { remote, leftover } = await readHandshake(
        conn,
        this.handshakeTimeoutMs,
      );
      opened = { conn, remote, leftover };
    } catch (e) {
      // Not a BitTorrent peer, too slow, or gone: nothing to report.
      if (!isConnectionError(e)) {
        this.internalErrors.report("reading an incoming handshake", e);
      }
      if (this.pending.delete(conn)) conn.close();
      return;
    }
    this.pending.delete(conn);
    try {
      const sink = this.sinks.get(toHex(opened.remote.infoHash));
      if (!sink) return conn.close();
      await sink.acceptIncoming(opened, conn.remote.host, conn.remote.port);
    } catch (e) {
      this.internalErrors.report("taking an incoming peer", e);
      conn.close();
    }
  }
}

/** A handshake that was not one, or a socket that failed: the peer's side, not a bug. */
function isConnectionError(e: unknown): boolean {
  return e instanceof WireError ||
    Object.values(Deno.errors).some((kind) => e instanceof kind);
}

/** A wait that does not keep the process alive. */
function unrefSleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    Deno.unrefTimer(timer);
  });
}
