// Vector math helpers: exp on f32x4 (Cephes expf: range reduction by ln2, degree-5 polynomial, 2^n through the
// exponent bits; ~1 ulp on the range used here) and horizontal sums.

// @ts-ignore: decorator
@inline
export function exp4(x: v128): v128 {
  // clamp: above 88 it would overflow 2^n (softmax arguments are ≤ 0 after max subtraction). pmin/pmax are single
  // minps/maxps: wasm's f32x4.min/max handle NaN and −0 with ~8 instructions each on x64 (a NaN input still gives
  // NaN below: the polynomial propagates it).
  // Below e^-69 ≈ 1e-30 the result is exactly 0: a softmax weight that small times an activation is a denormal,
  // and wasm has no flush-to-zero — a GEMM over denormal products runs ~145× slower (measured: 1024×64×64 took
  // 35 ms instead of 0.24). NaN lanes keep their NaN.
  const keep = v128.or(f32x4.ge(x, f32x4.splat(-69.0)), f32x4.ne(x, x));
  x = f32x4.pmin(f32x4.pmax(x, f32x4.splat(-87.33654)), f32x4.splat(88.0));
  // n = round(x·log2 e) by the 1.5·2^23 trick: adding it rounds to an integer (ties to even, as f32x4.nearest) and
  // leaves n in the low mantissa bits, so no float→int conversion (trunc_sat is a long sequence on x64) is needed
  const magic = f32x4.splat(12582912.0);
  const t = f32x4.add(f32x4.mul(x, f32x4.splat(1.44269504088896341)), magic);
  const fx = f32x4.sub(t, magic);
  let r = f32x4.sub(x, f32x4.mul(fx, f32x4.splat(0.693359375)));
  r = f32x4.add(r, f32x4.mul(fx, f32x4.splat(2.12194440e-4)));
  const r2 = f32x4.mul(r, r);
  let y = f32x4.splat(1.9875691500e-4);
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.3981999507e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(8.3334519073e-3));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(4.1665795894e-2));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(1.6666665459e-1));
  y = f32x4.add(f32x4.mul(y, r), f32x4.splat(5.0000001201e-1));
  y = f32x4.add(f32x4.add(f32x4.mul(y, r2), r), f32x4.splat(1.0));
  const n = i32x4.sub(t, magic); // the integer n (bit patterns of t and magic differ by exactly n)
  return v128.and(f32x4.mul(y, i32x4.shl(i32x4.add(n, i32x4.splat(127)), 23)), keep);
}

/** Scalar exp with the same polynomial (tails of vector loops agree with the vector body). */
// @ts-ignore: decorator
@inline
export function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

// @ts-ignore: decorator
@inline
export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

// @ts-ignore: decorator
@inline
export function hmax(v: v128): f32 {
  const s = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

/** Σ a[i]·b[i] over n floats. */
export function dot(a: usize, b: usize, n: i32): f32 {
  let acc0 = f32x4.splat(0), acc1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i * 4;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + o, 16), v128.load(b + o, 16)));
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(f32x4.add(acc0, acc1));
  for (; i < n; i++) s += load<f32>(a + <usize>i * 4) * load<f32>(b + <usize>i * 4);
  return s;
}
