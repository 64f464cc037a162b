import assert from "node:assert/strict";
import { ExternalProcess } from "../helpers/process.ts";

function shell(script: string, lifetimeSec = 10): ExternalProcess {
  return ExternalProcess.spawn({
    name: "sh",
    cmd: "sh",
    args: ["-c", script],
    lifetimeSec,
  });
}

Deno.test("ExternalProcess: waits for a ready line on stdout or stderr, then stops", async () => {
  const child = shell("echo starting; echo 'READY 1234' >&2; exec sleep 30");
  const [, port] = await child.waitForLine(/^READY (\d+)$/, 5000);
  assert.equal(port, "1234");
  // a line seen earlier is found again
  assert.ok(await child.waitForLine(/^starting$/, 0));
  const status = await child.stop();
  assert.equal(status.success, false);
});

Deno.test("ExternalProcess: an exit before the ready line is an error with the output's tail", async () => {
  const child = shell("echo 'bad option --frob'; exit 3");
  await assert.rejects(
    child.waitForLine(/^READY/, 5000),
    /sh \(pid \d+\) exited \(code 3\) before printing \/\^READY\/; output: bad option --frob/,
  );
  await child.stop();
});

Deno.test("ExternalProcess: waiting for a line times out", async () => {
  const child = shell("echo quiet; exec sleep 30");
  await assert.rejects(
    child.waitForLine(/^READY/, 100),
    /printed no line matching .* within 100 ms; output: quiet/,
  );
  await child.stop();
});

Deno.test("ExternalProcess: the lifetime bound kills a process that overstays", async () => {
  const child = shell("exec sleep 30", 1);
  await assert.rejects(
    child.succeeded(),
    /failed \(lifetime exceeded, code 124\)/,
  );
});
