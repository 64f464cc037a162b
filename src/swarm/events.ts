// What a torrent's swarm reports to the engine as typed events (the engine
// adds which torrent), and their one line of text.

export type SwarmEvent =
  | {
    type: "peerBanned";
    /** HOST:PORT */
    address: string;
    /** Decoded from its peer id, when known. */
    client?: string;
    reason: string;
  }
  /** Dropped for breaking the protocol (other closes are not events). */
  | { type: "peerDropped"; address: string; reason: string }
  | { type: "pieceFailed"; piece: number }
  /** A dialled peer's handshake named another info-hash: it is not dialled again. */
  | { type: "peerOfOtherTorrent"; address: string };

export function describeSwarmEvent(event: SwarmEvent): string {
  switch (event.type) {
    case "peerBanned":
      return `banned ${event.address}${
        event.client ? ` (${event.client})` : ""
      }: ${event.reason}`;
    case "peerDropped":
      return `dropped peer ${event.address}: ${event.reason}`;
    case "pieceFailed":
      return `piece ${event.piece} failed its hash check; fetching it again`;
    case "peerOfOtherTorrent":
      return `peer ${event.address} serves another torrent (its handshake named another info-hash); not dialling it again`;
  }
}
