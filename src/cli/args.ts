// Command-line parsing: a command, its operands and flags, each checked with
// a one-line error. Flags override the config file.

import { parseArgs } from "node:util";
import { ConfigError } from "../config.ts";
import type { PeerAddress } from "../tracker/types.ts";

export interface DownloadArgs {
  command: "download";
  torrent: string;
  dir?: string;
  config?: string;
  port?: number;
  peers: PeerAddress[];
  quiet: boolean;
}

export type ParsedArgs = DownloadArgs | { command: "help" } | {
  command: "version";
};

export const USAGE = `Usage: btclient download <file.torrent> [options]

Downloads a torrent into a folder, verifying every piece, resuming where a
previous run stopped.

Options:
  --dir DIR          download folder (config downloadDir, default "downloads")
  --config FILE      JSON config file (default ./config.json when present)
  --port N           TCP port for incoming peers (config listenPort, default 6881)
  --peer HOST:PORT   dial this peer directly; repeatable; works with or without trackers
  --quiet            print errors only
  -h, --help         show this help
  --version          print the version

Exit codes: 0 complete, 1 failure (disk, network), 2 bad input (torrent file,
config, flags), 130 stopped by SIGINT, 143 stopped by SIGTERM.`;

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
  if (command !== "download") {
    throw new ConfigError(`unknown command "${command}" (try --help)`);
  }
  if (operands.length === 0) {
    throw new ConfigError("download needs a .torrent file");
  }
  if (operands.length > 1) {
    throw new ConfigError(`download takes one torrent, got ${operands.length}`);
  }
  return {
    command: "download",
    torrent: operands[0],
    dir: values.dir,
    config: values.config,
    port: values.port === undefined
      ? undefined
      : parsePort(values.port, "--port"),
    peers: (values.peer ?? []).map(parsePeer),
    quiet: values.quiet ?? false,
  };
}

function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new ConfigError(`${what} "${text}" is not a port number (0-65535)`);
  }
  return Number(text);
}

/** HOST:PORT, with IPv6 hosts in brackets: [::1]:6881. */
export function parsePeer(text: string): PeerAddress {
  const match = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ??
    /^([^:\[\]]+):(\d+)$/.exec(text);
  if (!match) throw new ConfigError(`--peer "${text}" is not HOST:PORT`);
  const port = parsePort(match[2], `--peer "${text}": port`);
  if (port === 0) {
    throw new ConfigError(`--peer "${text}": port 0 cannot be dialled`);
  }
  return { host: match[1], port };
}
