// A minimal HTTP tracker on 127.0.0.1 that answers every announce with a fixed peer list, for
// clients that can only find peers through a tracker (aria2c has no "connect to peer" option).
// Its bencode is written by hand so the helper does not depend on the code under test.

export interface PeerAddress {
  /** IPv4 dotted quad. */
  host: string;
  port: number;
}

export interface FakeTracker {
  /** Announce URL, http://127.0.0.1:PORT/announce. */
  url: string;
  /** Returned to every announce; mutable, so peers can be added once their ports are known. */
  peers: PeerAddress[];
  /** Number of announces answered. */
  announces: number;
  stop(): Promise<void>;
}

const ANNOUNCE_INTERVAL_SEC = 5;

export async function startFakeTracker(
  peers: PeerAddress[] = [],
): Promise<FakeTracker> {
  const abort = new AbortController();
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: abort.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, (request) => {
    if (new URL(request.url).pathname !== "/announce") {
      return new Response("not found", { status: 404 });
    }
    tracker.announces++;
    return new Response(announceResponse(tracker.peers));
  });
  // the handler above reads and counts through this object, so callers see live values
  const tracker: FakeTracker = {
    url: `http://127.0.0.1:${await listening.promise}/announce`,
    peers,
    announces: 0,
    stop: async () => {
      abort.abort();
      await server.finished;
    },
  };
  return tracker;
}

/** d8:intervali5e5:peers<6n>:<compact peers>e (BEP 3, BEP 23). */
function announceResponse(peers: PeerAddress[]): Uint8Array<ArrayBuffer> {
  const compact = new Uint8Array(peers.length * 6);
  peers.forEach((peer, i) => {
    compact.set(peer.host.split(".").map(Number), i * 6);
    new DataView(compact.buffer).setUint16(i * 6 + 4, peer.port);
  });
  const head = new TextEncoder().encode(
    `d8:intervali${ANNOUNCE_INTERVAL_SEC}e5:peers${compact.length}:`,
  );
  const body = new Uint8Array(head.length + compact.length + 1);
  body.set(head);
  body.set(compact, head.length);
  body[body.length - 1] = "e".charCodeAt(0);
  return body;
}
