// The engine's events as the lines a user reads: log lines, the transient
// check line, and the end-of-torrent summary lines.

import { describeSwarmEvent, type EngineEvent } from "../session/mod.ts";
import { formatBytes } from "./format.ts";

/** The text of one event, or null for one that prints nothing. */
export function renderEvent(event: EngineEvent): string[] {
  switch (event.type) {
    case "log":
    case "status":
      return [event.text];
    case "peerBanned":
    case "peerDropped":
    case "pieceFailed":
    case "peerOfOtherTorrent":
      return [describeSwarmEvent(event)];
    case "skipped":
      return [
        event.reason.startsWith(event.file)
          ? `skipping ${event.reason}`
          : `skipping ${event.file}: ${event.reason}`,
      ];
    case "checked":
      return [
        `${event.torrent.name}: ${
          formatBytes(event.totalBytes)
        } in ${event.pieces} pieces, ${event.verified} already verified${
          event.fromResume ? " (resume file)" : ""
        }, saving to ${event.dir}`,
      ];
    case "alreadyComplete":
      return [`complete: ${event.torrent.name} was already verified on disk`];
    case "metadataFetching":
      return [
        `${event.torrent.name}: fetching the torrent's metadata from peers`,
      ];
    case "metadata":
      return [
        event.saveError === undefined
          ? `${event.torrent.name}: metadata received (${
            formatBytes(event.bytes)
          }), saved as ${event.savedAs}`
          : `${event.torrent.name}: metadata received, but it could not be saved as ${event.savedAs}: ${event.saveError}`,
      ];
    case "started":
      return event.handedOver > 0
        ? [
          `${event.torrent.name}: ${event.handedOver} peer connection(s) carried over from the metadata fetch`,
        ]
        : [];
    case "complete":
      return [];
    case "seeding":
      return [
        `seeding ${event.torrent.name} on port ${event.port}${event.goal}`,
      ];
    case "notSeeding":
      return [`not seeding ${event.torrent.name}: ${event.why}`];
    case "portMapped":
      return []; // the port mapper's own log line says it, with the details
    case "announcePort":
      return [
        `port mapping: trackers and the DHT are told port ${event.port} from now on`,
      ];
    case "stopped":
      return stoppedLines(event);
    case "error":
      return [
        event.torrent
          ? `${event.torrent.name}: ${event.message}`
          : event.message,
      ];
  }
}

function stoppedLines(
  event: Extract<EngineEvent, { type: "stopped" }>,
): string[] {
  const name = event.torrent.name;
  const lines: string[] = [];
  if (event.sources.length > 0) {
    const shown = event.sources.slice(0, 8).map((s) =>
      `${s.address} ${formatBytes(s.bytes)}`
    );
    if (event.sources.length > 8) {
      shown.push(`and ${event.sources.length - 8} more`);
    }
    lines.push(`received from: ${shown.join(", ")}`);
  }
  if (event.wastedBytes > 0) {
    lines.push(
      `${name}: ${
        formatBytes(event.wastedBytes)
      } received that nobody asked for or that came too late (not counted as downloaded)`,
    );
  }
  if (event.internalErrors > 0) {
    lines.push(
      `${name}: ${event.internalErrors} internal error(s), logged above with their stacks: please report them`,
    );
  }
  if (event.piecesDone < event.pieceCount) {
    lines.push(
      `stopped at ${event.piecesDone}/${event.pieceCount} pieces of ${name}; the next run resumes from there`,
    );
  }
  if (event.stoppedBy !== null) {
    lines.push(
      `${name}: stopped by ${
        event.stoppedBy === "time" ? "--max-minutes" : event.stoppedBy
      }`,
    );
  }
  return lines;
}
