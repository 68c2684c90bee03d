// Seeded data order. The generator is core's xoshiro128** RNG (core/rng.ts imports nothing, so `data` still
// imports no tensor code and runs in a Web Worker). The shuffle of an epoch is a pure function of (seed, epoch),
// so a loader resumed from { seed, epoch, position } rebuilds the same permutation without saving generator state.
import { RNG } from '../core/rng.js';

export { RNG as Xoshiro128 };

/** Mixes a seed and an epoch number into one 32-bit seed (murmur3 finalizer over both words). */
export function mixSeed(seed: number, epoch: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x100000000) >>> 0; // seeds up to 2^53 keep their high bits
  let h = Math.imul(lo ^ 0x5bd1e995, 0xcc9e2d51) >>> 0;
  h = (h ^ Math.imul(hi + 0x27d4eb2f, 0x1b873593)) >>> 0;
  h = (h ^ Math.imul((epoch >>> 0) + 0x165667b1, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The permutation of [0, n) used for `epoch` of a loader seeded with `seed` (Fisher–Yates). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  if (n > 0x7fffffff) throw new Error(`epochPermutation: n = ${n} is larger than an Int32Array index allows`);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const rng = new RNG(mixSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}
