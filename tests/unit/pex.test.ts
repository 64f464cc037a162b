// BEP 11 peer exchange, on an injected clock: the one inbound rule (a
// message per peer every 45 s, 200 addresses of it) and the outgoing
// messages (once a minute, diffs, 50 a list, never a peer's own address).

import assert from "node:assert/strict";
import {
  PeerExchange,
  PEX_MAX_TAKEN,
  PEX_MIN_GAP_MS,
  type PexView,
} from "../../src/swarm/pex.ts";
import {
  PEX_FLAG_REACHABLE,
  PEX_FLAG_SEED,
  PEX_INTERVAL_MS,
  PEX_MAX_PEERS,
} from "../../src/wire/ut_pex.ts";

const addresses = (n: number, base = 0) =>
  Array.from({ length: n }, (_, i) => ({
    host: `10.0.${(base + i) >> 8}.${(base + i) & 255}`,
    port: 6881,
  }));

Deno.test("pex in: a peer's first message is taken, the next only 45 s later, 200 addresses at most", () => {
  const pex = new PeerExchange<string>(true);
  const t0 = 1_000;
  assert.equal(pex.received("a", addresses(250), t0).length, PEX_MAX_TAKEN);
  assert.deepEqual(
    pex.received("a", addresses(3), t0 + PEX_MIN_GAP_MS - 1),
    [],
  );
  // Another peer has its own pace.
  assert.equal(pex.received("b", addresses(3), t0 + 1).length, 3);
  // The ignored message did not restart the wait.
  assert.deepEqual(
    pex.received("a", addresses(2, 7), t0 + PEX_MIN_GAP_MS),
    addresses(2, 7),
  );
  // A closed peer's record is gone: its next connection starts fresh.
  pex.forget("b");
  assert.equal(pex.received("b", addresses(1), t0 + 2).length, 1);
});

Deno.test("pex in: nothing is taken when PEX is off (a private torrent, or the config)", () => {
  const pex = new PeerExchange<string>(false);
  assert.deepEqual(pex.received("a", addresses(5), 0), []);
  assert.deepEqual(
    pex.due(["a"], () => view(1, { speaksPex: true }), PEX_INTERVAL_MS),
    [],
  );
});

function view(n: number, over: Partial<PexView> = {}): PexView {
  return {
    listenAddress: { host: `192.0.2.${n}`, port: 6000 + n },
    seed: false,
    reachable: false,
    speaksPex: true,
    ...over,
  };
}

Deno.test("pex out: each ut_pex peer hears of the others, with flags, never of itself", () => {
  const pex = new PeerExchange<number>(true);
  const views = new Map<number, PexView>([
    [1, view(1, { reachable: true })],
    [2, view(2, { seed: true })],
    // It did not tell us where it listens: it is never named, but may be told.
    [3, view(3, { listenAddress: null })],
    // It does not speak ut_pex: named, never sent to.
    [4, view(4, { speaksPex: false })],
  ]);
  const due = pex.due(views.keys(), (p) => views.get(p)!, 0);
  assert.deepEqual(due.map((m) => m.peer), [1, 2, 3]);
  const toThree = due.find((m) => m.peer === 3)!;
  assert.deepEqual(toThree.added, [
    { host: "192.0.2.1", port: 6001, flags: PEX_FLAG_REACHABLE },
    { host: "192.0.2.2", port: 6002, flags: PEX_FLAG_SEED },
    { host: "192.0.2.4", port: 6004, flags: 0 },
  ]);
  assert.deepEqual(toThree.dropped, []);
  const toOne = due.find((m) => m.peer === 1)!;
  assert.deepEqual(toOne.added.map((e) => e.port), [6002, 6004]);
});

Deno.test("pex out: once a minute a peer hears what changed, and nothing when nothing did", () => {
  const pex = new PeerExchange<number>(true);
  const views = new Map<number, PexView>([[1, view(1)], [2, view(2)]]);
  const due = (now: number) => pex.due(views.keys(), (p) => views.get(p)!, now);
  assert.equal(due(0).length, 2);
  views.set(3, view(3));
  views.delete(2);
  // Too soon for peer 1; peer 3 is new and hears of peer 1 at once.
  assert.deepEqual(due(PEX_INTERVAL_MS - 1).map((m) => m.peer), [3]);
  const later = due(PEX_INTERVAL_MS);
  assert.deepEqual(later.map((m) => m.peer), [1]);
  assert.deepEqual(later[0].added.map((e) => e.port), [6003]);
  assert.deepEqual(later[0].dropped, [{ host: "192.0.2.2", port: 6002 }]);
  // No change since: nothing to send, a minute on or not.
  assert.deepEqual(due(3 * PEX_INTERVAL_MS), []);
});

Deno.test("pex out: at most 50 added and 50 dropped a message; the rest follows a minute later", () => {
  const pex = new PeerExchange<number>(true);
  const views = new Map<number, PexView>();
  for (let n = 1; n <= 120; n++) views.set(n, view(n, { speaksPex: n === 1 }));
  const toOne = (now: number) =>
    pex.due(views.keys(), (p) => views.get(p)!, now)[0];
  assert.equal(toOne(0).added.length, PEX_MAX_PEERS);
  assert.equal(toOne(PEX_INTERVAL_MS).added.length, PEX_MAX_PEERS);
  assert.equal(
    toOne(2 * PEX_INTERVAL_MS).added.length,
    119 - 2 * PEX_MAX_PEERS,
  );
  for (let n = 2; n <= 120; n++) views.delete(n);
  const gone = toOne(3 * PEX_INTERVAL_MS);
  assert.equal(gone.added.length, 0);
  assert.equal(gone.dropped.length, PEX_MAX_PEERS);
});
