// BEP 5 "DHT Queries", the answering side, without I/O: what this node says to ping,
// find_node, get_peers and announce_peer. get_peers always carries a token, and "values"
// from the peer store when it has peers, else the closest "nodes"; announce_peer is stored
// only with a token we issued to that IP, at the UDP source port when implied_port is set.

import type { PeerAddress } from "../net/address.ts";
import { ErrorCode, type KrpcQuery, type KrpcReply } from "./krpc.ts";
import { type NodeId, nodeIdHex } from "./node_id.ts";
import type { PeerStore } from "./peer_store.ts";
import { K, type RoutingTable } from "./routing_table.ts";
import type { TokenSecrets } from "./tokens.ts";

export interface Responder {
  ownId: NodeId;
  table: RoutingTable;
  tokens: TokenSecrets;
  peers: PeerStore;
}

export type Answer =
  | { reply: KrpcReply }
  | { error: { code: number; message: string } };

export function answerQuery(
  responder: Responder,
  query: KrpcQuery,
  from: PeerAddress,
): Answer {
  const id = responder.ownId;
  switch (query.method) {
    case "ping":
      return { reply: { id } };
    case "find_node":
      return {
        reply: { id, nodes: responder.table.closest(query.target, K) },
      };
    case "get_peers": {
      const token = responder.tokens.issue(from.host);
      const values = responder.peers.peers(nodeIdHex(query.infoHash));
      if (values.length > 0) return { reply: { id, token, values } };
      return {
        reply: { id, token, nodes: responder.table.closest(query.infoHash, K) },
      };
    }
    case "announce_peer": {
      if (!responder.tokens.accepts(query.token, from.host)) {
        return { error: { code: ErrorCode.protocol, message: "bad token" } };
      }
      const port = query.impliedPort ? from.port : query.port;
      responder.peers.announce(nodeIdHex(query.infoHash), {
        host: from.host,
        port,
      });
      return { reply: { id } };
    }
  }
}
