// The 2-byte storage dtypes of frozen weights, converted to f32 where they are used: kind 1 = bfloat16 (the top
// half of an f32: a 16-bit shift, exact), kind 2 = IEEE binary16 (exact too: normals and subnormals by one multiply
// by 2^112, ±Inf/NaN by setting the f32 exponent). The GEMM's packing (gemm.ts), the row gather of an embedding and
// the native backend's block conversion (halfToF32) all use cvt4 / cvt1.

import { share } from './split';

/** Four half values at p (u16 each) as an f32x4. */
// @ts-ignore: decorator
@inline
export function cvt4(p: usize, kind: i32): v128 {
  const h = v128.load16x4_u(p); // i32x4 of the bit patterns
  if (kind == 1) return i32x4.shl(h, 16);
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const em = v128.and(h, i32x4.splat(0x7fff));
  const shifted = i32x4.shl(em, 13);
  // finite: (em << 13) read as an f32 is the value × 2^-112 (a subnormal half lands on an f32 subnormal, exactly)
  const finite = f32x4.mul(shifted, f32x4.splat(5.192296858534828e33)); // 2^112
  const special = v128.or(shifted, i32x4.splat(0x7f800000)); // Inf (mantissa 0) or NaN (payload kept)
  const isSpecial = i32x4.ge_u(em, i32x4.splat(0x7c00));
  return v128.or(sign, v128.bitselect(special, finite, isSpecial));
}

/** One half value at p as an f32. */
// @ts-ignore: decorator
@inline
export function cvt1(p: usize, kind: i32): f32 {
  const h = <u32>load<u16>(p);
  if (kind == 1) return reinterpret<f32>(h << 16);
  const em = h & 0x7fff, sign = (h & 0x8000) << 16;
  if (em >= 0x7c00) return reinterpret<f32>(sign | (em << 13) | 0x7f800000);
  return reinterpret<f32>(sign | reinterpret<u32>(reinterpret<f32>(em << 13) * <f32>5.192296858534828e33));
}

/** n half values at src → f32 at dst. */
export function convertRow(src: usize, dst: usize, n: i32, kind: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + <usize>i * 4, cvt4(src + <usize>i * 2, kind));
  for (; i < n; i++) store<f32>(dst + <usize>i * 4, cvt1(src + <usize>i * 2, kind));
}

/**
 * dst [rows, cols] (f32, contiguous) = the half matrix at src with a row stride of srcStride elements; threads
 * split the rows. The native backend converts blocks of a frozen weight this way before each BLAS call.
 */
export function halfToF32(tid: i32, nth: i32, src: usize, srcStride: i32, dst: usize, rows: i32, cols: i32, kind: i32): void {
  const r = share(rows, tid, nth);
  for (let i = <i32>(r >> 32); i < <i32>r; i++) {
    convertRow(src + <usize>i * <usize>srcStride * 2, dst + <usize>i * <usize>cols * 4, cols, kind);
  }
}

/** out[n, :] = the half table w [V, C]'s row ids[n] as f32 (NaN for an id outside [0, V)); threads split the rows. */
export function gatherRowsHalf(tid: i32, nth: i32, w: usize, ids: usize, out: usize, N: i32, V: i32, C: i32, kind: i32): void {
  const r = share(N, tid, nth);
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const id = load<i32>(ids + <usize>n * 4);
    const o = out + <usize>n * <usize>C * 4;
    if (id >= 0 && id < V) convertRow(w + <usize>id * <usize>C * 2, o, C, kind);
    else for (let c = 0; c < C; c++) store<f32>(o + <usize>c * 4, NaN);
  }
}
