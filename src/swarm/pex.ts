// BEP 11 peer exchange (ut_pex) for one torrent, or a magnet link's metadata
// fetch (which only takes): what we take from a peer's messages, and what we
// tell each peer of the others. Off for a private torrent (BEP 27) and when
// the config says so. Connections parse and send the messages
// (wire/ut_pex.ts); every limit is kept here.
//
// The one inbound rule: at most one message taken per peer every 45 s (BEP 11
// convention is one a minute; a message a little early is tolerated, more are
// ignored, not held against the peer), and at most 200 addresses of it (the
// convention is 50; libtorrent keeps at most 200 from one peer). The rest of a long
// list is dropped rather than the peer: a big first message is honest.

import { formatHostPort, type PeerAddress } from "../net/address.ts";
import {
  PEX_FLAG_REACHABLE,
  PEX_FLAG_SEED,
  PEX_INTERVAL_MS,
  PEX_MAX_PEERS,
  type PexEntry,
} from "../wire/ut_pex.ts";

/** A connection as peer exchange sees it. */
export interface PexView {
  /** Where the peer accepts connections, if known. */
  listenAddress: PeerAddress | null;
  seed: boolean;
  /** We dialled it: its listen address is known to work. */
  reachable: boolean;
  /** Its BEP 10 handshake names ut_pex: it may be sent messages. */
  speaksPex: boolean;
}

/** One message to send: addresses the peer has not heard of from us, and those gone since. */
export interface PexOutgoing<P> {
  peer: P;
  added: PexEntry[];
  dropped: PeerAddress[];
}

/** Messages of one peer taken at most once in this long. */
export const PEX_MIN_GAP_MS = 45_000;
/** Addresses taken from one message at most. */
export const PEX_MAX_TAKEN = 200;

interface PexPeerState {
  lastTakenAt: number;
  lastSentAt: number;
  /** The addresses we told the peer of and have not said are gone, by formatHostPort(). */
  told: Map<string, PeerAddress>;
}

export class PeerExchange<P> {
  private peers = new Map<P, PexPeerState>();

  constructor(readonly enabled: boolean) {}

  /** The addresses to take from a peer's message: none when it came too soon or PEX is off. */
  received(peer: P, added: PeerAddress[], now: number): PeerAddress[] {
    if (!this.enabled) return [];
    const state = this.stateOf(peer);
    if (now - state.lastTakenAt < PEX_MIN_GAP_MS) return [];
    state.lastTakenAt = now;
    return added.slice(0, PEX_MAX_TAKEN);
  }

  /**
   * The messages due now: each peer that speaks ut_pex hears at most once a
   * PEX_INTERVAL_MS of the connected peers it was not told of yet (never of
   * itself) and of those gone since, within PEX_MAX_PEERS of each; a peer
   * with nothing new is sent nothing. What is returned counts as sent.
   */
  due(
    connections: Iterable<P>,
    view: (peer: P) => PexView,
    now: number,
  ): PexOutgoing<P>[] {
    if (!this.enabled) return [];
    const views = [...connections].map((peer) => ({ peer, ...view(peer) }));
    const current = new Map<string, PexEntry>();
    for (const v of views) {
      if (!v.listenAddress) continue;
      const flags = (v.seed ? PEX_FLAG_SEED : 0) |
        (v.reachable ? PEX_FLAG_REACHABLE : 0);
      current.set(formatHostPort(v.listenAddress.host, v.listenAddress.port), {
        ...v.listenAddress,
        flags,
      });
    }
    const messages: PexOutgoing<P>[] = [];
    for (const v of views) {
      if (!v.speaksPex) continue;
      const state = this.stateOf(v.peer);
      if (now - state.lastSentAt < PEX_INTERVAL_MS) continue;
      const own = v.listenAddress
        ? formatHostPort(v.listenAddress.host, v.listenAddress.port)
        : "";
      const added = [...current]
        .filter(([key]) => key !== own && !state.told.has(key))
        .slice(0, PEX_MAX_PEERS);
      const dropped = [...state.told]
        .filter(([key]) => !current.has(key))
        .slice(0, PEX_MAX_PEERS);
      if (added.length === 0 && dropped.length === 0) continue;
      for (const [key, { host, port }] of added) {
        state.told.set(key, { host, port });
      }
      for (const [key] of dropped) state.told.delete(key);
      state.lastSentAt = now;
      messages.push({
        peer: v.peer,
        added: added.map(([, entry]) => entry),
        dropped: dropped.map(([, address]) => address),
      });
    }
    return messages;
  }

  /** The peer's connection closed. */
  forget(peer: P): void {
    this.peers.delete(peer);
  }

  private stateOf(peer: P): PexPeerState {
    let state = this.peers.get(peer);
    if (!state) {
      state = {
        lastTakenAt: -Infinity,
        lastSentAt: -Infinity,
        told: new Map(),
      };
      this.peers.set(peer, state);
    }
    return state;
  }
}
