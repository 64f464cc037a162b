// One UDP socket talking to the gateway's port-control port (5351, shared by
// NAT-PMP and PCP, RFC 6887 §19): sends a request, resends it after each wait
// of a schedule (RFC 6886 §3.1 and RFC 6887 §8.1.1 both retransmit with
// doubling waits), and takes the first reply that the caller recognises.
// Datagrams from any other address or port, and replies nobody recognises,
// are ignored: anyone on the LAN can send us a datagram.

import dgram from "node:dgram";
import type { Clock, Timer } from "../net/clock.ts";

export class GatewaySocket {
  readonly #socket: dgram.Socket;
  readonly #waiters = new Set<(datagram: Uint8Array) => void>();
  /** Ends every request in progress, unanswered (on close). */
  readonly #cancels = new Set<() => void>();
  #closed = false;
  #heard = false;

  private constructor(
    readonly gateway: string,
    readonly port: number,
    socket: dgram.Socket,
    private readonly clock: Clock,
  ) {
    this.#socket = socket;
    socket.on("message", (msg, rinfo) => {
      if (rinfo.address !== gateway || rinfo.port !== port) return;
      this.#heard = true;
      const datagram = new Uint8Array(msg);
      for (const waiter of [...this.#waiters]) waiter(datagram);
    });
    // Send errors surface as a request that got no answer.
    socket.on("error", () => {});
  }

  /**
   * Whether any datagram came from the gateway's port, usable or not: a
   * gateway that sent nothing at all has no server on that port.
   */
  get heard(): boolean {
    return this.#heard;
  }

  /** The retransmit waits run on `clock`. */
  static async open(
    gateway: string,
    port: number,
    clock: Clock,
  ): Promise<GatewaySocket> {
    const socket = dgram.createSocket({
      type: "udp4",
      // Deno's node:dgram reads each datagram into a new buffer of this
      // size (64 KiB by default); PCP answers are at most 1100 bytes.
      recvBufferSize: 1500,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return new GatewaySocket(gateway, port, socket, clock);
  }

  /**
   * Sends `packet`, then again after each of `waitsMs` runs out, until
   * `accept` returns something other than undefined for a reply. Undefined
   * when the last wait ends unanswered, or when `signal` aborts.
   */
  request<T>(
    packet: Uint8Array,
    waitsMs: readonly number[],
    accept: (datagram: Uint8Array) => T | undefined,
    signal: AbortSignal,
  ): Promise<T | undefined> {
    if (this.#closed || signal.aborted) return Promise.resolve(undefined);
    const { promise, resolve } = Promise.withResolvers<T | undefined>();
    let attempt = 0;
    let timer: Timer | undefined;
    const finish = (value: T | undefined) => {
      this.clock.clearTimer(timer);
      this.#waiters.delete(onReply);
      this.#cancels.delete(onAbort);
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    };
    const onReply = (datagram: Uint8Array) => {
      const value = accept(datagram);
      if (value !== undefined) finish(value);
    };
    const onAbort = () => finish(undefined);
    const send = () => {
      if (attempt >= waitsMs.length) return finish(undefined);
      this.#socket.send(packet, this.port, this.gateway, () => {});
      timer = this.clock.setTimer(send, waitsMs[attempt++]);
    };
    this.#waiters.add(onReply);
    this.#cancels.add(onAbort);
    signal.addEventListener("abort", onAbort, { once: true });
    send();
    return promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cancel of [...this.#cancels]) cancel();
    this.#socket.close();
  }
}

/** Waits of `first` ms doubling `count` times (RFC 6886 §3.1 uses 250 ms). */
export function doublingWaits(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first * 2 ** i);
}
