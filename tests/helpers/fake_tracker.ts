// A minimal HTTP tracker on 127.0.0.1 that answers every announce with a fixed peer list, for
// clients that can only find peers through a tracker (aria2c has no "connect to peer" option),
// and records each announce's event for tests of what a client tells its tracker.
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
  /** Every announce answered, in order. */
  announces: RecordedAnnounce[];
  stop(): Promise<void>;
}

export interface RecordedAnnounce {
  /** started, completed, stopped, or none for a regular announce. */
  event: string;
  left: string;
}

export async function startFakeTracker(
  peers: PeerAddress[] = [],
  intervalSeconds = 5,
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
    const query = new URL(request.url).searchParams;
    tracker.announces.push({
      event: query.get("event") ?? "none",
      left: query.get("left") ?? "",
    });
    return new Response(announceResponse(tracker.peers, intervalSeconds));
  });
  // the handler above reads and counts through this object, so callers see live values
  const tracker: FakeTracker = {
    url: `http://127.0.0.1:${await listening.promise}/announce`,
    peers,
    announces: [],
    stop: async () => {
      abort.abort();
      await server.finished;
    },
  };
  return tracker;
}

/** d8:interval<i>e5:peers<6n>:<compact peers>e (BEP 3, BEP 23). */
function announceResponse(
  peers: PeerAddress[],
  intervalSeconds: number,
): Uint8Array<ArrayBuffer> {
  const compact = new Uint8Array(peers.length * 6);
  peers.forEach((peer, i) => {
    compact.set(peer.host.split(".").map(Number), i * 6);
    new DataView(compact.buffer).setUint16(i * 6 + 4, peer.port);
  });
  const head = new TextEncoder().encode(
    `d8:intervali${intervalSeconds}e5:peers${compact.length}:`,
  );
  const body = new Uint8Array(head.length + compact.length + 1);
  body.set(head);
  body.set(compact, head.length);
  body[body.length - 1] = "e".charCodeAt(0);
  return body;
}
