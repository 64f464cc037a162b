// The one way our client is started. The `client` task in deno.json holds
// its permission flags; the `download` and `seed` tasks run that task, and
// everything else that starts the client (deno task compile and install, the
// tests, the benchmarks) reads the flags from it here, so no second set can
// drift from what users run.

const ROOT = new URL("../", import.meta.url);

/** The entry point, as an absolute path. */
export const MAIN_TS = new URL("main.ts", ROOT).pathname;

/** The permission flags of the `client` task, e.g. ["-A", "--no-prompt"]. */
export function clientFlags(): string[] {
  const config = JSON.parse(
    Deno.readTextFileSync(new URL("deno.json", ROOT)),
  );
  const task: unknown = config?.tasks?.client;
  const match = typeof task === "string"
    ? /^deno run ((?:-\S+ )*)main\.ts$/.exec(task)
    : null;
  if (!match) {
    throw new Error(
      `deno.json: the client task must read "deno run <flags> main.ts", not ${
        JSON.stringify(task)
      }`,
    );
  }
  return match[1].trim().split(" ");
}

/** argv that runs the client with `args`, exactly as `deno task client` does. */
export function clientArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", ...clientFlags(), MAIN_TS, ...args];
}
