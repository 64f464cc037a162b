// BEP 5 "Routing Table": k-buckets of K = 8 nodes over the 160-bit id space. Bucket i
// (i < last) holds the nodes sharing exactly i leading bits with our id; the last bucket
// holds every node sharing at least `last` bits, i.e. the range our own id falls in. Only
// that bucket splits when full, which is BEP 5's rule ("unless our own node ID falls within
// the range of the bucket") in prefix form. Node states follow BEP 5: good (replied within
// 15 min, or replied once and queried us within 15 min), questionable, bad (failed to
// answer several queries in a row). See NOTES.md for the invariants.
//
// One address per bucket: a host cannot fill a bucket (or its replacements) with ids at
// many ports, which would let it eclipse that part of the id space. Loopback addresses are
// exempt, because loopback is one host by definition: tests run many nodes on 127.0.0.1
// (libtorrent's dht_restrict_routing_ips is the same rule, turned off in such tests).

import type { PeerAddress } from "../net/address.ts";
import { isLoopbackHost, type NodeContact } from "./contacts.ts";
import {
  compareDistance,
  NODE_ID_BITS,
  type NodeId,
  nodeIdHex,
  randomIdAtPrefix,
  sharedPrefixBits,
} from "./node_id.ts";

export const K = 8;
/** BEP 5: a node is good for 15 minutes after its last sign of life; so is a bucket. */
export const GOOD_FOR_MS = 15 * 60_000;
/** "Multiple queries in a row": two failures make a node bad. */
const FAILURES_TO_BAD = 2;

export interface TableNode extends NodeContact {
  /** When it last answered one of our queries (undefined: never). */
  lastReply?: number;
  /** When it last sent us a query. */
  lastQuery?: number;
  /** Queries it failed to answer since its last reply. */
  failures: number;
}

export type NodeState = "good" | "questionable" | "bad";

/** What adding a node that replied to us did. */
export type InsertResult =
  | { kind: "added" | "refreshed" | "dropped" }
  /** The bucket is full but holds questionable nodes: ping this one; if it fails (see
   * `failed`), the new node, kept as a replacement, takes its place. Call `checkDone`
   * when the ping is over: until then the node is not handed out for another check. */
  | { kind: "ping"; node: TableNode }
  /** Kept as a replacement; every questionable node of the bucket is being checked. */
  | { kind: "replacement" };

interface Bucket {
  nodes: TableNode[];
  /** Nodes that replied while the bucket was full, newest last; they fill in for bad ones. */
  replacements: TableNode[];
  /** Last time a node in the bucket was added or replied (BEP 5 refresh rule). */
  lastChanged: number;
}

export class RoutingTable {
  readonly #buckets: Bucket[];
  /** Nodes handed out by `replied` for a liveness ping that has not ended yet. */
  readonly #checking = new Set<TableNode>();

  constructor(
    readonly ownId: NodeId,
    readonly now: () => number = () => Date.now(),
  ) {
    this.#buckets = [this.#newBucket()];
  }

  get size(): number {
    let n = 0;
    for (const b of this.#buckets) n += b.nodes.length;
    return n;
  }

  get bucketCount(): number {
    return this.#buckets.length;
  }

  state(node: TableNode): NodeState {
    if (node.failures >= FAILURES_TO_BAD) return "bad";
    const now = this.now();
    if (node.lastReply !== undefined) {
      if (now - node.lastReply < GOOD_FOR_MS) return "good";
      if (node.lastQuery !== undefined && now - node.lastQuery < GOOD_FOR_MS) {
        return "good";
      }
    }
    return "questionable";
  }

  goodCount(): number {
    return this.nodes().filter((n) => this.state(n) === "good").length;
  }

  nodes(): TableNode[] {
    return this.#buckets.flatMap((b) => b.nodes);
  }

  find(id: Uint8Array): TableNode | undefined {
    return this.#bucketFor(id).nodes.find((n) => sameId(n.id, id));
  }

  /** A node answered one of our queries: refresh it, or try to add it (BEP 5 insert rules). */
  replied(contact: NodeContact): InsertResult {
    if (sameId(contact.id, this.ownId)) return { kind: "dropped" };
    const now = this.now();
    for (;;) {
      const bucket = this.#bucketFor(contact.id);
      const known = bucket.nodes.find((n) => sameId(n.id, contact.id));
      if (known) {
        // an id answering from a new address is not trusted to move: keep the old address
        if (known.host !== contact.host || known.port !== contact.port) {
          return { kind: "dropped" };
        }
        known.lastReply = now;
        known.failures = 0;
        bucket.lastChanged = now;
        return { kind: "refreshed" };
      }
      if (holdsHost(bucket, contact)) return { kind: "dropped" };
      const node: TableNode = {
        id: contact.id,
        host: contact.host,
        port: contact.port,
        lastReply: now,
        failures: 0,
      };
      if (bucket.nodes.length < K) {
        bucket.nodes.push(node);
        bucket.lastChanged = now;
        return { kind: "added" };
      }
      const bad = bucket.nodes.findIndex((n) => this.state(n) === "bad");
      if (bad >= 0) {
        bucket.nodes[bad] = node;
        bucket.lastChanged = now;
        return { kind: "added" };
      }
      if (this.#canSplit(bucket)) {
        this.#splitLast();
        continue;
      }
      const questionable = bucket.nodes
        .filter((n) => this.state(n) === "questionable")
        .sort((a, b) => lastSeen(a) - lastSeen(b));
      if (questionable.length === 0) return { kind: "dropped" };
      this.#addReplacement(bucket, node);
      // many replies to a full bucket must not start many pings of the same node
      const unchecked = questionable.find((n) => !this.#checking.has(n));
      if (!unchecked) return { kind: "replacement" };
      this.#checking.add(unchecked);
      return { kind: "ping", node: unchecked };
    }
  }

  /** The liveness ping asked for by a `ping` result is over (answered or not). */
  checkDone(node: TableNode): void {
    this.#checking.delete(node);
  }

  /**
   * A node sent us a query: refreshes a node already in the table (BEP 5 "good"), but
   * only from the address it is known at: anyone can put another node's id in a query.
   */
  queried(contact: NodeContact): void {
    const node = this.find(contact.id);
    if (node && sameAddress(node, contact)) node.lastQuery = this.now();
  }

  /** Whether a new node that replied would be taken at once (no ping round needed). */
  hasRoomFor(id: Uint8Array): boolean {
    if (sameId(id, this.ownId) || this.find(id)) return false;
    const bucket = this.#bucketFor(id);
    return bucket.nodes.length < K || this.#canSplit(bucket) ||
      bucket.nodes.some((n) => this.state(n) === "bad");
  }

  /**
   * A node did not answer a query; a bad node gives its place to the newest replacement.
   * Only charged to the entry at that address: a query to the same id elsewhere (an id
   * some other node made up) says nothing about the node we know.
   */
  failed(contact: NodeContact): void {
    const bucket = this.#bucketFor(contact.id);
    const at = bucket.nodes.findIndex((n) =>
      sameId(n.id, contact.id) && sameAddress(n, contact)
    );
    if (at < 0) return;
    const node = bucket.nodes[at];
    node.failures++;
    if (this.state(node) !== "bad") return;
    const replacement = bucket.replacements.pop();
    if (replacement) {
      bucket.nodes[at] = replacement;
      bucket.lastChanged = this.now();
    }
  }

  /** Up to `count` nodes that are not bad, closest to target first. */
  closest(target: Uint8Array, count = K): TableNode[] {
    return this.nodes()
      .filter((n) => this.state(n) !== "bad")
      .sort((a, b) => compareDistance(a.id, b.id, target))
      .slice(0, count);
  }

  /**
   * BEP 5: a bucket unchanged for 15 minutes is refreshed with a find_node for a random id
   * in its range. Returns up to `max` such targets, one a stale bucket, the stalest first;
   * only those buckets count as refreshed, so the others come up in a later round.
   */
  refreshTargets(max = Infinity): NodeId[] {
    const now = this.now();
    const stale = this.#buckets
      .map((bucket, depth) => ({ bucket, depth }))
      .filter(({ bucket }) => now - bucket.lastChanged >= GOOD_FOR_MS)
      .sort((a, b) => a.bucket.lastChanged - b.bucket.lastChanged)
      .slice(0, max);
    return stale.map(({ bucket, depth }) => {
      const last = depth === this.#buckets.length - 1;
      // the last bucket covers every id sharing >= depth bits: any such id will do
      const bits = last ? depth + randomInt(NODE_ID_BITS - depth) : depth;
      bucket.lastChanged = now; // one refresh a period, whatever it finds
      return randomIdAtPrefix(this.ownId, bits);
    });
  }

  /** Questionable nodes, least recently seen first, for a liveness ping. */
  questionable(): TableNode[] {
    return this.nodes()
      .filter((n) => this.state(n) === "questionable")
      .sort((a, b) => lastSeen(a) - lastSeen(b));
  }

  #bucketFor(id: Uint8Array): Bucket {
    const depth = Math.min(
      sharedPrefixBits(id, this.ownId),
      this.#buckets.length - 1,
    );
    return this.#buckets[depth];
  }

  #canSplit(bucket: Bucket): boolean {
    return bucket === this.#buckets[this.#buckets.length - 1] &&
      this.#buckets.length < NODE_ID_BITS;
  }

  /** The last bucket keeps the nodes sharing exactly `depth` bits; the rest move on. */
  #splitLast(): void {
    const depth = this.#buckets.length - 1;
    const old = this.#buckets[depth];
    const next = this.#newBucket();
    next.lastChanged = old.lastChanged;
    this.#buckets.push(next);
    const stay = (n: TableNode) => sharedPrefixBits(n.id, this.ownId) === depth;
    next.nodes = old.nodes.filter((n) => !stay(n));
    old.nodes = old.nodes.filter(stay);
    next.replacements = old.replacements.filter((n) => !stay(n));
    old.replacements = old.replacements.filter(stay);
  }

  #addReplacement(bucket: Bucket, node: TableNode): void {
    const hex = nodeIdHex(node.id);
    bucket.replacements = bucket.replacements.filter((n) =>
      nodeIdHex(n.id) !== hex
    );
    bucket.replacements.push(node);
    if (bucket.replacements.length > K) bucket.replacements.shift();
  }

  #newBucket(): Bucket {
    return { nodes: [], replacements: [], lastChanged: this.now() };
  }
}

/** Whether another id of the bucket or its replacements is at this host (loopback exempt). */
function holdsHost(bucket: Bucket, contact: NodeContact): boolean {
  if (isLoopbackHost(contact.host)) return false;
  const other = (n: TableNode) =>
    n.host === contact.host && !sameId(n.id, contact.id);
  return bucket.nodes.some(other) || bucket.replacements.some(other);
}

function sameAddress(a: PeerAddress, b: PeerAddress): boolean {
  return a.host === b.host && a.port === b.port;
}

function lastSeen(node: TableNode): number {
  return Math.max(node.lastReply ?? -Infinity, node.lastQuery ?? -Infinity);
}

function sameId(a: Uint8Array, b: Uint8Array): boolean {
  return compareDistance(a, b, a) === 0;
}

function randomInt(below: number): number {
  return Math.floor(Math.random() * below);
}
