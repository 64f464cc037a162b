// BEP 5 DHT node: the one object the client uses. It owns the UDP socket, the routing
// table, the token secrets, the announce store and a maintenance timer; answers other
// nodes' queries while it runs; bootstraps from the saved table first and from the
// configured routers only if that leaves too few nodes; and runs get_peers lookups with
// optional announce_peer. The state (id + good nodes) is saved at close().

import { lookup as dnsLookup } from "node:dns/promises";
import { isIPv4 } from "node:net";
import {
  ipv4Bytes,
  type NodeContact,
  type PeerAddress,
  validPort,
} from "./contacts.ts";
import { encodeError, encodeResponse, type KrpcQuery } from "./krpc.ts";
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
import { K, RoutingTable } from "./routing_table.ts";
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
}

export interface DhtStats {
  nodes: number;
  goodNodes: number;
  malformedPackets: number;
  queriesAnswered: number;
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
/** Distinct external addresses tallied from replies (BEP 42 "ip"). */
const MAX_IP_VOTES = 16;

export class DhtNode {
  readonly #table: RoutingTable;
  readonly #tokens = new TokenSecrets();
  readonly #peers = new PeerStore();
  readonly #ipVotes = new Map<string, number>();
  /** Pings and refreshes running in the background, awaited by close(). */
  readonly #background = new Set<Promise<unknown>>();
  #socket!: KrpcSocket;
  #bootstrapped: Promise<void> = Promise.resolve();
  #maintenanceTimer?: ReturnType<typeof setInterval>;
  #queriesAnswered = 0;
  #closed = false;

  private constructor(
    readonly id: NodeId,
    readonly options: DhtNodeOptions,
  ) {
    this.#table = new RoutingTable(id);
  }

  static async start(options: DhtNodeOptions): Promise<DhtNode> {
    const state = options.stateFile
      ? await loadState(options.stateFile, options.log)
      : undefined;
    const node = new DhtNode(chooseId(state, options.log), options);
    node.#socket = await KrpcSocket.bind({
      host: options.host,
      port: options.port,
      queryTimeoutMs: options.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
      maxPending: MAX_PENDING,
      onQuery: (query) => node.#answer(query),
      log: options.log,
    });
    options.log(
      `DHT: node ${nodeIdHex(node.id).slice(0, 8)}… on UDP port ${node.port}, ${
        state?.nodes.length ?? 0
      } saved nodes`,
    );
    node.#bootstrapped = node.#bootstrap(state?.nodes ?? []);
    node.#maintenanceTimer = setInterval(
      () => node.#maintain(),
      MAINTAIN_EVERY_MS,
    );
    Deno.unrefTimer(Number(node.#maintenanceTimer));
    return node;
  }

  get port(): number {
    return this.#socket.port;
  }

  /** A node learnt elsewhere (e.g. a peer's BEP 5 `port` message): ping it, add it if it answers. */
  addNode(host: string, port: number): void {
    if (this.#closed || !validPort(port)) return;
    this.#inBackground(
      resolveHost(host, this.options.log).then((address) =>
        address ? this.#ping({ host: address, port }) : undefined
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
          const key = `${peer.host}:${peer.port}`;
          if (seen.has(key)) return false;
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
    };
  }

  /** Stops the timer, ends outstanding queries, closes the socket and saves the state. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#maintenanceTimer);
    await this.#socket.close();
    await this.#bootstrapped;
    await Promise.all(this.#background);
    if (!this.options.stateFile) return;
    const good = this.#table.nodes().filter((n) =>
      this.#table.state(n) === "good"
    );
    try {
      await saveDhtState(this.options.stateFile, {
        id: this.id,
        nodes: good,
        ...this.#votedExternalIp(),
      });
    } catch (error) {
      this.options.log(
        `DHT: cannot save ${this.options.stateFile}: ${
          (error as Error).message
        }`,
      );
    }
  }

  /** Saved nodes first (a find_node for our own id through them); routers if too few answer. */
  async #bootstrap(saved: NodeContact[]): Promise<void> {
    if (saved.length > 0) await this.#findNode(this.id, saved);
    if (this.#table.size < K && this.options.bootstrap.length > 0) {
      const routers = await Promise.all(
        this.options.bootstrap.map((text) =>
          resolveEndpoint(text, this.options.log)
        ),
      );
      // router ids are unknown until they answer a ping
      await Promise.all(
        routers.flatMap((router) => router ? [this.#ping(router)] : []),
      );
      await this.#findNode(this.id, this.#table.closest(this.id, 2 * K));
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

  /** Drives a lookup: keeps alpha queries in flight until it is done. */
  #runLookup(
    lookup: IterativeLookup,
    query: KrpcQuery,
    onReply?: (
      reply: Extract<QueryOutcome, { kind: "reply" }>["reply"],
    ) => void,
  ): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    const pump = () => {
      for (const contact of lookup.next()) {
        this.#query(contact, query).then((outcome) => {
          if (outcome.kind === "reply") {
            lookup.replied(
              contact,
              outcome.reply.nodes ?? [],
              outcome.reply.token,
            );
            onReply?.(outcome.reply);
          } else {
            lookup.failed(contact);
          }
          pump();
        });
      }
      if (lookup.done) resolve();
    };
    pump();
    return promise;
  }

  /** One query; the outcome updates the routing table. `to.id`, if known, is who we expect. */
  async #query(
    to: PeerAddress & { id?: NodeId },
    query: KrpcQuery,
  ): Promise<QueryOutcome> {
    const outcome = await this.#socket.query(to, query);
    if (outcome.kind === "reply") {
      if (outcome.ip) this.#voteExternalIp(outcome.ip.host);
      const contact = { id: outcome.reply.id, host: to.host, port: to.port };
      const insert = this.#table.replied(contact);
      if (insert.kind === "ping") {
        this.#inBackground(this.#checkQuestionable(insert.node));
      }
    } else if (outcome.kind === "timeout" && to.id && !this.#closed) {
      this.#table.failed(to.id);
    }
    return outcome;
  }

  #ping(to: PeerAddress & { id?: NodeId }): Promise<QueryOutcome> {
    return this.#query(to, { method: "ping", id: this.id });
  }

  /** BEP 5: a questionable node in a full bucket is pinged; failing twice makes it bad. */
  async #checkQuestionable(node: NodeContact): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const outcome = await this.#ping(node);
      if (outcome.kind !== "timeout" || this.#closed) return;
    }
  }

  #answer(incoming: IncomingQuery): Uint8Array | undefined {
    if (this.#closed) return undefined;
    const { query, from } = incoming;
    this.#table.queried(query.id);
    if (
      !incoming.readOnly && this.#table.hasRoomFor(query.id) &&
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

  /** BEP 5 refresh: stale buckets get a find_node; questionable nodes get a ping. */
  #maintain(): void {
    if (this.#closed) return;
    for (
      const target of this.#table.refreshTargets().slice(0, REFRESHES_PER_ROUND)
    ) {
      this.#inBackground(
        this.#findNode(target, this.#table.closest(target, 2 * K)),
      );
    }
    for (const node of this.#table.questionable().slice(0, PINGS_PER_ROUND)) {
      this.#inBackground(this.#ping(node));
    }
  }

  #voteExternalIp(ip: string): void {
    const votes = this.#ipVotes.get(ip);
    if (votes !== undefined) this.#ipVotes.set(ip, votes + 1);
    else if (this.#ipVotes.size < MAX_IP_VOTES) this.#ipVotes.set(ip, 1);
  }

  /** The address most replies agree on, if at least two do. */
  #votedExternalIp(): { externalIp?: string } {
    let best: [string, number] | undefined;
    for (const entry of this.#ipVotes) {
      if (!best || entry[1] > best[1]) best = entry;
    }
    return best && best[1] >= 2 ? { externalIp: best[0] } : {};
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
 */
function chooseId(
  state: DhtState | undefined,
  log: (line: string) => void,
): NodeId {
  const ip = state?.externalIp ? ipv4Bytes(state.externalIp) : undefined;
  if (state && (!ip || isBep42NodeId(state.id, ip))) return state.id;
  if (!ip) return randomNodeId();
  log(`DHT: new BEP 42 node id for external address ${state!.externalIp}`);
  return bep42NodeId(ip, Math.floor(Math.random() * 256));
}

/** "host:port" to an IPv4 address and port; failures are logged and give undefined. */
async function resolveEndpoint(
  text: string,
  log: (line: string) => void,
): Promise<PeerAddress | undefined> {
  const colon = text.lastIndexOf(":");
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !validPort(port)) {
    log(`DHT: bootstrap node "${text}" is not host:port`);
    return undefined;
  }
  const host = await resolveHost(text.slice(0, colon), log);
  return host ? { host, port } : undefined;
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
