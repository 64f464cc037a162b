// Whose fault it was when a peer connection ends: the peer broke the
// protocol (it is dropped and rated down), the connection merely ended
// (closed, reset, timed out), or our own code failed. A failure of ours is
// a bug: it is logged loudly, with its stack, and counted, and it is never
// held against the peer.

import { BencodeError } from "../bencode/types.ts";
import { WireError } from "../wire/handshake.ts";

/** A peer broke the protocol; it is dropped and rated down. */
export class PeerViolation extends Error {
  override name = "PeerViolation";
}

/** Why a connection closed, as far as the peer's rating is concerned. */
export type CloseCause = "ended" | "violation" | "internal";

/** True for errors that mean the peer sent something unreadable or forbidden. */
export function isProtocolError(e: unknown): e is Error {
  return e instanceof WireError || e instanceof PeerViolation ||
    e instanceof BencodeError;
}

/** Counts our own failures and logs each with its stack. */
export class InternalErrors {
  count = 0;

  constructor(private log: (line: string) => void) {}

  /** `where` completes "internal error ...", e.g. "in the accept loop". */
  report(where: string, error: unknown): void {
    this.count++;
    this.log(internalErrorEntry(where, error));
  }
}

/** One log entry: where and what, then the stack's frames on the lines after it. */
export function internalErrorEntry(where: string, error: unknown): string {
  if (!(error instanceof Error)) {
    return `internal error ${where}: ${String(error)}`;
  }
  const frames = (error.stack ?? "").split("\n").filter((line) =>
    /^\s+at /.test(line)
  );
  return [`internal error ${where}: ${error.name}: ${error.message}`, ...frames]
    .join("\n");
}
