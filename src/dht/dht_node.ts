// BEP 5 DHT node: the one object the client uses. It owns the UDP socket, the routing
// table, the token secrets, the announce store and a maintenance timer; answers other
// nodes' queries while it runs; bootstraps from the saved table first and from the
// configured routers only if that leaves too few nodes; and runs get_peers lookups with
// optional announce_peer. The state (id + good nodes) is saved at close().
//
// The routers (bootstrap entries given by name) are asked, never kept: like libtorrent, we keep them
// out of the routing table and so out of the state file, since a router answers
// find_node but is no ordinary node (and a table full of routers is one that a handful
// of hosts control). Addresses in replies are checked (usableAddress) before use.

import { lookup as dnsLookup } from "node:dns/promises";
import {
  formatHostPort,
  parseHostPort,
  type PeerAddress,
} from "../net/address.ts";
import { isIP, isIPv4 } from "node:net";
import { type Clock, systemClock, type Timer } from "../net/clock.ts";
import {
  ipv4Bytes,
  isLoopbackHost,
  isUnusableHost,
  type NodeContact,
  usableAddress,
  validPort,
} from "./contacts.ts";
import { ExternalIpVotes, isPublicAddress } from "./external_ip.ts";
import {
  encodeError,
  encodeResponse,
  type KrpcQuery,
  type KrpcReply,
} from "./krpc.ts";
import {
  type IncomingQuery,
  KrpcSocket,
  type QueryOutcome,
} from "./krpc_socket.ts";
import { DEFAULT_LOOKUP_LIMITS, IterativeLookup } from "./lookup.ts";
import {
  asNodeId,
  bep42NodeId,
  isBep42NodeId,
  type NodeId,
  nodeIdHex,
  randomNodeId,
} from "./node_id.ts";
import { PeerStore } from "./peer_store.ts";
import { answerQuery } from "./responder.ts";
import { K, RoutingTable, type TableNode } from "./routing_table.ts";
import { type DhtState, loadDhtState, saveDhtState } from "./state_file.ts";
import { TokenSecrets } from "./tokens.ts";

export interface DhtNodeOptions {
  /** Bind address: "0.0.0.0" for real use, "127.0.0.1" in tests. */
  host: string;
  /** UDP port; 0 = any; if taken, any free port. */
  port: number;
  /** "host:port" routers, used when the saved table gives too few nodes. */
  bootstrap: string[];
  /** The routing table is saved here at close() and loaded at start. */
  stateFile: string | null;
  log: (line: string) => void;
  /** Per-query timeout; 3 s unless given (tests use less). */
  queryTimeoutMs?: number;
  /** Host name to IPv4 address (undefined: unknown); the system resolver unless given (tests). */
  resolve?: (host: string) => Promise<string | undefined>;
  /** The query timeouts, the reply budget and the maintenance rounds run on it; the system clock unless given (tests). */
  clock?: Clock;
}

export interface DhtStats {
  nodes: number;
  goodNodes: number;
  malformedPackets: number;
  queriesAnswered: number;
  /** Queries dropped unanswered, over the per-IP or global reply budget. */
  rateLimited: number;
}

const QUERY_TIMEOUT_MS = 3000;
/** Outstanding queries at once, over all lookups and pings. */
const MAX_PENDING = 256;
/** Pings to nodes that queried us, at most this share of MAX_PENDING. */
const MAX_PENDING_FOR_CURIOSITY = MAX_PENDING / 4;
const MAINTAIN_EVERY_MS = 60_000;
/** Stale buckets refreshed and questionable nodes pinged per maintenance round. */
const REFRESHES_PER_ROUND = 3;
const PINGS_PER_ROUND = 8;
/** Peers one lookup reports at most, over all replies (each reply gives <= 100). */
const MAX_VALUES_PER_LOOKUP = 1000;

export class DhtNode {
  readonly #table: RoutingTable;
  readonly #tokens = new TokenSecrets();
  readonly #peers = new PeerStore();
  readonly #ipVotes = new ExternalIpVotes();
  /** Pings and refreshes running in the background, awaited by close(). */
  readonly #background = new Set<Promise<unknown>>();
  /** Resolved by close(), so that nothing waits for DNS past it. */
  readonly #closing = Promise.withResolvers<void>();
  /** "host:port" of the routers: asked, never put in the routing table. */
  readonly #routers = new Set<string>();
  /** The nodes of the state file, kept if this run cannot tell whether they are alive. */
  #loaded: NodeContact[] = [];
  /** "host:port" of loaded nodes that did not answer this run; `answeredAny`: we were online. */
  readonly #unanswered = new Set<string>();
  readonly #loadedAddresses = new Set<string>();
  #answeredAny = false;
  readonly #loopbackBound: boolean;
  #socket!: KrpcSocket;
  #bootstrapped: Promise<void> = Promise.resolve();
  readonly #clock: Clock;
  #maintenanceTimer?: Timer;
  #queriesAnswered = 0;
  #closed = false;

  private constructor(
    readonly id: NodeId,
    readonly options: DhtNodeOptions,
  ) {
    this.#table = new RoutingTable(id);
    this.#clock = options.clock ?? systemClock;
    this.#loopbackBound = isLoopbackHost(options.host);
  }

  static async start(options: DhtNodeOptions): Promise<DhtNode> {
    const state = options.stateFile
      ? await loadState(options.stateFile, options.log)
      : undefined;
    const node = new DhtNode(chooseId(state, options.log), options);
    node.#loaded = (state?.nodes ?? []).filter((n) =>
      !isUnusableHost(n.host) && !node.#isRouter(n)
    );
    for (const n of node.#loaded) node.#loadedAddresses.add(addressKey(n));
    node.#socket = await KrpcSocket.bind({
      host: options.host,
      port: options.port,
      queryTimeoutMs: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
      maxPending: MAX_PENDING,
      onQuery: (query) => node.#answer(query),
      log: options.log,
      clock: node.#clock,
    });
    options.log(
      `DHT: node ${nodeIdHex(node.id).slice(0, 8)}… on UDP port ${node.port}, ${
        state?.nodes.length ?? 0
      } saved nodes`,
    );
    node.#bootstrapped = node.#bootstrap(node.#loaded);
    node.#scheduleMaintenance();
    return node;
  }

  get port(): number {
    return this.#socket.port;
  }

  /** A node learnt elsewhere (e.g. a peer's BEP 5 `port` message): ping it, add it if it answers. */
  addNode(host: string, port: number): void {
    if (this.#closed || !validPort(port)) return;
    this.#inBackground(
      this.#resolve(host).then((address) =>
        address && usableAddress(address, true)
          ? this.#ping({ host: address, port })
          : undefined
      ),
    );
  }

  /**
   * One iterative get_peers lookup; peers stream out through onPeers as they arrive;
   * resolves when done. With announcePort set, announce_peer goes to the closest nodes
   * that gave tokens (BEP 5).
   */
  async lookup(
    infoHash: Uint8Array,
    onPeers: (peers: PeerAddress[]) => void,
    announcePort?: number,
  ): Promise<{ peers: number; queried: number }> {
    await this.#bootstrapped;
    const target = asNodeId(infoHash);
    if (!target) throw new RangeError("an info-hash is 20 bytes");
    const seen = new Set<string>();
    const lookup = new IterativeLookup(
      target,
      this.id,
      this.#table.closest(target, 2 * K),
    );
    await this.#runLookup(
      lookup,
      { method: "get_peers", id: this.id, infoHash: target },
      (reply) => {
        const fresh = (reply.values ?? []).filter((peer) => {
          const key = addressKey(peer);
          if (seen.has(key) || seen.size >= MAX_VALUES_PER_LOOKUP) return false;
          seen.add(key);
          return true;
        });
        if (fresh.length > 0) onPeers(fresh);
      },
    );
    if (announcePort !== undefined && validPort(announcePort)) {
      await Promise.all(
        lookup.closestWithTokens(K).map(({ contact, token }) =>
          this.#query(contact, {
            method: "announce_peer",
            id: this.id,
            infoHash: target,
            port: announcePort,
            impliedPort: false,
            token,
          })
        ),
      );
    }
    return { peers: seen.size, queried: lookup.queried };
  }

  stats(): DhtStats {
    return {
      nodes: this.#table.size,
      goodNodes: this.#table.goodCount(),
      malformedPackets: this.#socket.malformedPackets,
      queriesAnswered: this.#queriesAnswered,
      rateLimited: this.#socket.rateLimitedQueries,
    };
  }

  /** Stops the timer, ends outstanding queries, closes the socket and saves the state. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.resolve();
    this.#clock.clearTimer(this.#maintenanceTimer);
    await this.#socket.close();
    await this.#bootstrapped;
    await Promise.all(this.#background);
    if (!this.options.stateFile) return;
    const externalIp = this.#ipVotes.winner();
    try {
      await saveDhtState(this.options.stateFile, {
        id: this.id,
        nodes: this.#nodesToSave(),
        ...(externalIp ? { externalIp } : {}),
      });
    } catch (error) {
      this.options.log(
        `DHT: cannot save ${this.options.stateFile}: ${
          (error as Error).message
        }`,
      );
    }
  }

  /**
   * The good nodes; and when there are fewer than K, the loaded nodes too, unless this
   * run found them bad (bad in the table, or silent while others answered): an offline
   * run must not wipe the table it could not check.
   */
  #nodesToSave(): NodeContact[] {
    const good = this.#table.nodes().filter((n) =>
      this.#table.state(n) === "good"
    );
    if (good.length >= K) return good;
    const kept = new Set(good.map((n) => nodeIdHex(n.id)));
    const loaded = this.#loaded.filter((n) => {
      const hex = nodeIdHex(n.id);
      if (kept.has(hex)) return false;
      const known = this.#table.find(n.id);
      if (known && this.#table.state(known) === "bad") return false;
      if (this.#answeredAny && this.#unanswered.has(addressKey(n))) {
        return false;
      }
      kept.add(hex);
      return true;
    });
    return [...good, ...loaded];
  }

  /** Saved nodes first (a find_node for our own id through them); routers if too few answer. */
  async #bootstrap(saved: NodeContact[]): Promise<void> {
    if (saved.length > 0) await this.#findNode(this.id, saved);
    if (this.#table.size < K && this.options.bootstrap.length > 0) {
      const routers = await Promise.all(
        this.options.bootstrap.map(async (text) => {
          const endpoint = parseHostPort(text);
          if (!endpoint || !validPort(endpoint.port)) {
            this.options.log(`DHT: bootstrap node "${text}" is not host:port`);
            return undefined;
          }
          const host = await this.#resolve(endpoint.host);
          return host
            ? { host, port: endpoint.port, named: !isIP(endpoint.host) }
            : undefined;
        }),
      );
      const seeds: NodeContact[] = [];
      await Promise.all(routers.map(async (entry) => {
        if (!entry) return;
        const router = { host: entry.host, port: entry.port };
        // A named entry is a router (the public ones are named): asked, never
        // kept. An address given as an IP is taken as an ordinary node, so a
        // small DHT whose every node is listed still fills the table.
        if (entry.named) this.#routers.add(addressKey(router));
        // a router's id is unknown until it answers a ping; it seeds the lookup only
        const outcome = await this.#ping(router);
        if (outcome.kind === "reply") {
          seeds.push({ ...router, id: outcome.reply.id });
        }
      }));
      await this.#findNode(this.id, [
        ...this.#table.closest(this.id, 2 * K),
        ...seeds,
      ]);
    }
    if (!this.#closed) {
      this.options.log(
        `DHT: bootstrapped, ${this.#table.size} nodes (${this.#table.goodCount()} good)`,
      );
    }
  }

  #findNode(target: NodeId, seeds: NodeContact[]): Promise<void> {
    const lookup = new IterativeLookup(target, this.id, seeds, {
      ...DEFAULT_LOOKUP_LIMITS,
      maxQueries: 32,
    });
    return this.#runLookup(lookup, {
      method: "find_node",
      id: this.id,
      target,
    });
  }

  /**
   * Drives a lookup: keeps alpha queries in flight until it is done. A reply's nodes and
   * values are checked first (usableAddress); anything that throws on the way (onReply
   * included) counts as that node's failure, so the lookup still ends.
   */
  #runLookup(
    lookup: IterativeLookup,
    query: KrpcQuery,
    onReply?: (reply: KrpcReply) => void,
  ): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const pump = () => {
      for (const contact of lookup.next()) {
        this.#query(contact, query).then((outcome) => {
          if (outcome.kind === "reply") {
            const reply = this.#checkedReply(outcome.reply, contact);
            lookup.replied(contact, reply.nodes ?? [], reply.token);
            onReply?.(reply);
          } else {
            lookup.failed(contact);
          }
        }).catch((error) => {
          this.options.log(
            `DHT: lookup step failed: ${(error as Error).message}`,
          );
          lookup.failed(contact); // no-op if it was settled before the throw
        }).finally(pump);
      }
      if (lookup.done) resolve();
    };
    pump();
    return promise;
  }

  /** The reply without nodes and values at addresses we must not use (see usableAddress). */
  #checkedReply(reply: KrpcReply, from: PeerAddress): KrpcReply {
    const loopbackOk = this.#loopbackBound || isLoopbackHost(from.host);
    const usable = (peer: PeerAddress) => usableAddress(peer.host, loopbackOk);
    return {
      ...reply,
      ...(reply.nodes ? { nodes: reply.nodes.filter(usable) } : {}),
      ...(reply.values ? { values: reply.values.filter(usable) } : {}),
    };
  }

  /** One query; the outcome updates the routing table. `to.id`, if known, is who we expect. */
  async #query(
    to: PeerAddress & { id?: NodeId },
    query: KrpcQuery,
  ): Promise<QueryOutcome> {
    const outcome = await this.#socket.query(to, query);
    if (outcome.kind === "reply") {
      this.#answeredAny = true;
      if (outcome.ip) this.#ipVotes.vote(to.host, outcome.ip.host);
      if (this.#isRouter(to)) return outcome;
      const contact = { id: outcome.reply.id, host: to.host, port: to.port };
      const insert = this.#table.replied(contact);
      if (insert.kind === "ping") {
        this.#inBackground(this.#checkQuestionable(insert.node));
      }
    } else if (outcome.kind === "timeout" && !this.#closed) {
      const key = addressKey(to);
      if (this.#loadedAddresses.has(key)) this.#unanswered.add(key);
      if (to.id) {
        this.#table.failed({ id: to.id, host: to.host, port: to.port });
      }
    }
    return outcome;
  }

  #ping(to: PeerAddress & { id?: NodeId }): Promise<QueryOutcome> {
    return this.#query(to, { method: "ping", id: this.id });
  }

  /**
   * BEP 5: a questionable node in a full bucket is pinged. One ping a check, so one
   * failure charged (two make it bad); the table hands a node to one check at a time.
   */
  async #checkQuestionable(node: TableNode): Promise<void> {
    try {
      await this.#ping(node);
    } finally {
      this.#table.checkDone(node);
    }
  }

  #isRouter(address: PeerAddress): boolean {
    return this.#routers.has(addressKey(address));
  }

  /** A host name's address, or undefined; never waits past close(). */
  #resolve(host: string): Promise<string | undefined> {
    if (isIPv4(host)) return Promise.resolve(host);
    const resolving = this.options.resolve
      ? this.options.resolve(host)
      : resolveHost(host, this.options.log);
    return Promise.race([
      resolving,
      this.#closing.promise.then(() => undefined),
    ]);
  }

  #answer(incoming: IncomingQuery): Uint8Array | undefined {
    if (this.#closed) return undefined;
    const { query, from } = incoming;
    this.#table.queried({ id: query.id, host: from.host, port: from.port });
    if (
      !incoming.readOnly && !this.#isRouter(from) &&
      this.#table.hasRoomFor(query.id) &&
      this.#socket.pendingCount < MAX_PENDING_FOR_CURIOSITY
    ) {
      // a node that queries us may answer too: if it does, it joins the table
      this.#inBackground(this.#ping({ ...from, id: query.id }));
    }
    const answer = answerQuery(
      {
        ownId: this.id,
        table: this.#table,
        tokens: this.#tokens,
        peers: this.#peers,
      },
      query,
      from,
    );
    this.#queriesAnswered++;
    if ("error" in answer) {
      return encodeError(incoming.t, answer.error.code, answer.error.message);
    }
    return encodeResponse(incoming.t, answer.reply, from);
  }

  /** A maintenance round every MAINTAIN_EVERY_MS until close(). */
  #scheduleMaintenance(): void {
    this.#maintenanceTimer = this.#clock.setTimer(() => {
      this.#scheduleMaintenance();
      this.#maintain();
    }, MAINTAIN_EVERY_MS);
  }

  /** BEP 5 refresh: stale buckets get a find_node; questionable nodes get a ping. */
  #maintain(): void {
    if (this.#closed) return;
    for (const target of this.#table.refreshTargets(REFRESHES_PER_ROUND)) {
      this.#inBackground(
        this.#findNode(target, this.#table.closest(target, 2 * K)),
      );
    }
    for (const node of this.#table.questionable().slice(0, PINGS_PER_ROUND)) {
      this.#inBackground(this.#ping(node));
    }
  }

  #inBackground(task: Promise<unknown>): void {
    const tracked = task.catch((error) =>
      this.options.log(`DHT: ${(error as Error).message}`)
    ).finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }
}

async function loadState(
  path: string,
  log: (line: string) => void,
): Promise<DhtState | undefined> {
  try {
    return await loadDhtState(path);
  } catch (error) {
    log(`DHT: ignoring ${path}: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * The saved id, unless other nodes reported an external IPv4 address the id does not
 * match: then a fresh BEP 42 id for that address, so BEP 42 nodes keep us in their tables.
 * Never for a private or loopback address (a state file written before that rule).
 */
function chooseId(
  state: DhtState | undefined,
  log: (line: string) => void,
): NodeId {
  const ip = state?.externalIp && isPublicAddress(state.externalIp)
    ? ipv4Bytes(state.externalIp)
    : undefined;
  if (state && (!ip || isBep42NodeId(state.id, ip))) return state.id;
  if (!ip) return randomNodeId();
  log(`DHT: new BEP 42 node id for external address ${state!.externalIp}`);
  return bep42NodeId(ip, Math.floor(Math.random() * 256));
}

function addressKey(address: PeerAddress): string {
  return formatHostPort(address.host, address.port);
}

async function resolveHost(
  host: string,
  log: (line: string) => void,
): Promise<string | undefined> {
  if (isIPv4(host)) return host;
  try {
    return (await dnsLookup(host, { family: 4 })).address;
  } catch (error) {
    log(`DHT: cannot resolve ${host}: ${(error as Error).message}`);
    return undefined;
  }
}
