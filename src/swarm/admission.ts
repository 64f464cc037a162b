// Who gets a connection, for a torrent and for a magnet link's metadata
// fetch alike: dials the addresses the swarm picks, takes incoming peers and
// peers handed over by a metadata fetch, frees a slot at the connection limit
// for a newcomer by dropping the worst-rated peer (where the owner can rate
// them), and keeps out ourselves, banned addresses and peer ids, and
// addresses whose handshake named another torrent. What an admitted
// connection does is its owner's business: the owner makes it (`start`) and
// reports its end (`closed`).

import type { SwarmEvent } from "./events.ts";
import type { CloseCause, InternalErrors } from "../peer/faults.ts";
import {
  dialPeer,
  InfoHashMismatch,
  type OpenedPeer,
  peerIdKey,
  sameBytes,
} from "../peer/handshake_io.ts";
import type { TakenOverStream } from "../peer/prior_state.ts";
import { BLOCK_SIZE } from "../pieces/geometry.ts";
import { encodeHandshake, type Handshake } from "../wire/handshake.ts";
import { type ConnectionFigures, score } from "./rating.ts";
import { type PeerRecord, Swarm, type SwarmOptions } from "./swarm.ts";

/** What admission needs of a live connection. */
export interface AdmittedConnection {
  /** A small integer naming the connection (block and dictionary senders). */
  readonly num: number;
  /** Closes it; its owner then calls Admission.closed(). */
  close(reason: string, cause?: CloseCause): void;
}

/** A connection the owner made for an admitted peer, and its read loop, not started yet. */
export interface NewConnection<C> {
  connection: C;
  /** Runs until the connection ends; never rejects. */
  run: () => Promise<void>;
}

export interface AdmissionOptions<C extends AdmittedConnection> {
  /** The limits of the swarm this admission dials for. */
  limits: Omit<SwarmOptions, "dial">;
  /** Our BEP 3 handshake (the info-hash and our peer id). */
  handshake: Handshake;
  connectTimeoutMs: number;
  /**
   * Makes the connection of an admitted peer (`dialled`: its port is the one
   * it listens on); null turns the peer away, and its stream is closed.
   */
  start: (
    opened: OpenedPeer,
    record: PeerRecord,
    dialled: boolean,
    takenOver?: TakenOverStream,
  ) => NewConnection<C> | null;
  /**
   * A connection's download rate now. With it, a newcomer at the connection
   * limit replaces the worst-rated peer when that one rates below a newcomer;
   * without it, a newcomer at the limit is turned away.
   */
  currentRate?: (connection: C) => number;
  internalErrors: InternalErrors;
  /** Bans and protocol drops, for the engine's events. */
  onEvent: (event: SwarmEvent) => void;
  /** Each dial's outcome: connected (handshake read) or not. */
  dialled?: (record: PeerRecord, reached: boolean) => void;
  log: (line: string) => void;
  /** The clock; performance.now() unless a test gives its own. */
  now?: () => number;
  /** Opens a connection and handshakes; dialPeer() unless a test gives its own. */
  connect?: typeof dialPeer;
}

/** Closed connections whose records are kept for blame (a piece's senders, smart ban's evidence). */
export const CLOSED_REMEMBERED = 4096;

interface Admitted<C> {
  record: PeerRecord;
  peerId: Uint8Array;
  /** Null once closed or handed over. */
  connection: C | null;
}

export class Admission<C extends AdmittedConnection> {
  /** The known addresses; it asks this admission to dial them. */
  readonly swarm: Swarm;
  readonly connections = new Set<C>();
  /** Live connections, and the last CLOSED_REMEMBERED closed ones, by number. */
  private admitted = new Map<number, Admitted<C>>();
  private closedNums = new Set<number>();
  /** Peer ids of banned peers: one that was dialled comes back from another port. */
  private bannedPeerIds = new Set<string>();
  private tasks = new Map<C, Promise<void>>();
  private stopped = false;
  private readonly now: () => number;
  private readonly connect: typeof dialPeer;

  constructor(private options: AdmissionOptions<C>) {
    this.now = options.now ?? (() => performance.now());
    this.connect = options.connect ?? dialPeer;
    this.swarm = new Swarm({
      ...options.limits,
      dial: (record) => this.dial(record),
    });
  }

  /** Dials a record the swarm picked (the swarm's `dial`). */
  async dial(record: PeerRecord): Promise<void> {
    if (this.stopped) return;
    let opened: OpenedPeer;
    try {
      opened = await this.connect(
        record.host,
        record.port,
        this.options.handshake,
        this.options.connectTimeoutMs,
      );
    } catch (e) {
      if (e instanceof InfoHashMismatch) {
        this.options.onEvent({
          type: "peerOfOtherTorrent",
          address: record.key,
        });
        this.swarm.servesOtherTorrent(record);
      }
      this.swarm.dialFailed(record, this.now());
      this.options.dialled?.(record, false);
      return;
    }
    this.options.dialled?.(record, true);
    if (this.stopped || !this.swarm.hasRoomFor(record)) {
      return opened.conn.close();
    }
    if (this.isBanned(opened)) {
      // A banned peer at an address we knew: that address is its too.
      opened.conn.close();
      this.swarm.ban(record);
      return;
    }
    this.swarm.connectedTo(record.host, record.port, record.source);
    this.admit(opened, record, true);
  }

  /** Takes over a connection whose handshake the session's listener read, and answers it. */
  async accept(opened: OpenedPeer, host: string, port: number): Promise<void> {
    if (this.stopped || this.isBanned(opened) || !this.makeRoom()) {
      return opened.conn.close();
    }
    try {
      await opened.conn.write(encodeHandshake(this.options.handshake));
    } catch {
      return opened.conn.close();
    }
    if (this.stopped || !this.swarm.hasRoom) return opened.conn.close();
    const record = this.swarm.connectedTo(host, port, "incoming");
    // An incoming peer's port is ephemeral: it cannot be dialled back.
    record.excluded = true;
    this.admit(opened, record, false);
  }

  /** Takes over a live connection from a magnet link's metadata fetch. */
  adopt(
    opened: OpenedPeer,
    host: string,
    port: number,
    source: string,
    takenOver: TakenOverStream,
  ): void {
    try {
      if (this.stopped || this.isBanned(opened) || !this.makeRoom()) {
        return opened.conn.close();
      }
      const dialled = source !== "incoming";
      const record = this.swarm.connectedTo(host, port, source);
      if (!dialled) record.excluded = true;
      this.admit(opened, record, dialled, takenOver);
    } catch (e) {
      this.options.internalErrors.report(`taking over ${host}:${port}`, e);
      opened.conn.close();
    }
  }

  /**
   * A connection ended (its owner calls this from its close handling): what
   * it did joins its address's rating, a violation is logged. False when it
   * was not live here (closed before, or handed over).
   */
  closed(
    connection: C,
    reason: string,
    cause: CloseCause,
    figures: ConnectionFigures | null,
  ): boolean {
    if (!this.connections.delete(connection)) return false;
    const entry = this.admitted.get(connection.num)!;
    this.forget(connection.num, entry);
    this.swarm.disconnected(entry.record, this.now(), cause, figures);
    if (cause === "violation") {
      this.options.onEvent({
        type: "peerDropped",
        address: entry.record.key,
        reason,
      });
    }
    return true;
  }

  /** A connection left for another owner (a metadata fetch's hand-over): no longer ours to rate or await. */
  handedOver(connection: C): void {
    if (!this.connections.delete(connection)) return;
    this.tasks.delete(connection);
    this.forget(connection.num, this.admitted.get(connection.num)!);
  }

  /** The record of a live or recently closed connection. */
  recordOf(num: number): PeerRecord | undefined {
    return this.admitted.get(num)?.record;
  }

  /** A piece that failed its hash had blocks of this connection: returns its address's failed pieces so far. */
  failedPiece(num: number): number {
    const record = this.recordOf(num);
    return record ? ++record.rating.failedPieces : 0;
  }

  /** Bans a connection's address and peer id for the rest of the run, and closes it. */
  ban(num: number, reason: string): void {
    const entry = this.admitted.get(num);
    if (!entry || entry.record.rating.banned) return;
    const { record } = entry;
    this.swarm.ban(record);
    this.bannedPeerIds.add(peerIdKey(entry.peerId));
    this.options.onEvent({
      type: "peerBanned",
      address: record.key,
      ...(record.client ? { client: record.client } : {}),
      reason,
    });
    entry.connection?.close(`banned: ${reason}`, "violation");
  }

  /** Admits nobody from now on (dials in flight are closed when they connect). */
  stop(): void {
    this.stopped = true;
  }

  /** Resolves when every connection's read loop has ended. */
  async drained(): Promise<void> {
    await Promise.allSettled([...this.tasks.values()]);
  }

  /** Starts a connection; a failure of ours here is logged, not blamed on the peer. */
  private admit(
    opened: OpenedPeer,
    record: PeerRecord,
    dialled: boolean,
    takenOver?: TakenOverStream,
  ): void {
    try {
      if (sameBytes(opened.remote.peerId, this.options.handshake.peerId)) {
        // We dialled ourselves (a tracker returned our own address).
        record.excluded = true;
        this.swarm.disconnected(record, this.now(), "ended", null);
        return opened.conn.close();
      }
      const made = this.options.start(opened, record, dialled, takenOver);
      if (!made) {
        this.swarm.disconnected(record, this.now(), "ended", null);
        return opened.conn.close();
      }
      // Nothing below throws: the connection runs, or was never added.
      const { connection, run } = made;
      this.connections.add(connection);
      this.admitted.set(connection.num, {
        record,
        peerId: opened.remote.peerId,
        connection,
      });
      const task = run();
      this.tasks.set(connection, task);
      task.finally(() => {
        if (this.tasks.get(connection) === task) this.tasks.delete(connection);
      });
    } catch (e) {
      this.options.internalErrors.report(
        `starting a connection to ${record.key}`,
        e,
      );
      opened.conn.close();
      if (record.connected) {
        this.swarm.disconnected(record, this.now(), "internal", null);
      }
    }
  }

  /** A connection is no longer live; its record stays a while for blame. */
  private forget(num: number, entry: Admitted<C>): void {
    entry.connection = null;
    this.closedNums.add(num);
    if (this.closedNums.size > CLOSED_REMEMBERED) {
      const [oldest] = this.closedNums;
      this.closedNums.delete(oldest);
      this.admitted.delete(oldest);
    }
  }

  private isBanned(opened: OpenedPeer): boolean {
    return this.bannedPeerIds.has(peerIdKey(opened.remote.peerId));
  }

  /**
   * Frees a slot for a newcomer at the connection limit by dropping the
   * worst-rated connected peer, if it rates below a newcomer (0).
   */
  private makeRoom(): boolean {
    if (this.swarm.hasRoom) return true;
    const rate = this.options.currentRate;
    if (!rate) return false;
    let worst: C | null = null;
    let worstScore = 0;
    for (const connection of this.connections) {
      const s = score(this.admitted.get(connection.num)!.record.rating) +
        10 * Math.log2(1 + rate(connection) / BLOCK_SIZE);
      if (s < worstScore) {
        worst = connection;
        worstScore = s;
      }
    }
    if (!worst) return false;
    worst.close("dropped for a better-rated peer at the connection limit");
    return this.swarm.hasRoom;
  }
}
