// BEP 9 ut_metadata messages: the info dictionary travels in 16 KiB pieces.
// Each message is a bencoded dictionary; a data message is followed by the
// piece's raw bytes in the same extended message.

import { decodePrefix } from "../bencode/decode.ts";
import { encode } from "../bencode/encode.ts";
import { BencodeError } from "../bencode/types.ts";
import { isDict } from "../bencode/access.ts";

export const METADATA_PIECE_SIZE = 16 * 1024;

export const MetadataMessageType = {
  Request: 0,
  Data: 1,
  Reject: 2,
} as const;

export type MetadataMessage =
  | { type: "request"; piece: number }
  | { type: "data"; piece: number; totalSize: number; data: Uint8Array }
  | { type: "reject"; piece: number };

export function encodeMetadataRequest(piece: number): Uint8Array {
  return encode({ msg_type: MetadataMessageType.Request, piece });
}

export function encodeMetadataReject(piece: number): Uint8Array {
  return encode({ msg_type: MetadataMessageType.Reject, piece });
}

export function encodeMetadataData(
  piece: number,
  info: Uint8Array,
): Uint8Array {
  const start = piece * METADATA_PIECE_SIZE;
  const body = info.subarray(
    start,
    Math.min(info.length, start + METADATA_PIECE_SIZE),
  );
  const head = encode({
    msg_type: MetadataMessageType.Data,
    piece,
    total_size: info.length,
  });
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** Number of 16 KiB pieces an info dictionary of `size` bytes takes. */
export function metadataPieceCount(size: number): number {
  return Math.ceil(size / METADATA_PIECE_SIZE);
}

/** Parses one ut_metadata payload; throws BencodeError when it is malformed. */
export function parseMetadataMessage(payload: Uint8Array): MetadataMessage {
  const { value, end } = decodePrefix(payload);
  if (!isDict(value)) {
    throw new BencodeError("ut_metadata message is not a dictionary");
  }
  const type = value["msg_type"];
  const piece = value["piece"];
  if (typeof piece !== "number" || piece < 0 || !Number.isSafeInteger(piece)) {
    throw new BencodeError("ut_metadata message has no valid piece");
  }
  switch (type) {
    case MetadataMessageType.Request:
      return { type: "request", piece };
    case MetadataMessageType.Reject:
      return { type: "reject", piece };
    case MetadataMessageType.Data: {
      const totalSize = value["total_size"];
      if (typeof totalSize !== "number" || totalSize <= 0) {
        throw new BencodeError("ut_metadata data has no valid total_size");
      }
      return { type: "data", piece, totalSize, data: payload.subarray(end) };
    }
    default:
      throw new BencodeError(`ut_metadata msg_type ${type} is unknown`);
  }
}
