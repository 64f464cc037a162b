// Requests a peer made of us, waiting to be served (BEP 3 `request`,
// `cancel`; BEP 6 `reject`). Bounded: a peer that keeps more requests queued
// than we allow, or keeps asking for what it may not have, is flooding.

export interface QueuedRequest {
  index: number;
  begin: number;
  length: number;
}

/** Most requests queued per peer: libtorrent's default `reqq` is 500 too. */
export const MAX_QUEUED_REQUESTS = 500;
/** Invalid or excess requests tolerated from one peer before it is dropped. */
const MAX_BAD_REQUESTS = 50;

export class UploadQueue {
  readonly pending: QueuedRequest[] = [];
  /** Requests refused as invalid or beyond the queue limit. */
  badRequests = 0;

  get flooding(): boolean {
    return this.badRequests > MAX_BAD_REQUESTS;
  }

  /** Queues a valid request; false when the queue is full. */
  add(request: QueuedRequest): boolean {
    if (this.pending.length >= MAX_QUEUED_REQUESTS) {
      this.badRequests++;
      return false;
    }
    this.pending.push(request);
    return true;
  }

  refused(): void {
    this.badRequests++;
  }

  /** Drops a queued request; false when it was not queued (already served). */
  cancel(index: number, begin: number, length: number): boolean {
    const at = this.pending.findIndex((r) =>
      r.index === index && r.begin === begin && r.length === length
    );
    if (at < 0) return false;
    this.pending.splice(at, 1);
    return true;
  }

  /** Empties the queue, returning what was in it (to reject under BEP 6). */
  clear(): QueuedRequest[] {
    return this.pending.splice(0);
  }
}
