// The client's settings: embedded defaults, a JSON file that overrides them
// (every key checked for name, type and range), and CLI flags on top.

import { parseHostPort } from "./net/address.ts";

export interface Config {
  downloadDir: string;
  torrentsDir: string;
  onComplete: string;
  logFile: string;
  listenPort: number;
  maxPeers: number;
  maxHalfOpen: number;
  maxRequestsPerPeer: number;
  pipelineSeconds: number;
  maxPieceMemoryMiB: number;
  connectTimeoutSeconds: number;
  peerIdleSeconds: number;
  snubSeconds: number;
  reconnectBaseSeconds: number;
  trackerTimeoutSeconds: number;
  udpTrackerRetries: number;
  numWant: number;
  minReannounceSeconds: number;
  resumeSaveSeconds: number;
  logIntervalSeconds: number;
  uploadSlots: number;
  downloadLimit: number;
  uploadLimit: number;
  seedRatio: number;
  seedMinutes: number;
  maxActiveDownloads: number;
  maxActiveSeeds: number;
  maxMinutes: number;
  dht: boolean;
  dhtBootstrap: string[];
  pex: boolean;
  lsd: boolean;
  portMapping: string;
  gateway: string;
  portMappingLeaseSeconds: number;
}

interface KeySpec {
  min: number;
  max: number;
  integer: boolean;
  doc: string;
}

export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  downloadDir: "downloads",
  torrentsDir: "torrents",
  onComplete: "",
  logFile: "",
  listenPort: 6881,
  maxPeers: 50,
  maxHalfOpen: 8,
  maxRequestsPerPeer: 250,
  pipelineSeconds: 2,
  maxPieceMemoryMiB: 64,
  connectTimeoutSeconds: 5,
  peerIdleSeconds: 120,
  snubSeconds: 30,
  reconnectBaseSeconds: 15,
  trackerTimeoutSeconds: 15,
  udpTrackerRetries: 2,
  numWant: 80,
  minReannounceSeconds: 30,
  resumeSaveSeconds: 30,
  logIntervalSeconds: 5,
  uploadSlots: 8,
  downloadLimit: 0,
  uploadLimit: 0,
  seedRatio: 0,
  seedMinutes: 0,
  maxActiveDownloads: 3,
  maxActiveSeeds: 1000,
  maxMinutes: 0,
  dht: true,
  dhtBootstrap: Object.freeze([
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
  ]) as string[],
  pex: true,
  lsd: true,
  portMapping: "auto",
  gateway: "",
  portMappingLeaseSeconds: 3600,
});

type StringKey =
  | "downloadDir"
  | "torrentsDir"
  | "onComplete"
  | "logFile"
  | "portMapping"
  | "gateway";
type BooleanKey = "dht" | "pex" | "lsd";
type ListKey = "dhtBootstrap";

/** String keys: whether they may be empty, the values allowed (if a closed set), and what they mean. */
export const STRING_KEYS: Record<
  StringKey,
  { allowEmpty: boolean; choices?: readonly string[]; doc: string }
> = {
  downloadDir: {
    allowEmpty: false,
    doc: "folder the torrents' files are saved in (flag --dir)",
  },
  torrentsDir: {
    allowEmpty: false,
    doc:
      "folder whose .torrent files `download` takes when given no torrent (batch mode)",
  },
  onComplete: {
    allowEmpty: true,
    doc:
      "shell command run when a torrent completes, with BTCLIENT_NAME, BTCLIENT_INFOHASH and BTCLIENT_PATH set; empty for none",
  },
  logFile: {
    allowEmpty: true,
    doc:
      "file that log lines are appended to, besides the output; empty for none (flag --log-file)",
  },
  portMapping: {
    allowEmpty: false,
    choices: ["auto", "pcp", "natpmp", "upnp", "off"],
    doc:
      'open the listen port on the router: "auto" tries PCP, then NAT-PMP, then UPnP IGD; "off" for none (flag --no-port-mapping)',
  },
  gateway: {
    allowEmpty: true,
    doc:
      "router address for PCP and NAT-PMP; empty: the default gateway from the routing table",
  },
};

/** On/off keys. */
export const BOOLEAN_KEYS: Record<BooleanKey, { doc: string }> = {
  dht: {
    doc:
      "find peers through the DHT (BEP 5); never for private torrents (flag --no-dht)",
  },
  pex: {
    doc:
      "exchange peer lists with connected peers (BEP 11); never for private torrents",
  },
  lsd: {
    doc:
      "announce and find peers on the local network by multicast (BEP 14); never for private torrents (flag --no-lsd)",
  },
};

/** Keys holding a list of HOST:PORT strings. */
export const LIST_KEYS: Record<ListKey, { doc: string }> = {
  dhtBootstrap: {
    doc:
      "DHT nodes (HOST:PORT) asked first when no saved routing table has live nodes",
  },
};

/** Numeric keys: range and meaning (README and config.example.json follow these). */
export const NUMERIC_KEYS: Record<
  Exclude<keyof Config, StringKey | BooleanKey | ListKey>,
  KeySpec
> = {
  listenPort: {
    min: 0,
    max: 65535,
    integer: true,
    doc: "TCP port for incoming peers (0: any free port)",
  },
  maxPeers: {
    min: 1,
    max: 1000,
    integer: true,
    doc: "most peer connections at once",
  },
  maxHalfOpen: {
    min: 1,
    max: 100,
    integer: true,
    doc: "most connection attempts in progress at once",
  },
  maxRequestsPerPeer: {
    min: 1,
    max: 2000,
    integer: true,
    doc: "most block requests in flight to one peer",
  },
  pipelineSeconds: {
    min: 0.1,
    max: 30,
    integer: false,
    doc: "seconds of a peer's rate kept in flight as requests",
  },
  maxPieceMemoryMiB: {
    min: 1,
    max: 4096,
    integer: false,
    doc: "memory for pieces being downloaded (the in-flight bound)",
  },
  connectTimeoutSeconds: {
    min: 0.1,
    max: 300,
    integer: false,
    doc: "time allowed for a TCP connect plus handshake",
  },
  peerIdleSeconds: {
    min: 5,
    max: 3600,
    integer: false,
    doc: "drop a peer that sends nothing for this long",
  },
  snubSeconds: {
    min: 1,
    max: 600,
    integer: false,
    doc:
      "a peer that sends no block for this long with requests pending is snubbed",
  },
  reconnectBaseSeconds: {
    min: 0,
    max: 3600,
    integer: false,
    doc: "first wait before redialing a closed peer; doubles per failure",
  },
  trackerTimeoutSeconds: {
    min: 0.1,
    max: 300,
    integer: false,
    doc: "HTTP tracker timeout, and first UDP retransmit wait (BEP 15 uses 15)",
  },
  udpTrackerRetries: {
    min: 0,
    max: 8,
    integer: true,
    doc: "UDP tracker retransmissions, each waiting twice as long",
  },
  numWant: {
    min: 0,
    max: 1000,
    integer: true,
    doc: "peers asked of a tracker per announce",
  },
  minReannounceSeconds: {
    min: 1,
    max: 86400,
    integer: false,
    doc: "earliest re-announce when short of peers",
  },
  resumeSaveSeconds: {
    min: 1,
    max: 86400,
    integer: false,
    doc: "how often the resume file is saved",
  },
  logIntervalSeconds: {
    min: 0.5,
    max: 3600,
    integer: false,
    doc: "seconds between progress lines when not on a terminal",
  },
  uploadSlots: {
    min: 1,
    max: 100,
    integer: true,
    doc: "peers unchoked at once, one of them the optimistic unchoke",
  },
  downloadLimit: {
    min: 0,
    max: 2 ** 40,
    integer: true,
    doc:
      "global download cap in bytes a second, 0 for none (flag --download-limit)",
  },
  uploadLimit: {
    min: 0,
    max: 2 ** 40,
    integer: true,
    doc:
      "global upload cap in bytes a second, 0 for none (flag --upload-limit)",
  },
  seedRatio: {
    min: 0,
    max: 1000,
    integer: false,
    doc:
      "after completing, seed until uploaded/size reaches this; 0 for no ratio goal (flag --seed-ratio)",
  },
  seedMinutes: {
    min: 0,
    max: 525600,
    integer: false,
    doc:
      "after completing, seed this many minutes; 0 for no time goal (flag --seed-minutes)",
  },
  maxActiveDownloads: {
    min: 1,
    max: 100,
    integer: true,
    doc:
      "torrents downloading (or fetching a magnet's metadata) at once; the others wait their turn",
  },
  maxActiveSeeds: {
    min: 0,
    max: 10000,
    integer: true,
    doc:
      "torrents seeding at once, apart from the downloads; a torrent completed beyond it ends without seeding",
  },
  maxMinutes: {
    min: 0,
    max: 525600,
    integer: false,
    doc:
      "stop cleanly after this many minutes, saving state (a cron window); 0 for no limit (flag --max-minutes)",
  },
  portMappingLeaseSeconds: {
    min: 10,
    max: 86400,
    integer: true,
    doc:
      "lease asked of the router for the port mapping, renewed at half of it; a mapping left by a killed run ends with it",
  },
};

/** A config file or flag that cannot be used; the message names it. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Keys of earlier versions, named in the error so that a config can be mended. */
const RENAMED_KEYS: Record<string, string> = {
  maxActiveTorrents:
    " (now maxActiveDownloads; seeding torrents count against maxActiveSeeds)",
};

/** Reads a JSON config file over the defaults; `source` names it in errors. */
export function parseConfig(text: string, source: string): Config {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `${source}: not valid JSON (${e instanceof Error ? e.message : e})`,
    );
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(`${source}: must hold a JSON object`);
  }
  return applyOverrides(
    { ...DEFAULT_CONFIG },
    data as Record<string, unknown>,
    source,
  );
}

/** Checks and applies key/value overrides (from a file or from flags). */
export function applyOverrides(
  base: Config,
  overrides: Record<string, unknown>,
  source: string,
): Config {
  const result = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (key.startsWith("//") || key === "$comment") continue; // documentation keys
    if (Object.hasOwn(STRING_KEYS, key)) {
      const spec = STRING_KEYS[key as StringKey];
      if (
        typeof value !== "string" || (!spec.allowEmpty && value.trim() === "")
      ) {
        throw new ConfigError(
          `${source}: ${key} must be a ${
            spec.allowEmpty ? "" : "non-empty "
          }string`,
        );
      }
      if (spec.choices && !spec.choices.includes(value)) {
        throw new ConfigError(
          `${source}: ${key} must be one of ${
            spec.choices.map((c) => `"${c}"`).join(", ")
          }, not ${JSON.stringify(value)}`,
        );
      }
      result[key as StringKey] = value;
      continue;
    }
    if (Object.hasOwn(BOOLEAN_KEYS, key)) {
      if (typeof value !== "boolean") {
        throw new ConfigError(
          `${source}: ${key} must be true or false, not ${
            JSON.stringify(value)
          }`,
        );
      }
      result[key as BooleanKey] = value;
      continue;
    }
    if (Object.hasOwn(LIST_KEYS, key)) {
      if (!Array.isArray(value)) {
        throw new ConfigError(
          `${source}: ${key} must be a list of "HOST:PORT" strings`,
        );
      }
      for (const item of value) {
        if (typeof item !== "string" || !isHostPort(item)) {
          throw new ConfigError(
            `${source}: ${key} entry ${JSON.stringify(item)} is not HOST:PORT`,
          );
        }
      }
      result[key as ListKey] = [...value];
      continue;
    }
    if (!Object.hasOwn(NUMERIC_KEYS, key)) {
      throw new ConfigError(
        `${source}: unknown key "${key}"${
          Object.hasOwn(RENAMED_KEYS, key) ? RENAMED_KEYS[key] : ""
        }`,
      );
    }
    const name = key as keyof typeof NUMERIC_KEYS;
    const spec = NUMERIC_KEYS[name];
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new ConfigError(
        `${source}: ${key} must be a number, not ${JSON.stringify(value)}`,
      );
    }
    if (spec.integer && !Number.isInteger(value)) {
      throw new ConfigError(
        `${source}: ${key} must be a whole number, not ${value}`,
      );
    }
    if (value < spec.min || value > spec.max) {
      throw new ConfigError(
        `${source}: ${key} is ${value}, not between ${spec.min} and ${spec.max}`,
      );
    }
    result[name] = value;
  }
  return result;
}

/** HOST:PORT with a port 1-65535; IPv6 hosts in brackets. */
function isHostPort(text: string): boolean {
  return (parseHostPort(text)?.port ?? 0) >= 1;
}
