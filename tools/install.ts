// `deno task install [--root DIR] [--name NAME]`: installs the client as a
// command (default `btclient` in DIR/bin, DIR being $DENO_INSTALL_ROOT or
// ~/.deno) with the client task's permissions, for shells and cron jobs.
// Unlike `deno compile` it needs nothing from the internet: `deno install`
// writes a small script that runs this checkout's main.ts. That script
// calls whatever `deno` is on PATH, which a cron job's PATH often lacks, so
// it is pointed at the Deno that ran the install. An earlier install of the
// same name is replaced.

import { parseArgs } from "node:util";
import { clientFlags, MAIN_TS } from "./client_command.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    name: { type: "string", default: "btclient" },
  },
});
const root = values.root ?? Deno.env.get("DENO_INSTALL_ROOT") ??
  `${Deno.env.get("HOME")}/.deno`;
const config = new URL("../deno.json", import.meta.url).pathname;
const args = [
  "install",
  "--global",
  "--force",
  "--config",
  config,
  ...clientFlags(),
  "--name",
  values.name,
  "--root",
  root,
  MAIN_TS,
];
const { code } = await new Deno.Command(Deno.execPath(), {
  args,
  stdout: "inherit",
  stderr: "inherit",
}).output();
if (code === 0) {
  const shim = `${root}/bin/${values.name}`;
  const text = Deno.readTextFileSync(shim);
  Deno.writeTextFileSync(
    shim,
    text.replace(/^exec deno /m, `exec '${Deno.execPath()}' `),
  );
}
Deno.exit(code);
