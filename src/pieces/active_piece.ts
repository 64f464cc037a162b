// A piece being downloaded: its buffer, the state of each block, and an
// incremental SHA-1 that advances over the in-order prefix of received blocks
// (blocks arrive out of order; hashing as they come spreads the cost and
// leaves only the tail to hash when the last block lands).

import { createHash, type Hash } from "node:crypto";
import { BLOCK_SIZE } from "./geometry.ts";

// SHA-1 over 16 KiB updates runs at about 80% of its speed over 256 KiB ones
// (PLATFORM.md section 1), so the prefix is hashed in runs of 16 blocks.
const HASH_BATCH_BLOCKS = 16;

export const BlockState = { Free: 0, Requested: 1, Received: 2 } as const;

export class ActivePiece {
  /** Per block: Free, Requested or Received. */
  readonly states: Uint8Array;
  /** Per block: how many peers have an outstanding request for it (endgame may ask twice). */
  readonly requesters: Uint8Array;
  /** Per block: number of the peer that delivered it (for blame on a hash failure). */
  readonly senders: Int32Array;
  received = 0;
  freeBlocks: number;
  private hasher: Hash = createHash("sha1");
  private hashedBlocks = 0;

  constructor(
    readonly index: number,
    readonly size: number,
    readonly buffer: Uint8Array,
  ) {
    const blocks = Math.ceil(size / BLOCK_SIZE);
    this.states = new Uint8Array(blocks);
    this.requesters = new Uint8Array(blocks);
    this.senders = new Int32Array(blocks).fill(-1);
    this.freeBlocks = blocks;
  }

  get blockCount(): number {
    return this.states.length;
  }

  get complete(): boolean {
    return this.received === this.states.length;
  }

  markRequested(block: number): void {
    if (this.states[block] === BlockState.Free) {
      this.states[block] = BlockState.Requested;
      this.freeBlocks--;
    }
    this.requesters[block]++;
  }

  /** A request for the block is gone (choke, cancel, timeout, disconnect). */
  release(block: number): void {
    if (this.requesters[block] > 0) this.requesters[block]--;
    if (
      this.requesters[block] === 0 &&
      this.states[block] === BlockState.Requested
    ) {
      this.states[block] = BlockState.Free;
      this.freeBlocks++;
    }
  }

  /** Copies a block in; false when it was already received (an endgame duplicate). */
  receive(block: number, data: Uint8Array, sender: number): boolean {
    if (this.states[block] === BlockState.Received) return false;
    if (this.states[block] === BlockState.Free) this.freeBlocks--;
    this.states[block] = BlockState.Received;
    this.senders[block] = sender;
    this.buffer.set(data, block * BLOCK_SIZE);
    this.received++;
    this.advanceHash(this.complete ? 1 : HASH_BATCH_BLOCKS);
    return true;
  }

  /** Compares the finished digest with the expected one. */
  verify(expected: Uint8Array): boolean {
    const digest = this.hasher.digest();
    for (let i = 0; i < 20; i++) if (digest[i] !== expected[i]) return false;
    return true;
  }

  /** Forgets every block after a hash failure so the piece is fetched again. */
  reset(): void {
    this.states.fill(BlockState.Free);
    this.requesters.fill(0);
    this.received = 0;
    this.freeBlocks = this.states.length;
    this.hasher = createHash("sha1");
    this.hashedBlocks = 0;
  }

  /** Hashes the received in-order prefix once it is at least `minBlocks` long. */
  private advanceHash(minBlocks: number): void {
    let b = this.hashedBlocks;
    while (b < this.states.length && this.states[b] === BlockState.Received) {
      b++;
    }
    if (b === this.hashedBlocks || b - this.hashedBlocks < minBlocks) return;
    const from = this.hashedBlocks * BLOCK_SIZE;
    const to = Math.min(b * BLOCK_SIZE, this.size);
    this.hasher.update(this.buffer.subarray(from, to));
    this.hashedBlocks = b;
  }
}
