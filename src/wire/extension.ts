// BEP 10 extension protocol: the reserved bit, and the extended handshake
// (extended message id 0) that tells each side which extension messages the
// other understands and under which ids. Each side picks its own ids; a sender
// always uses the ids the receiver announced.

import { decode } from "../bencode/decode.ts";
import { encode } from "../bencode/encode.ts";
import { type BDict, BencodeError } from "../bencode/types.ts";
import { isDict } from "../bencode/access.ts";

/** Extended message id 0 is the handshake itself. */
export const EXTENDED_HANDSHAKE_ID = 0;

/** The extension names we speak and the ids we ask peers to use for them. */
export const LOCAL_EXTENSION_IDS = {
  ut_pex: 1,
  ut_metadata: 2,
} as const;

export type ExtensionName = keyof typeof LOCAL_EXTENSION_IDS;

export interface ExtensionHandshake {
  /** Extension name -> the id the sender wants for it (absent or 0: not supported). */
  messages: Map<string, number>;
  /** The sender's TCP listen port, when it told us. */
  listenPort: number | null;
  /** Client name and version, e.g. "libtorrent 2.0.8". */
  client: string;
  /** Requests the sender keeps queued at most (its `reqq`). */
  maxRequests: number | null;
  /** BEP 9: size of the info dictionary, when the sender has it. */
  metadataSize: number | null;
}

export interface OwnExtensionHandshake {
  extensions: ExtensionName[];
  listenPort: number;
  client: string;
  maxRequests: number;
  /** BEP 9: our info dictionary's size, once we have it. */
  metadataSize?: number;
}

/** Largest info dictionary accepted from a peer (libtorrent's limit is 4 MiB too). */
export const MAX_METADATA_SIZE = 4 * 1024 * 1024;

export function encodeExtensionHandshake(
  own: OwnExtensionHandshake,
): Uint8Array {
  const m: Record<string, number> = {};
  for (const name of own.extensions) m[name] = LOCAL_EXTENSION_IDS[name];
  return encode({
    m,
    p: own.listenPort > 0 ? own.listenPort : undefined,
    v: own.client,
    reqq: own.maxRequests,
    metadata_size: own.metadataSize,
  });
}

/**
 * Reads a peer's extended handshake. Fields of the wrong type are treated
 * as absent (BEP 10 lets clients add keys freely); only an undecodable
 * payload throws.
 */
export function parseExtensionHandshake(
  payload: Uint8Array,
): ExtensionHandshake {
  let root;
  try {
    root = decode(payload);
  } catch (e) {
    if (e instanceof BencodeError) {
      throw new BencodeError(`extended handshake: ${e.message}`);
    }
    throw e;
  }
  if (!isDict(root)) {
    throw new BencodeError("extended handshake is not a dictionary");
  }
  const messages = new Map<string, number>();
  const m = root["m"];
  if (isDict(m)) {
    for (const [name, id] of Object.entries(m)) {
      // 0 means "switched off" (kept so that a later handshake can say so).
      if (typeof id === "number" && id >= 0 && id <= 255) {
        messages.set(name, id);
      }
    }
  }
  const v = root["v"];
  return {
    messages,
    listenPort: intIn(root, "p", 1, 65535),
    client: v instanceof Uint8Array ? new TextDecoder().decode(v) : "",
    maxRequests: intIn(root, "reqq", 1, 1_000_000),
    metadataSize: intIn(root, "metadata_size", 1, MAX_METADATA_SIZE),
  };
}

/**
 * BEP 10: a later handshake need only carry what changed; an id of 0
 * switches an extension off. Keys it leaves out keep their values. With no
 * earlier handshake, the update is the first one (its ids of 0 mean nothing).
 */
export function mergeExtensionHandshake(
  earlier: ExtensionHandshake | null,
  update: ExtensionHandshake,
): ExtensionHandshake {
  const messages = new Map(earlier?.messages);
  for (const [name, id] of update.messages) {
    if (id === 0) messages.delete(name);
    else messages.set(name, id);
  }
  return {
    messages,
    listenPort: update.listenPort ?? earlier?.listenPort ?? null,
    client: update.client || (earlier?.client ?? ""),
    maxRequests: update.maxRequests ?? earlier?.maxRequests ?? null,
    metadataSize: update.metadataSize ?? earlier?.metadataSize ?? null,
  };
}

function intIn(
  dict: BDict,
  key: string,
  min: number,
  max: number,
): number | null {
  const v = dict[key];
  return typeof v === "number" && v >= min && v <= max ? v : null;
}
