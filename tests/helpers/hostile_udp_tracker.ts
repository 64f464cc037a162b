// A UDP "tracker" on 127.0.0.1 that never gives a usable answer, for tests of
// what a client does with a dead or broken tier:
//   silent     reads every datagram and answers none (a tracker that is down)
//   noise      answers every datagram with datagrams no BEP 15 client may take:
//              random bytes, a wrong transaction id, a runt (never the right id)
//   malformed  answers with the right transaction id and a reply no client can
//              use (a connect reply 12 bytes long, with an action of 7)
// It counts the datagrams it read, so a test can tell that it was tried.

import dgram from "node:dgram";

export type HostileMode = "silent" | "noise" | "malformed";

export interface HostileUdpTracker {
  /** udp://127.0.0.1:PORT/announce */
  url: string;
  /** Datagrams read so far. */
  readonly received: number;
  stop(): Promise<void>;
}

export async function startHostileUdpTracker(
  mode: HostileMode,
): Promise<HostileUdpTracker> {
  const socket = dgram.createSocket("udp4");
  let received = 0;
  socket.on("message", (msg, from) => {
    received++;
    const request = new Uint8Array(msg);
    const transactionId = request.length >= 16
      ? new DataView(request.buffer, request.byteOffset).getUint32(12)
      : 0;
    for (const out of answers(mode, transactionId)) {
      socket.send(out, from.port, from.address);
    }
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return {
    url: `udp://127.0.0.1:${socket.address().port}/announce`,
    get received() {
      return received;
    },
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function answers(mode: HostileMode, transactionId: number): Uint8Array[] {
  if (mode === "silent") return [];
  if (mode === "malformed") {
    const out = new Uint8Array(12);
    const view = new DataView(out.buffer);
    view.setUint32(0, 7);
    view.setUint32(4, transactionId);
    return [out];
  }
  const random = crypto.getRandomValues(
    new Uint8Array(8 + Math.floor(Math.random() * 200)),
  );
  const wrongId = crypto.getRandomValues(new Uint8Array(16));
  for (const junk of [random, wrongId]) {
    const view = new DataView(junk.buffer);
    if (view.getUint32(4) === transactionId) view.setUint32(4, ~transactionId);
  }
  return [random, wrongId, new Uint8Array(3)];
}
