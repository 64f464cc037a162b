// Local Service Discovery (BEP 14) against libtorrent 2.0.8, on the real
// multicast group 239.192.152.143:6771, inside a network namespace this test
// creates, so that no datagram can leave the machine.
//
// What works (checked here): a namespace with only `lo` up is enough,
// because both sides pin the group to 127.0.0.1: they join it on that
// address and send from it (IP_MULTICAST_IF; libtorrent does the same for its
// listen interface). Every socket in the namespace that joined, the sender
// included, then gets each announce, from 127.0.0.1:6771. Neither the
// MULTICAST flag on lo nor a 239.0.0.0/8 route is needed. Without the pinning
// they would be: the join fails (EINVAL) and the send has no route, and with
// a route alone the datagrams arrive from 0.0.0.0, which libtorrent ignores
// (it takes announces only from its listen interface's network). libtorrent
// binds 0.0.0.0:6771 with SO_REUSEADDR as we do, so both share the port. No
// veth or dummy pair is needed.

import assert from "node:assert/strict";
import { infoHashOf, makeTorrent } from "../helpers/mktorrent.ts";
import { DEBIAN_PYTHON } from "../helpers/mktorrent.ts";
import { makeSingleFile } from "../helpers/payload.ts";
import { ExternalProcess } from "../helpers/process.ts";

const LSD_PEER = new URL("../helpers/lsd_peer.ts", import.meta.url).pathname;
const LT_LSD_PEER =
  new URL("../helpers/lt_lsd_peer.py", import.meta.url).pathname;
const WAIT_MS = 15_000;

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null" }).output();
  if (!out.success) {
    throw new Error(
      `ip ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** A namespace with nothing but lo; see the comment at the top. */
async function makeNamespace(name: string): Promise<void> {
  await ip("netns", "add", name);
  await ip("-n", name, "link", "set", "lo", "up");
}

Deno.test("LSD: our LocalDiscovery and libtorrent find each other on the multicast group", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lsd-interop-" });
  const namespace = `lsd-test-${Deno.pid}`;
  const processes: ExternalProcess[] = [];
  try {
    const payload = await makeSingleFile(dir, "payload.bin", 200_000);
    const torrent = await makeTorrent(payload, `${dir}/t.torrent`, {
      announce: [],
      pieceLengthLog2: 15,
    });
    const infoHash = await infoHashOf(torrent);
    await Deno.mkdir(`${dir}/leech`);
    await makeNamespace(namespace);

    // Ours first, announcing every second, so libtorrent's first announces
    // (sent when its torrent starts) find us listening.
    const ours = ExternalProcess.spawn({
      name: "our LocalDiscovery",
      cmd: "ip",
      args: ["netns", "exec", namespace, Deno.execPath(), "run", "-A"]
        .concat(["--no-prompt", LSD_PEER, infoHash, "127.0.0.1", "1000"]),
      lifetimeSec: 60,
    });
    processes.push(ours);
    const [, ourPort] = await ours.waitForLine(/^READY (\d+)$/, WAIT_MS);

    const libtorrent = ExternalProcess.spawn({
      name: "libtorrent LSD leecher",
      cmd: "ip",
      args: ["netns", "exec", namespace, DEBIAN_PYTHON, LT_LSD_PEER]
        .concat(["--torrent", torrent, "--save-path", `${dir}/leech`])
        .concat(["--timeout", "50"]),
      lifetimeSec: 60,
    });
    processes.push(libtorrent);
    const [, ltPort] = await libtorrent.waitForLine(/^LISTEN (\d+)$/, WAIT_MS);

    // We heard libtorrent's announce and report its listen port.
    await ours.waitForLine(
      new RegExp(`^PEER ${infoHash} 127\\.0\\.0\\.1 ${ltPort}$`),
      WAIT_MS,
    );
    // libtorrent heard ours, with our port, and dialled it.
    await libtorrent.waitForLine(
      new RegExp(`^LSD <== LSD: 127\\.0\\.0\\.1:${ourPort} ih: ${infoHash}$`),
      WAIT_MS,
    );
    await ours.waitForLine(
      new RegExp(`^HANDSHAKE ${infoHash} 127\\.0\\.0\\.1$`),
      WAIT_MS,
    );
    // Our own announces came back to us too (loopback) and were not peers;
    // nothing was malformed or failed to send.
    await assert.rejects(
      ours.waitForLine(new RegExp(`^PEER .* ${ourPort}$`), 1),
    );
    await assert.rejects(ours.waitForLine(/^LOG /, 1));
  } finally {
    for (const process of processes) await process.stop();
    await ip("netns", "delete", namespace).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
