// BEP 5 get_peers tokens: opaque to the requester, checked when it comes back with
// announce_peer. Ours is SHA-1(secret || requester IP) cut to 8 bytes; the secret changes
// every 5 minutes and the previous one is still accepted, so a token is good for 5 to 10
// minutes, as BEP 5 suggests. Rotation is lazy (on use), so no timer is needed.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const ROTATE_EVERY_MS = 5 * 60_000;
const TOKEN_LENGTH = 8;
const SECRET_LENGTH = 16;

export class TokenSecrets {
  #current = newSecret();
  #previous = newSecret();
  #rotatedAt: number;

  constructor(readonly now: () => number = () => Date.now()) {
    this.#rotatedAt = now();
  }

  /** The token to hand to a requester at this IP address. */
  issue(ip: string): Uint8Array {
    this.#rotate();
    return tokenFor(this.#current, ip);
  }

  /** Whether `token` was issued to this IP under the current or the previous secret. */
  accepts(token: Uint8Array, ip: string): boolean {
    this.#rotate();
    if (token.length !== TOKEN_LENGTH) return false;
    return timingSafeEqual(token, tokenFor(this.#current, ip)) ||
      timingSafeEqual(token, tokenFor(this.#previous, ip));
  }

  #rotate(): void {
    const elapsed = this.now() - this.#rotatedAt;
    if (elapsed < ROTATE_EVERY_MS) return;
    // after two periods or more nothing issued before is valid any more
    this.#previous = elapsed < 2 * ROTATE_EVERY_MS
      ? this.#current
      : newSecret();
    this.#current = newSecret();
    this.#rotatedAt += Math.floor(elapsed / ROTATE_EVERY_MS) * ROTATE_EVERY_MS;
  }
}

function newSecret(): Uint8Array {
  return new Uint8Array(randomBytes(SECRET_LENGTH));
}

function tokenFor(secret: Uint8Array, ip: string): Uint8Array {
  const hash = createHash("sha1").update(secret).update(ip).digest();
  return new Uint8Array(hash.subarray(0, TOKEN_LENGTH));
}
