// What users run is what the tests run: one permission set, in deno.json's
// `client` task, used by the download and seed tasks and read from there by
// everything else that starts the client.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { clientArgv, clientFlags } from "../../tools/client_command.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const WITH_CLIENT_FLAGS = [
  "tools/client_command.ts",
  "tools/compile.ts",
  "tools/install.ts",
];
const tasks = JSON.parse(fs.readFileSync(`${ROOT}deno.json`, "utf8")).tasks;

Deno.test("the download and seed tasks run the client task", () => {
  assert.match(tasks.client, /^deno run (-\S+ )+main\.ts$/);
  assert.equal(tasks.download, "deno task -q client download");
  assert.equal(tasks.seed, "deno task -q client seed");
  assert.deepEqual(
    clientArgv(["seed", "x"]).slice(1),
    ["run", ...clientFlags(), `${ROOT}main.ts`, "seed", "x"],
  );
});

Deno.test("no test, benchmark or tool starts main.ts but through tools/client_command.ts", () => {
  const offenders: string[] = [];
  // A string literal naming main.ts, or a path built to it.
  const startsMain = /["'`][^"'`\n]*main\.ts["'`]|MAIN_TS/;
  for (const folder of ["tests", "bench", "tools"]) {
    for (const file of sourceFiles(`${ROOT}${folder}`)) {
      // These pass the client task's flags (checked below).
      if (WITH_CLIENT_FLAGS.some((t) => file.endsWith(t))) continue;
      const lines = fs.readFileSync(file, "utf8").split("\n");
      lines.forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "");
        if (startsMain.test(code) && !code.includes("client_command.ts")) {
          offenders.push(`${path.relative(ROOT, file)}:${i + 1}: ${line}`);
        }
      });
    }
  }
  // This file names the pattern itself.
  const self = path.relative(ROOT, new URL(import.meta.url).pathname);
  assert.deepEqual(offenders.filter((o) => !o.startsWith(self)), []);
});

Deno.test("compile and install take the client task's flags", () => {
  for (const tool of WITH_CLIENT_FLAGS.slice(1)) {
    const text = fs.readFileSync(`${ROOT}${tool}`, "utf8");
    assert.match(text, /\.\.\.clientFlags\(\)/, tool);
    assert.doesNotMatch(text, /"-[ANRWE]"|--allow-/, tool);
  }
});

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(full);
    else if (/\.(ts|py|sh)$/.test(entry.name)) yield full;
  }
}
