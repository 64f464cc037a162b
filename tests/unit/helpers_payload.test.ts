import assert from "node:assert/strict";
import {
  makeMultiFile,
  makeSingleFile,
  MULTI_FILE_LAYOUT,
  sha256Tree,
} from "../helpers/payload.ts";

Deno.test("payload: the multi-file layout is made with the listed sizes and random contents", async () => {
  const dir = await Deno.makeTempDir({ prefix: "helpers-payload-" });
  try {
    const root = await makeMultiFile(dir, "multi");
    for (const file of MULTI_FILE_LAYOUT) {
      assert.equal((await Deno.stat(`${root}/${file.path}`)).size, file.size);
    }
    const sums = await sha256Tree(root);
    assert.deepEqual(
      [...sums.keys()],
      ["a.bin", "empty.txt", "one.byte", "sub/c.dat", "sub/deeper/b.bin"],
    );
    // the same size twice gives different bytes
    await makeSingleFile(dir, "x", 70_000);
    await makeSingleFile(dir, "y", 70_000);
    const pair = await sha256Tree(dir);
    assert.notEqual(pair.get("x"), pair.get("y"));
    assert.equal(pair.get("multi/one.byte"), sums.get("one.byte"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
