// BEP 14 local discovery: the announce codec, and LocalDiscovery on real
// sockets on 127.0.0.1 with its schedule on a FakeClock (announce at once,
// repeats after 2 and 4 s, the interval, the once-a-gap rule), so that no
// test waits for time to pass.

import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  encodeLsdAnnounce,
  isLocalSource,
  type LsdAnnounce,
  parseLsdAnnounce,
} from "../../src/lsd/lsd_message.ts";
import { LocalDiscovery } from "../../src/lsd/local_discovery.ts";
import { FakeClock } from "../helpers/fake_clock.ts";

const ascii = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

const HASH_A = "6309dca413a3f80c0bbb33ff8398acdb524cd703";
const HASH_B = "e8523f31975ed2ad0415946e553aa6efcecb80c5";
const HASH_C = "7309dca413a3f80c0bbb33ff8398acdb524cd703";

// A datagram libtorrent 2.0.8 sent, captured in a network namespace.
const LIBTORRENT_ANNOUNCE = "BT-SEARCH * HTTP/1.1\r\n" +
  "Host: 239.192.152.143:6771\r\n" +
  "Port: 6881\r\n" +
  `Infohash: ${HASH_A}\r\n` +
  "cookie: 5d881cad\r\n" +
  "\r\n\r\n";

function announceOf(bytes: Uint8Array): LsdAnnounce {
  const parsed = parseLsdAnnounce(bytes);
  if (parsed.kind !== "announce") assert.fail(`malformed: ${parsed.reason}`);
  return parsed.announce;
}

function reasonOf(bytes: Uint8Array): string {
  const parsed = parseLsdAnnounce(bytes);
  if (parsed.kind !== "malformed") assert.fail("parsed as an announce");
  return parsed.reason;
}

Deno.test("lsd codec: our announce is byte for byte what libtorrent sends", () => {
  const ours = encodeLsdAnnounce({
    host: "239.192.152.143:6771",
    port: 6881,
    infoHashHex: HASH_A.toUpperCase(),
    cookie: "5d881cad",
  });
  assert.equal(text(ours), LIBTORRENT_ANNOUNCE);
});

Deno.test("lsd codec: reads libtorrent's announce", () => {
  assert.deepEqual(announceOf(ascii(LIBTORRENT_ANNOUNCE)), {
    port: 6881,
    infoHashes: [HASH_A],
    cookie: "5d881cad",
  });
});

Deno.test("lsd codec: several Infohash headers, any case, bare \\n, no cookie", () => {
  const announce = announceOf(ascii(
    "bt-search * HTTP/1.0\n" +
      "HOST: [ff15::efc0:988f]:6771\n" +
      "port: 51413\n" +
      `INFOHASH: ${HASH_A.toUpperCase()}\n` +
      "Infohash: not-a-hash\n" + // skipped, the others still count
      `Infohash: ${"0".repeat(40)}\n` + // skipped: no torrent has it
      `Infohash: ${HASH_B}\n` +
      `Infohash: ${HASH_A}\n` + // duplicate
      "X-Other: ignored\n" +
      "\n" +
      `Infohash: ${"1".repeat(40)}\n`, // after the headers: not read
  ));
  assert.deepEqual(announce, {
    port: 51413,
    infoHashes: [HASH_A, HASH_B],
    cookie: null,
  });
});

Deno.test("lsd codec: garbage is reported as malformed with a reason", () => {
  const headers = (port: string, hash = HASH_A) =>
    ascii(
      `BT-SEARCH * HTTP/1.1\r\nPort: ${port}\r\nInfohash: ${hash}\r\n\r\n`,
    );
  assert.match(reasonOf(new Uint8Array(0)), /not a BT-SEARCH/);
  assert.match(reasonOf(new Uint8Array([0xff, 0, 1, 2])), /not a BT-SEARCH/);
  assert.match(
    reasonOf(ascii("M-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n")),
    /not a BT-SEARCH request: "M-SEARCH/,
  );
  assert.match(reasonOf(ascii("BT-SEARCH / HTTP/1.1\r\n\r\n")), /BT-SEARCH/);
  assert.match(
    reasonOf(ascii(`BT-SEARCH * HTTP/1.1\r\nInfohash: ${HASH_A}\r\n\r\n`)),
    /no Port/,
  );
  assert.match(reasonOf(headers("0")), /bad Port "0"/);
  assert.match(reasonOf(headers("65536")), /bad Port/);
  assert.match(reasonOf(headers("68a1")), /bad Port/);
  assert.match(reasonOf(headers("-1")), /bad Port/);
  assert.match(reasonOf(headers("6881", HASH_A.slice(2))), /no valid Infohash/);
  assert.match(reasonOf(headers("6881", "0".repeat(40))), /no valid Infohash/);
  assert.equal(announceOf(headers("65535")).port, 65535);
});

/** A UDP socket on 127.0.0.1 that records what it receives. */
async function udpProbe(reflect = false) {
  const socket = dgram.createSocket("udp4");
  const received: string[] = [];
  socket.on("message", (msg, from) => {
    received.push(text(msg));
    if (reflect) socket.send(msg, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    socket,
    received,
    port: socket.address().port,
    send: (datagram: string, port: number) =>
      new Promise<void>((resolve, reject) =>
        socket.send(
          datagram,
          port,
          "127.0.0.1",
          (e) => e ? reject(e) : resolve(),
        )
      ),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** Waits for datagrams to arrive: a bound on I/O, not on the schedule under test. */
async function until(what: string, condition: () => boolean) {
  const deadline = performance.now() + 10_000;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("LocalDiscovery: announces when added, then on its interval, at most once per gap", async () => {
  const clock = new FakeClock();
  const group = await udpProbe();
  const hashes = () =>
    group.received.map((d) => announceOf(ascii(d)).infoHashes);
  const lsd = await LocalDiscovery.start({
    listenPort: 6881,
    log: () => {},
    onPeer: () => {},
    group: { host: "127.0.0.1", port: group.port },
    bindPort: 0,
    announceIntervalMs: 400,
    minAnnounceGapMs: 150,
    repeatDelaysMs: [], // counted one datagram an announce here; repeats: below
    clock,
  });
  try {
    lsd.add(HASH_A.toUpperCase());
    await until("first announce", () => group.received.length === 1);
    const first = announceOf(ascii(group.received[0]));
    assert.equal(first.port, 6881);
    assert.deepEqual(first.infoHashes, [HASH_A]);
    assert.match(first.cookie!, /^[0-9a-f]{1,8}$/);
    assert.ok(group.received[0].includes(`Host: 127.0.0.1:${group.port}\r\n`));

    assert.equal(lsd.announceNow(HASH_A), false, "within the minimum gap");
    lsd.add(HASH_A); // already known: no second announce
    assert.equal(lsd.announceNow(HASH_B), false, "not one of ours");
    // The due check runs once per gap: at 150 and 300 A is not due.
    assert.deepEqual(clock.dueTimes, [150]);
    await clock.advance(449);
    // B announced at once; had A gone out at 150 or 300, it would be before.
    lsd.add(HASH_B);
    await until("B's announce", () => group.received.length === 2);
    assert.deepEqual(hashes(), [[HASH_A], [HASH_B]]);
    await clock.advance(1); // 450: the first check at least 400 after A's
    await until("periodic announce", () => group.received.length === 3);
    assert.deepEqual(hashes()[2], [HASH_A]);

    await clock.advance(149);
    assert.equal(lsd.announceNow(HASH_A), false, "149 ms after the last");
    await clock.advance(1);
    assert.equal(lsd.announceNow(HASH_A), true, "the gap has passed");
    await until("announce on request", () => group.received.length === 4);
    assert.deepEqual(hashes()[3], [HASH_A]);

    lsd.remove(HASH_A);
    assert.equal(lsd.announceNow(HASH_A), false, "removed");
    await until("four sent", () => lsd.stats.announcesSent === 4);
    assert.equal(lsd.stats.sendErrors, 0);
  } finally {
    await lsd.close();
    await lsd.close(); // idempotent
    await group.close();
  }
  assert.equal(clock.pending, 0, "close stops the schedule");
  assert.equal(lsd.announceNow(HASH_A), false, "closed");
});

Deno.test("LocalDiscovery: reports other clients' announces for our torrents only; own and garbage are counted", async () => {
  // The group "reflects" every datagram to its sender, as multicast
  // loopback returns our own announces to us.
  const group = await udpProbe(true);
  const other = await udpProbe();
  const peers: string[] = [];
  const logs: string[] = [];
  const lsd = await LocalDiscovery.start({
    listenPort: 6881,
    log: (line) => logs.push(line),
    onPeer: (hash, host, port) => peers.push(`${hash} ${host}:${port}`),
    group: { host: "127.0.0.1", port: group.port },
    bindPort: 0,
    clock: new FakeClock(),
  });
  try {
    lsd.add(HASH_A);
    await until("own announce back", () => lsd.stats.ownIgnored === 1);

    for (
      const garbage of ["", "hello", "BT-SEARCH * HTTP/1.1\r\n\r\n", "\u0000"]
    ) {
      await other.send(garbage, lsd.localPort);
    }
    await other.send(LIBTORRENT_ANNOUNCE, lsd.localPort);
    await other.send(
      LIBTORRENT_ANNOUNCE.replace("6881", "7000").replace(HASH_A, HASH_B),
      lsd.localPort,
    );
    await until("announces heard", () => lsd.stats.announcesHeard === 2);

    assert.deepEqual(peers, [`${HASH_A} 127.0.0.1:6881`]);
    assert.equal(lsd.stats.malformed, 4);
    assert.equal(lsd.stats.peersReported, 1);
    assert.equal(logs.length, 1, logs.join("\n"));
    assert.match(logs[0], /malformed announce from 127\.0\.0\.1/);

    lsd.add(HASH_B);
    await other.send(
      LIBTORRENT_ANNOUNCE.replace("6881", "7000").replace(HASH_A, HASH_B),
      lsd.localPort,
    );
    await until("second torrent", () => peers.length === 2);
    assert.equal(peers[1], `${HASH_B} 127.0.0.1:7000`);
  } finally {
    await lsd.close();
    await other.close();
    await group.close();
  }
});

Deno.test("LocalDiscovery: start fails with a clear error when it cannot bind", async () => {
  await assert.rejects(
    LocalDiscovery.start({
      listenPort: 6881,
      log: () => {},
      onPeer: () => {},
      // TEST-NET-1 (RFC 5737) is no address of this host: bind fails, nothing is sent.
      group: { host: "192.0.2.1", port: 6771 },
    }),
    /local peer discovery cannot listen on port 6771/,
  );
});

Deno.test("lsd: announces are taken from local-network addresses only", () => {
  for (
    const local of ["10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.77.2"]
      .concat(["169.254.1.1", "127.0.0.1", "127.8.9.10", "::1", "fe80::1"])
      .concat(["fd12:3456::1", "fc00::5", "::ffff:192.168.1.1"])
  ) {
    assert.ok(isLocalSource(local), local);
  }
  for (
    const remote of ["8.8.8.8", "172.32.0.1", "192.169.0.1", "100.64.0.1"]
      .concat(["0.0.0.0", "239.192.152.143", "2001:db8::1", "::ffff:8.8.8.8"])
      .concat(["fec0::1", "not an address", ""])
  ) {
    assert.ok(!isLocalSource(remote), remote);
  }
});

Deno.test("LocalDiscovery: each announce is repeated after 2 and 4 s (one lost datagram costs no 5 minutes), within the once-a-gap rule", async () => {
  const clock = new FakeClock();
  const group = await udpProbe();
  const hashes = () =>
    group.received.map((d) => announceOf(ascii(d)).infoHashes);
  const lsd = await LocalDiscovery.start({
    listenPort: 6881,
    log: () => {},
    onPeer: () => {},
    group: { host: "127.0.0.1", port: group.port },
    bindPort: 0,
    clock, // the defaults: repeats after 2 and 4 s, a gap of 1 min, every 5 min
  });
  /** Each datagram's arrival on the clock. */
  const arrivals: number[] = [];
  group.socket.on("message", () => arrivals.push(clock.now()));
  try {
    lsd.add(HASH_A);
    await until("the announce", () => group.received.length === 1);
    assert.deepEqual(clock.dueTimes, [2000, 4000, 60_000]);
    await clock.advance(2000);
    await until("the first repeat", () => group.received.length === 2);
    await clock.advance(2000);
    await until("the second repeat", () => group.received.length === 3);
    assert.deepEqual(arrivals, [0, 2000, 4000]);
    assert.ok(group.received.every((d) => d === group.received[0]));
    assert.equal(
      lsd.announceNow(HASH_A),
      false,
      "the repeats were one announce",
    );
    assert.deepEqual(clock.dueTimes, [60_000]);

    // removing a torrent cancels its pending repeats
    lsd.add(HASH_B);
    assert.deepEqual(clock.dueTimes, [6000, 8000, 60_000]);
    lsd.remove(HASH_B);
    assert.deepEqual(clock.dueTimes, [60_000]);
    await clock.advance(4000);
    // a repeat of B at 6000 or 8000 would arrive before this announce of C
    lsd.add(HASH_C);
    await until("the announce of C", () => group.received.length === 5);
    assert.deepEqual(hashes().slice(3), [[HASH_B], [HASH_C]]);
    // and close cancels C's (the clock has no timer left)
  } finally {
    await lsd.close();
    await group.close();
  }
  assert.equal(clock.pending, 0);
});
