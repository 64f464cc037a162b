// `deno task compile` makes a standalone binary of the client. Deno needs a
// denort runtime for that, which it downloads unless DENORT_BIN names one;
// with neither, the test is skipped with its reason.

import assert from "node:assert/strict";
import { VERSION } from "../../src/version.ts";

const denort = Deno.env.get("DENORT_BIN");
const ROOT = new URL("../..", import.meta.url).pathname;

if (!denort) {
  console.log(
    "compile test skipped: no denort runtime (set DENORT_BIN to one; none can be downloaded here)",
  );
}

Deno.test({
  name:
    "deno task compile builds a binary that runs the client, not the deno CLI",
  ignore: !denort,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "btclient-compile-" });
    try {
      const build = await new Deno.Command(Deno.execPath(), {
        args: [
          "compile",
          "--no-prompt",
          "-N",
          "-R",
          "-W",
          "-E",
          "-o",
          `${out}/btclient`,
          "main.ts",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
      const run = await new Deno.Command(`${out}/btclient`, {
        args: ["--version"],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(10_000),
      }).output();
      const text = new TextDecoder().decode(run.stdout).trim();
      // The full deno CLI used as the runtime would print "deno 2..." or start a REPL.
      assert.doesNotMatch(text, /^deno \d/);
      assert.equal(text, `btclient ${VERSION}`);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
