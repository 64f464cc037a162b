// The port trackers and the DHT are told: the listen port until a port
// mapping gives the router's external port, which may come at any time
// during the run (nothing waits for it) and may move on a renewal.

export class AnnouncePort {
  #port: number;
  readonly #listeners = new Set<(port: number) => void>();

  constructor(listenPort: number) {
    this.#port = listenPort;
  }

  get value(): number {
    return this.#port;
  }

  set(port: number): void {
    if (port === this.#port) return;
    this.#port = port;
    for (const listener of this.#listeners) listener(port);
  }

  /** Calls `listener` on every later change; returns the unsubscribe. */
  follow(listener: (port: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
