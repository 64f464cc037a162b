// Entry point: parse the command line, run one command, and map errors to
// exit codes with a one-line message (never a stack trace for bad input).

import { parseCommandLine, USAGE } from "./src/cli/args.ts";
import { ExitCode, runTorrentCommand } from "./src/cli/torrent_command.ts";
import { ConfigError } from "./src/config.ts";
import {
  FolderLockedError,
  MagnetError,
  StorageError,
  TorrentFileError,
} from "./src/session/mod.ts";
import { VERSION } from "./src/version.ts";

async function main(argv: string[]): Promise<number> {
  try {
    runFromCallersFolder();
    const args = parseCommandLine(argv);
    if (args.command === "help") {
      console.log(USAGE);
      return ExitCode.Complete;
    }
    if (args.command === "version") {
      console.log(`btclient ${VERSION}`);
      return ExitCode.Complete;
    }
    return await runTorrentCommand(args);
  } catch (e) {
    if (
      e instanceof ConfigError || e instanceof TorrentFileError ||
      e instanceof MagnetError
    ) {
      console.error(`error: ${e.message}`);
      return ExitCode.BadInput;
    }
    if (e instanceof FolderLockedError) {
      console.error(`error: ${e.message}`);
      return ExitCode.Locked;
    }
    if (e instanceof StorageError) {
      console.error(`error: ${e.message}`);
      return ExitCode.Failure;
    }
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    return ExitCode.Failure;
  }
}

/**
 * `deno task` runs the client in the folder of deno.json (this file's), and
 * says where it was called from in INIT_CWD: relative paths on the command
 * line, the download folder and ./config.json mean the caller's folder, as
 * for any other command. Only a run placed here is moved: INIT_CWD is
 * inherited by every process a task starts, which may run elsewhere.
 */
function runFromCallersFolder(): void {
  const callers = Deno.env.get("INIT_CWD");
  const here = new URL(".", import.meta.url);
  if (
    callers === undefined || here.protocol !== "file:" ||
    Deno.cwd() !== decodeURIComponent(here.pathname).replace(/\/$/, "")
  ) return;
  try {
    Deno.chdir(callers);
  } catch { /* gone or unreadable: stay where deno task put us */ }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
