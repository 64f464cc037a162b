// The engine's surface: all that a front end (the CLI today; a daemon or an
// RPC later) needs, so that it imports nothing from the layers below.

export { Engine, type EngineOptions } from "./engine.ts";
export type {
  EngineEvent,
  HaltReason,
  StopReason,
  TorrentRef,
  TorrentSummary,
} from "./events.ts";
export { FolderLockedError } from "./folder_lock.ts";
export { describeSwarmEvent } from "../swarm/events.ts";
export { isMagnet, MagnetError } from "../metainfo/magnet.ts";
export { TorrentFileError } from "../metainfo/metainfo.ts";
export { StorageError } from "../storage/store.ts";
export { formatPeerReport, type PeerReportRow } from "../swarm/peer_report.ts";
export type { TorrentStats } from "../torrent.ts";
export { parseHostPort, type PeerAddress } from "../net/address.ts";
