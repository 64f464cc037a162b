// Peer admission over in-memory sockets and an injected clock: dialing,
// accepting and adopting, the connection limit and who is dropped for a
// newcomer, ourselves and peers of another torrent kept out, bans by
// address and peer id, and the records kept for blame.

import { describeSwarmEvent } from "../../src/swarm/events.ts";
import assert from "node:assert/strict";
import { type CloseCause, InternalErrors } from "../../src/peer/faults.ts";
import {
  InfoHashMismatch,
  type OpenedPeer,
} from "../../src/peer/handshake_io.ts";
import type { TakenOverStream } from "../../src/peer/prior_state.ts";
import {
  Admission,
  type AdmittedConnection,
  CLOSED_REMEMBERED,
} from "../../src/swarm/admission.ts";
import type { ConnectionFigures } from "../../src/swarm/rating.ts";
import type { PeerRecord } from "../../src/swarm/swarm.ts";
import { encodeHandshake, type Handshake } from "../../src/wire/handshake.ts";
import { FakeConn, settle } from "../helpers/fake_conn.ts";

const text = (s: string) => new TextEncoder().encode(s);
const INFO_HASH = new Uint8Array(20).fill(7);
const OURS: Handshake = {
  reserved: new Uint8Array(8),
  infoHash: INFO_HASH,
  peerId: text("-BT0001-ourselves!!!"),
};
const peerId = (name: string) => text(`-XX0001-${name.padEnd(12, ".")}`);

let nextNum = 0;

/** A connection as an owner makes one: it reports its close back to admission. */
class TestConnection implements AdmittedConnection {
  readonly num = nextNum++;
  rate = 0;
  closedWith: { reason: string; cause: CloseCause } | null = null;
  figures: ConnectionFigures | null = null;
  readonly ended: Promise<void>;
  private end!: () => void;

  constructor(
    readonly fake: FakeConn,
    readonly record: PeerRecord,
    readonly dialled: boolean,
    private admission: Admission<TestConnection>,
  ) {
    this.ended = new Promise((resolve) => this.end = resolve);
  }

  close(reason: string, cause: CloseCause = "ended"): void {
    if (this.closedWith) return;
    this.closedWith = { reason, cause };
    this.admission.closed(this, reason, cause, this.figures);
    this.end();
  }
}

interface Remote {
  /** The peer id its handshake gives, or how the dial fails. */
  answer: Uint8Array | "other torrent" | "refused";
}

function harness(
  opts: { maxPeers?: number; rateThem?: boolean; startThrows?: boolean } = {},
) {
  const log: string[] = [];
  const clock = { now: 0 };
  const remotes = new Map<string, Remote>();
  const made: TestConnection[] = [];
  const sockets: FakeConn[] = [];
  const admission: Admission<TestConnection> = new Admission({
    limits: {
      maxPeers: opts.maxPeers ?? 10,
      maxHalfOpen: 4,
      reconnectBaseMs: 1000,
    },
    handshake: OURS,
    connectTimeoutMs: 1000,
    start: (opened, record, dialled) => {
      if (opts.startThrows) throw new TypeError("start bug");
      const fake = sockets.find((s) => s === opened.conn)!;
      const c = new TestConnection(fake, record, dialled, admission);
      made.push(c);
      return { connection: c, run: () => c.ended };
    },
    currentRate: opts.rateThem ? (c) => c.rate : undefined,
    internalErrors: new InternalErrors((line) => log.push(line)),
    onEvent: (event) => log.push(describeSwarmEvent(event)),
    log: (line) => log.push(line),
    now: () => clock.now,
    connect: (host, port) => {
      const remote = remotes.get(`${host}:${port}`);
      if (!remote || remote.answer === "refused") {
        return Promise.reject(new Error("connection refused"));
      }
      if (remote.answer === "other torrent") {
        return Promise.reject(new InfoHashMismatch("another info-hash"));
      }
      return Promise.resolve(opened(remote.answer));
    },
  });
  const swarm = admission.swarm;
  const opened = (id: Uint8Array): OpenedPeer => {
    const fake = new FakeConn();
    sockets.push(fake);
    return {
      conn: fake,
      remote: { reserved: new Uint8Array(8), infoHash: INFO_HASH, peerId: id },
      leftover: new Uint8Array(0),
    };
  };
  let nextPort = 40_000;
  /** An incoming connection from `id`; the socket it came on. */
  const incoming = async (id: Uint8Array, port = nextPort++) => {
    const o = opened(id);
    await admission.accept(o, "127.0.0.1", port);
    return sockets.at(-1)!;
  };
  /** Dials what the swarm offers, as its tick would. */
  const dialSome = async () => {
    swarm.dialSome(clock.now);
    await settle();
  };
  return {
    admission,
    swarm,
    log,
    clock,
    remotes,
    made,
    opened,
    incoming,
    dialSome,
  };
}

Deno.test("admission: a dialled peer is admitted; its close joins the rating and a violation is logged", async () => {
  const h = harness();
  h.remotes.set("127.0.0.1:1", { answer: peerId("a") });
  h.swarm.add([{ host: "127.0.0.1", port: 1 }], "tracker");
  await h.dialSome();
  const [c] = h.made;
  assert.equal(c.dialled, true);
  assert.equal(c.record.connected, true);
  assert.ok(h.admission.connections.has(c));
  assert.equal(h.admission.recordOf(c.num), c.record);
  c.figures = {
    downloaded: 1000,
    uploaded: 0,
    peakRate: 500,
    rttMs: 0,
    snubs: 0,
  };
  c.close("sent garbage", "violation");
  assert.equal(h.admission.connections.size, 0);
  assert.equal(c.record.connected, false);
  assert.equal(c.record.rating.downloaded, 1000);
  assert.equal(c.record.rating.violations, 1);
  assert.deepEqual(h.log, ["dropped peer 127.0.0.1:1: sent garbage"]);
  // Its record stays for blame after the close.
  assert.equal(h.admission.recordOf(c.num), c.record);
  await h.admission.drained();
});

Deno.test("admission: a peer of another torrent is logged once and never dialled again", async () => {
  const h = harness();
  h.remotes.set("127.0.0.1:2", { answer: "other torrent" });
  h.remotes.set("127.0.0.1:3", { answer: "refused" });
  h.swarm.add([2, 3].map((port) => ({ host: "127.0.0.1", port })), "pex");
  await h.dialSome();
  assert.equal(h.log.length, 1);
  assert.match(h.log[0], /^peer 127\.0\.0\.1:2 serves another torrent/);
  const other = h.swarm.peers.get("127.0.0.1:2")!;
  const refused = h.swarm.peers.get("127.0.0.1:3")!;
  assert.equal(other.excluded, true);
  assert.equal(refused.excluded, false);
  assert.equal(refused.rating.failures, 1);
  h.clock.now = 3_600_000;
  await h.dialSome();
  assert.equal(h.log.length, 1, "not dialled again");
  assert.equal(refused.rating.failures, 2, "redialled after its backoff");
  assert.equal(h.made.length, 0);
});

Deno.test("admission: ourselves are never admitted, nor dialled again", async () => {
  const h = harness();
  h.remotes.set("127.0.0.1:4", { answer: OURS.peerId });
  h.swarm.add([{ host: "127.0.0.1", port: 4 }], "tracker");
  await h.dialSome();
  assert.equal(h.made.length, 0);
  const record = h.swarm.peers.get("127.0.0.1:4")!;
  assert.equal(record.excluded, true);
  assert.equal(record.connected, false);
  assert.ok(h.swarm.hasRoom);
});

Deno.test("admission: an incoming peer is answered with our handshake, and its ephemeral port is never dialled", async () => {
  const h = harness();
  const socket = await h.incoming(peerId("b"), 50_000);
  assert.deepEqual(socket.takeWritten(68), encodeHandshake(OURS));
  const [c] = h.made;
  assert.equal(c.dialled, false);
  assert.equal(c.record.key, "127.0.0.1:50000");
  assert.equal(c.record.source, "incoming");
  assert.equal(c.record.excluded, true);
  c.close("done");
  await h.admission.drained();
});

Deno.test("admission: a handed-over peer keeps where it was learnt; one that dialled us is not dialled back", () => {
  const h = harness();
  const prior = {} as TakenOverStream;
  h.admission.adopt(h.opened(peerId("c")), "127.0.0.1", 6881, "dht", prior);
  h.admission.adopt(
    h.opened(peerId("d")),
    "127.0.0.1",
    40_123,
    "incoming",
    prior,
  );
  const [dialled, incoming] = h.made;
  assert.deepEqual([dialled.dialled, dialled.record.source], [true, "dht"]);
  assert.equal(dialled.record.excluded, false);
  assert.deepEqual([incoming.dialled, incoming.record.excluded], [false, true]);
  // Handed over again (a metadata fetch's end): no longer ours, not rated.
  h.admission.handedOver(dialled);
  assert.equal(h.admission.connections.size, 1);
  dialled.close("gone elsewhere");
  assert.equal(dialled.record.rating.failures, 0);
  incoming.close("done");
});

Deno.test("admission: at the limit a newcomer replaces a peer rated below a newcomer, else it is turned away", async () => {
  const h = harness({ maxPeers: 2, rateThem: true });
  await h.incoming(peerId("e"));
  await h.incoming(peerId("f"));
  const [good, bad] = h.made;
  good.rate = 64 * 1024;
  bad.record.rating.violations = 1;
  await h.incoming(peerId("g"));
  assert.equal(
    bad.closedWith?.reason,
    "dropped for a better-rated peer at the connection limit",
  );
  assert.equal(h.made.length, 3);
  // Now both rate at least as well as a newcomer: the next one is refused.
  const refused = await h.incoming(peerId("h"));
  assert.equal(refused.closed, true);
  assert.equal(refused.takeWritten(68).length, 0, "no handshake sent");
  assert.equal(h.made.length, 3);
  for (const c of h.made) c.close("done");
  await h.admission.drained();
});

Deno.test("admission: without a rate to compare (a metadata fetch), a newcomer at the limit is turned away", async () => {
  const h = harness({ maxPeers: 1 });
  await h.incoming(peerId("i"));
  h.made[0].record.rating.violations = 5;
  const refused = await h.incoming(peerId("j"));
  assert.equal(refused.closed, true);
  assert.equal(h.made[0].closedWith, null);
  h.made[0].close("done");
});

Deno.test("admission: a ban closes the connection and keeps out its address and its peer id", async () => {
  const h = harness();
  const liar = peerId("liar");
  h.remotes.set("127.0.0.1:5", { answer: liar });
  h.swarm.add([{ host: "127.0.0.1", port: 5 }], "tracker");
  await h.dialSome();
  const [c] = h.made;
  c.record.client = "liar 1.0";
  h.admission.ban(c.num, "sent bad data");
  assert.deepEqual(c.closedWith, {
    reason: "banned: sent bad data",
    cause: "violation",
  });
  assert.equal(c.record.rating.banned, true);
  assert.ok(h.log.includes("banned 127.0.0.1:5 (liar 1.0): sent bad data"));
  // Once is enough: a second verdict for the same peer changes nothing.
  h.admission.ban(c.num, "again");
  assert.equal(h.log.filter((l) => l.startsWith("banned")).length, 1);
  // The same peer id from another port (it dialled us) is refused unanswered.
  const back = await h.incoming(liar);
  assert.equal(back.closed, true);
  assert.equal(back.takeWritten(68).length, 0);
  // Dialled at an address we did not know was its: that address is banned too.
  h.remotes.set("127.0.0.1:6", { answer: liar });
  h.swarm.add([{ host: "127.0.0.1", port: 6 }], "pex");
  await h.dialSome();
  assert.equal(h.swarm.peers.get("127.0.0.1:6")!.rating.banned, true);
  h.clock.now = 3_600_000;
  await h.dialSome();
  assert.equal(h.made.length, 1);
  await h.admission.drained();
});

Deno.test("admission: a peer banned after it left loses its peer id too", async () => {
  const h = harness();
  await h.incoming(peerId("k"));
  const [c] = h.made;
  c.close("peer closed the connection");
  h.admission.ban(c.num, "sent bad data for piece 3");
  assert.equal(c.record.rating.banned, true);
  assert.equal((await h.incoming(peerId("k"))).closed, true);
  assert.equal(h.made.length, 1);
});

Deno.test("admission: a failure of ours while starting a connection is logged and not held against the peer", async () => {
  const h = harness({ startThrows: true });
  const socket = await h.incoming(peerId("l"), 41_000);
  assert.equal(socket.closed, true);
  assert.match(
    h.log[0],
    /^internal error starting a connection to 127\.0\.0\.1:41000: TypeError: start bug\n\s+at /,
  );
  const record = h.swarm.peers.get("127.0.0.1:41000")!;
  assert.equal(record.connected, false);
  assert.equal(record.rating.failures, 0);
  assert.equal(h.admission.connections.size, 0);
  assert.ok(h.swarm.hasRoom);
});

Deno.test("admission: records of closed connections are kept for blame, the newest few thousand", async () => {
  const h = harness();
  const first = CLOSED_REMEMBERED + 5;
  for (let i = 0; i < first; i++) {
    await h.incoming(peerId(`m${i}`));
    h.made.at(-1)!.close("done");
  }
  const nums = h.made.map((c) => c.num);
  assert.equal(h.admission.recordOf(nums[4]), undefined);
  assert.equal(h.admission.recordOf(nums[5]), h.made[5].record);
  assert.equal(h.admission.recordOf(nums.at(-1)!), h.made.at(-1)!.record);
});

Deno.test("admission: after stop nobody is admitted, and drained() waits for the read loops", async () => {
  const h = harness();
  await h.incoming(peerId("n"));
  h.admission.stop();
  const late = await h.incoming(peerId("o"));
  assert.equal(late.closed, true);
  h.admission.adopt(
    h.opened(peerId("p")),
    "127.0.0.1",
    1,
    "dht",
    {} as TakenOverStream,
  );
  assert.equal(h.made.length, 1);
  let drained = false;
  const done = h.admission.drained().then(() => drained = true);
  await settle();
  assert.equal(drained, false);
  h.made[0].close("shutting down");
  await done;
});

Deno.test("admission: a dial that succeeds takes the slot it was started for, up to the last one", async () => {
  const h = harness({ maxPeers: 2 });
  for (const port of [7, 8, 9]) {
    h.remotes.set(`127.0.0.1:${port}`, { answer: peerId(`q${port}`) });
  }
  h.swarm.add([7, 8, 9].map((port) => ({ host: "127.0.0.1", port })), "dht");
  await h.dialSome();
  assert.equal(h.made.length, 2);
  assert.equal(h.admission.connections.size, 2);
  assert.equal(h.swarm.hasRoom, false);
  // Full: the third address waits, undialled, for a slot.
  await h.dialSome();
  assert.equal(h.made.length, 2);
  h.made[0].close("done");
  h.clock.now = 1;
  await h.dialSome();
  assert.equal(h.made.length, 3);
  assert.equal(h.made[2].record.key, "127.0.0.1:9");
  for (const c of h.made) c.close("done");
});
