// config.example.json documents every key with its embedded default.

import assert from "node:assert/strict";
import { DEFAULT_CONFIG, parseConfig } from "../../src/config.ts";

const EXAMPLE = new URL("../../config.example.json", import.meta.url);

Deno.test("config.example.json parses to exactly the embedded defaults", async () => {
  const text = await Deno.readTextFile(EXAMPLE);
  assert.deepEqual(parseConfig(text, "config.example.json"), {
    ...DEFAULT_CONFIG,
  });
});

Deno.test("config.example.json documents every key", async () => {
  const data = JSON.parse(await Deno.readTextFile(EXAMPLE)) as Record<
    string,
    unknown
  >;
  for (const key of Object.keys(DEFAULT_CONFIG)) {
    assert.ok(key in data, `${key} is missing`);
    assert.equal(
      typeof data[`//${key}`],
      "string",
      `${key} has no "//${key}" explanation`,
    );
  }
});
