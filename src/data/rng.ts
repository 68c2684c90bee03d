// A small seeded PRNG for data order, kept inside `data` so this folder imports no tensor code (it must run in a
// Web Worker). xoshiro128** (Blackman & Vigna) seeded through splitmix32: 32-bit state words, exact in JS with
// Math.imul and >>> 0. The shuffle of an epoch is a pure function of (seed, epoch), so a loader resumed from
// { seed, epoch, position } rebuilds the same permutation without saving generator state.

export class Xoshiro128 {
  private readonly s = new Uint32Array(4);

  /** Seeds the four state words from splitmix32 outputs of `seed` (an unsigned 32-bit integer). */
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s[0] === 0 && this.s[1] === 0 && this.s[2] === 0 && this.s[3] === 0) this.s[0] = 1;
  }

  /** Uniform unsigned 32-bit integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform integer in [0, n) without modulo bias (rejection sampling); n ≤ 2^32. */
  below(n: number): number {
    if (!(n >= 1 && n <= 0x100000000 && Number.isInteger(n))) throw new Error(`below(n): n must be an integer in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n); // largest multiple of n that fits in 32 bits
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

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
  const rng = new Xoshiro128(mixSeed(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}
