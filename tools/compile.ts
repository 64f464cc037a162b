// `deno task compile [--target TRIPLE] [--output FILE]`: builds one
// standalone executable of the client (default dist/btclient), with the
// client task's permissions baked in. The config defaults are part of the
// program, so the binary runs with no config file at all. A deno task
// appends its arguments after the script, which `deno compile` would hand to
// the program, so this script places them where the compiler reads them.

import { parseArgs } from "node:util";
import { clientFlags, MAIN_TS } from "./client_command.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string" },
    output: { type: "string", default: "dist/btclient" },
  },
});
const args = ["compile", ...clientFlags(), "-o", values.output];
if (values.target) args.push("--target", values.target);
args.push(MAIN_TS);
const { code } = await new Deno.Command(Deno.execPath(), {
  args,
  stdout: "inherit",
  stderr: "inherit",
}).output();
Deno.exit(code);
