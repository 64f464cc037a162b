// Command-line parsing: a command, its operands and flags, each checked with
// a one-line error. Flags override the config file.

import { parseArgs } from "node:util";
import { ConfigError } from "../config.ts";
import { parseHostPort, type PeerAddress } from "../session/mod.ts";

export interface TorrentArgs {
  command: "download" | "seed";
  /** A .torrent, a magnet link or a .magnet file; absent for `download` in batch mode (torrentsDir). */
  torrent?: string;
  /** Config keys set by flags (--dir, --port, limits, seeding goals). */
  overrides: Record<string, unknown>;
  config?: string;
  peers: PeerAddress[];
  peerReport?: string;
  quiet: boolean;
  /** Print one JSON summary per torrent at exit (logs go to stderr). */
  json: boolean;
  /** Append every engine event, and a progress sample each log interval, to this file as JSON lines. */
  events?: string;
}

export type ParsedArgs = TorrentArgs | { command: "help" } | {
  command: "version";
};

export const USAGE =
  `Usage: btclient download [<file.torrent> | <magnet link> | <file.magnet>] [options]
       btclient seed <file.torrent> [options]

download  fetches a torrent into a folder, verifying every piece and resuming
          where a previous run stopped; then seeds until the seeding goal
          (none by default: it exits when complete). A magnet link's
          metadata is fetched from peers first and saved in torrentsDir.
          Without a torrent: every .torrent and .magnet in torrentsDir
          (batch mode, for cron).
seed      checks the data in the folder and seeds it (fetching whatever is
          missing first) until the seeding goal, or until stopped when no
          goal is set.

Options:
  --dir DIR              download folder (config downloadDir, default "downloads")
  --config FILE          JSON config file (default ./config.json when present)
  --port N               TCP port for incoming peers (config listenPort, default 6881)
  --peer HOST:PORT       dial this peer directly; repeatable; works with or without trackers
  --download-limit RATE  global download cap, bytes/s; suffixes K, M, G (KiB, MiB, GiB); 0 = none
  --upload-limit RATE    global upload cap, likewise
  --seed-ratio R         seed until uploaded/size reaches R (0 = no ratio goal)
  --seed-minutes M       seed for M minutes after completing (0 = no time goal)
  --peer-report FILE     write every peer's rating at exit (.json or .csv)
  --max-minutes M        stop cleanly after M minutes, saving state (a cron window)
  --log-file FILE        also append log lines to FILE
  --no-dht               do not use the DHT (config dht)
  --no-lsd               do not use local service discovery (config lsd)
  --no-port-mapping      do not open the port on the router (config portMapping "off")
  --json                 print one JSON summary per torrent at exit (logs go to stderr)
  --events FILE          append every event (and progress samples) to FILE as JSON lines
  --quiet                print errors only
  -h, --help             show this help
  --version              print the version

Exit codes: 0 complete, 1 failure (disk), 2 bad input (torrent file, magnet
link, config, flags), 3 partial (stopped by --max-minutes before completing), 4 the download
folder is locked by another run, 130 stopped by SIGINT, 143 by SIGTERM.`;

export function parseCommandLine(argv: string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        dir: { type: "string" },
        config: { type: "string" },
        port: { type: "string" },
        peer: { type: "string", multiple: true },
        "download-limit": { type: "string" },
        "upload-limit": { type: "string" },
        "seed-ratio": { type: "string" },
        "seed-minutes": { type: "string" },
        "peer-report": { type: "string" },
        "max-minutes": { type: "string" },
        "log-file": { type: "string" },
        "no-dht": { type: "boolean" },
        "no-lsd": { type: "boolean" },
        "no-port-mapping": { type: "boolean" },
        json: { type: "boolean" },
        events: { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e));
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: "help" };
  if (values.version) return { command: "version" };
  const [command, ...operands] = positionals;
  if (command === undefined) {
    throw new ConfigError("no command given (try --help)");
  }
  if (command !== "download" && command !== "seed") {
    throw new ConfigError(`unknown command "${command}" (try --help)`);
  }
  if (operands.length === 0 && command === "seed") {
    throw new ConfigError("seed needs a .torrent file");
  }
  if (operands.length > 1) {
    throw new ConfigError(
      `${command} takes one torrent, got ${operands.length}`,
    );
  }
  const report = values["peer-report"];
  if (report !== undefined && !/\.(json|csv)$/i.test(report)) {
    throw new ConfigError(
      `--peer-report "${report}" must end in .json or .csv`,
    );
  }
  const overrides: Record<string, unknown> = {};
  if (values.dir !== undefined) overrides.downloadDir = values.dir;
  if (values.port !== undefined) {
    overrides.listenPort = parsePort(values.port, "--port");
  }
  if (values["log-file"] !== undefined) {
    overrides.logFile = values["log-file"];
  }
  if (values["no-dht"]) overrides.dht = false;
  if (values["no-lsd"]) overrides.lsd = false;
  if (values["no-port-mapping"]) overrides.portMapping = "off";
  const rates = [["download-limit", "downloadLimit"], [
    "upload-limit",
    "uploadLimit",
  ]] as const;
  for (const [flag, key] of rates) {
    if (values[flag] !== undefined) {
      overrides[key] = parseRate(values[flag], `--${flag}`);
    }
  }
  const goals = [
    ["seed-ratio", "seedRatio"],
    ["seed-minutes", "seedMinutes"],
    ["max-minutes", "maxMinutes"],
  ] as const;
  for (const [flag, key] of goals) {
    if (values[flag] !== undefined) {
      overrides[key] = parseNumber(values[flag], `--${flag}`);
    }
  }
  return {
    command,
    torrent: operands[0],
    overrides,
    config: values.config,
    peers: (values.peer ?? []).map(parsePeer),
    peerReport: report,
    quiet: values.quiet ?? false,
    json: values.json ?? false,
    events: values.events,
  };
}

function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new ConfigError(`${what} "${text}" is not a port number (0-65535)`);
  }
  return Number(text);
}

/** Bytes a second, with an optional K, M or G suffix (powers of 1024). */
export function parseRate(text: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)([KMG]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) {
    throw new ConfigError(`${what} "${text}" is not a rate (e.g. 500K, 5M, 0)`);
  }
  const scale = {
    "": 1,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
  }[match[2].toUpperCase() as "" | "K" | "M" | "G"];
  return Math.round(Number(match[1]) * scale);
}

function parseNumber(text: string, what: string): number {
  if (!/^\d+(\.\d+)?$/.test(text)) {
    throw new ConfigError(`${what} "${text}" is not a number`);
  }
  return Number(text);
}

/** HOST:PORT, with IPv6 hosts in brackets: [::1]:6881. */
export function parsePeer(text: string): PeerAddress {
  const address = parseHostPort(text);
  if (!address) {
    throw new ConfigError(
      `--peer "${text}" is not HOST:PORT (a port of 1-65535, [IPv6] in brackets)`,
    );
  }
  const port = address.port;
  if (port === 0) {
    throw new ConfigError(`--peer "${text}": port 0 cannot be dialled`);
  }
  return address;
}
