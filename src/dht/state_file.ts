// The DHT state kept between runs, so that a run started by cron does not bootstrap cold:
// our node id, the good nodes of the routing table (BEP 5 compact node info) and the
// external IPv4 address other nodes reported (BEP 42 "ip"), as one bencoded dictionary.
// Written to a temporary file and renamed, so a crash mid-write leaves the old file.

import { readFile, rename, writeFile } from "node:fs/promises";
import { decode } from "../bencode/decode.ts";
import { encode } from "../bencode/encode.ts";
import { isDict } from "../bencode/access.ts";
import {
  decodeNodes,
  encodeNodes,
  ipv4Bytes,
  type NodeContact,
} from "./contacts.ts";
import { asNodeId, type NodeId } from "./node_id.ts";
import { formatIPv4 } from "../net/ip.ts";

export interface DhtState {
  id: NodeId;
  nodes: NodeContact[];
  /** Our address as other nodes saw it, if enough of them agreed. */
  externalIp?: string;
}

/** The saved state; undefined if there is none. Throws on an unreadable or corrupt file. */
export async function loadDhtState(
  path: string,
): Promise<DhtState | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const value = decode(new Uint8Array(bytes));
  const id = isDict(value) && value.id instanceof Uint8Array
    ? asNodeId(value.id.slice())
    : undefined;
  const nodes = isDict(value) && value.nodes instanceof Uint8Array
    ? decodeNodes(value.nodes)
    : undefined;
  if (!id || !nodes) throw new Error(`${path}: not a DHT state file`);
  const ip = isDict(value) && value.ip instanceof Uint8Array &&
      value.ip.length === 4
    ? formatIPv4(value.ip)
    : undefined;
  return { id, nodes, ...(ip ? { externalIp: ip } : {}) };
}

export async function saveDhtState(
  path: string,
  state: DhtState,
): Promise<void> {
  const ip = state.externalIp ? ipv4Bytes(state.externalIp) : undefined;
  const bytes = encode({ id: state.id, nodes: encodeNodes(state.nodes), ip });
  const temporary = `${path}.tmp`;
  await writeFile(temporary, bytes);
  await rename(temporary, path);
}
