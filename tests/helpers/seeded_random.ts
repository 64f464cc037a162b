// A deterministic stand-in for Math.random, for code that picks at random
// (the piece picker among equally rare pieces, the choker's optimistic
// unchoke): the same seed gives the same sequence, so a test's draws repeat.

/** Numbers in [0, 1) from a linear congruential generator (Numerical Recipes' constants). */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}
