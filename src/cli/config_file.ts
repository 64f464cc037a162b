// Which config the client runs with, in this order: --config FILE, then
// config.json in the working directory, then config.json beside a compiled
// binary (so a copied binary and its config travel together), then the
// embedded defaults. Flags apply on top. The caller logs which one it was.

import * as fs from "node:fs";
import * as path from "node:path";
import {
  applyOverrides,
  type Config,
  ConfigError,
  DEFAULT_CONFIG,
  parseConfig,
} from "../config.ts";

export interface LoadedConfig {
  config: Config;
  /** The file used, or "embedded defaults". */
  source: string;
}

export function loadConfig(
  explicit: string | undefined,
  overrides: Record<string, unknown>,
): LoadedConfig {
  const file = explicit ?? [
    "config.json",
    besideBinary(),
  ].find((candidate) => candidate !== undefined && fs.existsSync(candidate));
  let config: Config = { ...DEFAULT_CONFIG };
  if (file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw new ConfigError(
        `cannot read config ${file}: ${
          e instanceof Error ? e.message.split("\n")[0] : e
        }`,
      );
    }
    config = parseConfig(text, file);
  }
  return {
    config: applyOverrides(config, overrides, "command line"),
    source: file === undefined ? "embedded defaults" : path.resolve(file),
  };
}

/** config.json next to the executable, when running as a compiled binary. */
function besideBinary(): string | undefined {
  const exe = Deno.execPath();
  // Under `deno run` the executable is deno itself; its folder is no place for our config.
  if (path.basename(exe) === "deno") return undefined;
  return path.join(path.dirname(exe), "config.json");
}
