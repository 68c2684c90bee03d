// f32 GEMM with WebAssembly SIMD128: C[M, N] = op(A)[M, K] · op(B)[K, N] (op = optional transpose), GotoBLAS
// blocking (NC columns × KC depth × MC rows), A and B packed into panels, and a 4×8 register-blocked micro-kernel
// (8 f32x4 accumulators + 2 B vectors + 1 A splat + 1 product of the ~15 xmm registers V8 gives wasm; 4×12 or 6×8
// spill). Measured here: 4×8 ≈ 42 GFLOP/s per thread, 3×12 ≈ 33 (bench/RESULTS.md).
// Threads split C into row (or column) ranges; each packs its own panels in its own scratch area.

import { cvt1, cvt4 } from './half';

// Micro-tile and blocking sizes (measured on the project machine, bench/RESULTS.md: MC≈192, NC≈4096, K blocks ≤ 512 split evenly).
const MR: i32 = 4;
const NR: i32 = 8;
const MC: i32 = 192; // multiple of MR
const NC: i32 = 4096; // multiple of NR
const KC_MAX: i32 = 512;

/** Bytes of scratch one thread needs: packed A block [MC, KC], packed B block [KC, NC], one edge tile. */
export function gemmScratchBytes(): usize {
  return <usize>(MC * KC_MAX + KC_MAX * NC + MR * NR) * 4 + 64;
}

/**
 * Stores the 4×4 transpose of the rows at s0..s3 (4 floats each) as 4 vectors at d, d + stride, …: vector k holds
 * element k of each row.
 */
// @ts-ignore: decorator
@inline
function transpose4(d: usize, stride: usize, s0: usize, s1: usize, s2: usize, s3: usize): void {
  const v0 = v128.load(s0), v1 = v128.load(s1), v2 = v128.load(s2), v3 = v128.load(s3);
  const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(d + stride, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
  v128.store(d + 2 * stride, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
  v128.store(d + 3 * stride, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
}

/**
 * Packs rows [i0, i0+mc) × depth [p0, p0+kc) of op(A) into MR-row slivers: ap[s][k][r] (zero rows past mc).
 * A(i, k) = a[i·sai + k·sak].
 */
function packA(ap: usize, a: usize, sai: i32, sak: i32, i0: i32, mc: i32, p0: i32, kc: i32): void {
  for (let s = 0; s < mc; s += MR) {
    const rows = min(MR, mc - s);
    const dst = ap + <usize>(s * kc) * 4;
    if (rows == MR && sak == 1) {
      // A row-major: four contiguous rows, interleaved; 4 depths at a time as a 4×4 transpose
      const r0 = a + <usize>((i0 + s) * sai + p0) * 4;
      const r1 = r0 + <usize>sai * 4, r2 = r1 + <usize>sai * 4, r3 = r2 + <usize>sai * 4;
      let k = 0;
      for (; k + 4 <= kc; k += 4) transpose4(dst + <usize>(k * MR) * 4, 16, r0 + <usize>k * 4, r1 + <usize>k * 4, r2 + <usize>k * 4, r3 + <usize>k * 4);
      for (; k < kc; k++) {
        const d = dst + <usize>(k * MR) * 4, o = <usize>k * 4;
        store<f32>(d, load<f32>(r0 + o));
        store<f32>(d, load<f32>(r1 + o), 4);
        store<f32>(d, load<f32>(r2 + o), 8);
        store<f32>(d, load<f32>(r3 + o), 12);
      }
    } else if (rows == MR && sai == 1) {
      // Aᵀ stored [K, M]: the sliver's four rows are four contiguous floats at every k (one vector copy)
      let src = a + <usize>((i0 + s) + p0 * sak) * 4;
      const step = <usize>sak * 4;
      for (let k = 0; k < kc; k++) {
        v128.store(dst + <usize>(k * MR) * 4, v128.load(src));
        src += step;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const d = dst + <usize>(k * MR) * 4;
        for (let r = 0; r < MR; r++) {
          const v: f32 = r < rows ? load<f32>(a + <usize>((i0 + s + r) * sai + (p0 + k) * sak) * 4) : 0;
          store<f32>(d + <usize>r * 4, v);
        }
      }
    }
  }
}

/** Stores the 4×4 transpose of the vectors v0..v3 (rows) as 4 vectors at d, d + stride, …. */
// @ts-ignore: decorator
@inline
function transpose4v(d: usize, stride: usize, v0: v128, v1: v128, v2: v128, v3: v128): void {
  const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(d + stride, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
  v128.store(d + 2 * stride, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
  v128.store(d + 3 * stride, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
}

/**
 * packB for a B stored in a half dtype (kind 1 bf16, 2 f16: a frozen weight), B(k, j) = b[(k·sbk + j·sbj)·2]: the
 * panel is converted to f32 as it is packed, so no f32 copy of B exists beyond this block (KC × NC).
 */
function packBHalf(bp: usize, b: usize, sbk: i32, sbj: i32, p0: i32, kc: i32, j0: i32, nc: i32, kind: i32): void {
  for (let s = 0; s < nc; s += NR) {
    const cols = min(NR, nc - s);
    const dst = bp + <usize>(s * kc) * 4;
    if (cols == NR && sbj == 1) {
      // B row-major [K, N]: 8 contiguous halves per k
      let src = b + <usize>(p0 * sbk + j0 + s) * 2;
      const step = <usize>sbk * 2;
      for (let k = 0; k < kc; k++) {
        const d = dst + <usize>(k * NR) * 4;
        v128.store(d, cvt4(src, kind));
        v128.store(d, cvt4(src + 8, kind), 16);
        src += step;
      }
    } else if (sbk == 1 && cols == NR) {
      // Bᵀ stored [N, K] (a Linear's weight): each column of op(B) is contiguous; 4 depths × 4 columns per transpose
      const c0 = b + <usize>((j0 + s) * sbj + p0) * 2, cs = <usize>sbj * 2;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const d = dst + <usize>(k * NR) * 4, o = c0 + <usize>k * 2;
        transpose4v(d, NR * 4, cvt4(o, kind), cvt4(o + cs, kind), cvt4(o + 2 * cs, kind), cvt4(o + 3 * cs, kind));
        transpose4v(d + 16, NR * 4, cvt4(o + 4 * cs, kind), cvt4(o + 5 * cs, kind), cvt4(o + 6 * cs, kind), cvt4(o + 7 * cs, kind));
      }
      for (; k < kc; k++) {
        const d = dst + <usize>(k * NR) * 4, o = c0 + <usize>k * 2;
        for (let j = 0; j < NR; j++) store<f32>(d + <usize>j * 4, cvt1(o + <usize>j * cs, kind));
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const d = dst + <usize>(k * NR) * 4;
        for (let j = 0; j < NR; j++) {
          const v: f32 = j < cols ? cvt1(b + <usize>((p0 + k) * sbk + (j0 + s + j) * sbj) * 2, kind) : 0;
          store<f32>(d + <usize>j * 4, v);
        }
      }
    }
  }
}

/**
 * Packs depth [p0, p0+kc) × columns [j0, j0+nc) of op(B) into NR-column panels: bp[panel][k][j] (zeros past nc).
 * B(k, j) = b[k·sbk + j·sbj].
 */
function packB(bp: usize, b: usize, sbk: i32, sbj: i32, p0: i32, kc: i32, j0: i32, nc: i32): void {
  for (let s = 0; s < nc; s += NR) {
    const cols = min(NR, nc - s);
    const dst = bp + <usize>(s * kc) * 4;
    if (cols == NR && sbj == 1) {
      // B row-major: 8 contiguous floats per k
      let src = b + <usize>(p0 * sbk + j0 + s) * 4;
      const step = <usize>sbk * 4;
      for (let k = 0; k < kc; k++) {
        const d = dst + <usize>(k * NR) * 4;
        v128.store(d, v128.load(src));
        v128.store(d, v128.load(src, 16), 16);
        src += step;
      }
    } else if (sbk == 1 && cols == NR) {
      // Bᵀ stored [N, K]: each column of op(B) is contiguous; 4 depths of 4 columns at a time as 4×4 transposes
      const c0 = b + <usize>((j0 + s) * sbj + p0) * 4, cs = <usize>sbj * 4;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const d = dst + <usize>(k * NR) * 4, o = c0 + <usize>k * 4;
        transpose4(d, NR * 4, o, o + cs, o + 2 * cs, o + 3 * cs);
        transpose4(d + 16, NR * 4, o + 4 * cs, o + 5 * cs, o + 6 * cs, o + 7 * cs);
      }
      for (; k < kc; k++) {
        const d = dst + <usize>(k * NR) * 4, o = c0 + <usize>k * 4;
        for (let j = 0; j < NR; j++) store<f32>(d + <usize>j * 4, load<f32>(o + <usize>j * cs));
      }
    } else if (sbk == 1) {
      // Bᵀ, an edge panel (fewer than NR columns)
      for (let j = 0; j < NR; j++) {
        const d = dst + <usize>j * 4;
        if (j < cols) {
          const src = b + <usize>((j0 + s + j) * sbj + p0) * 4;
          for (let k = 0; k < kc; k++) store<f32>(d + <usize>(k * NR) * 4, load<f32>(src + <usize>k * 4));
        } else {
          for (let k = 0; k < kc; k++) store<f32>(d + <usize>(k * NR) * 4, 0);
        }
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const d = dst + <usize>(k * NR) * 4;
        for (let j = 0; j < NR; j++) {
          const v: f32 = j < cols ? load<f32>(b + <usize>((p0 + k) * sbk + (j0 + s + j) * sbj) * 4) : 0;
          store<f32>(d + <usize>j * 4, v);
        }
      }
    }
  }
}


/**
 * The 4×8 micro-kernel: tile[4][8] (= C rows at c with stride ldc, in floats) = (accumulate ? tile : 0) +
 * Σ_k ap[k][0..4] ⊗ bp[k][0..8].
 */
// @ts-ignore: decorator
@inline
function micro(kc: i32, ap: usize, bp: usize, c: usize, ldc: i32, accumulate: bool): void {
  const r1 = c + <usize>ldc * 4, r2 = r1 + <usize>ldc * 4, r3 = r2 + <usize>ldc * 4;
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = f32x4.add(c00, f32x4.mul(a, b0)); c01 = f32x4.add(c01, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 4);
    c10 = f32x4.add(c10, f32x4.mul(a, b0)); c11 = f32x4.add(c11, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 8);
    c20 = f32x4.add(c20, f32x4.mul(a, b0)); c21 = f32x4.add(c21, f32x4.mul(a, b1));
    a = v128.load32_splat(ap, 12);
    c30 = f32x4.add(c30, f32x4.mul(a, b0)); c31 = f32x4.add(c31, f32x4.mul(a, b1));
    ap += 16; bp += 32;
  }
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c)); c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(r1)); c11 = f32x4.add(c11, v128.load(r1, 16));
    c20 = f32x4.add(c20, v128.load(r2)); c21 = f32x4.add(c21, v128.load(r2, 16));
    c30 = f32x4.add(c30, v128.load(r3)); c31 = f32x4.add(c31, v128.load(r3, 16));
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(r1, c10); v128.store(r1, c11, 16);
  v128.store(r2, c20); v128.store(r2, c21, 16);
  v128.store(r3, c30); v128.store(r3, c31, 16);
}

/** C block [i0, i1) × [j0, j1) of op(A)·op(B) (overwrites C there), single-threaded. bHalf: B's storage (0 f32,
 *  1 bfloat16, 2 float16; see packBHalf). */
function gemmBlock(transA: bool, transB: bool, M: i32, N: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32,
                   c: usize, ldc: i32, i0: i32, i1: i32, j0: i32, j1: i32, scratch: usize, acc: bool, bHalf: i32 = 0): void {
  const sai = transA ? 1 : lda, sak = transA ? lda : 1;
  const sbk = transB ? 1 : ldb, sbj = transB ? ldb : 1;
  const ap = (scratch + 63) & ~<usize>63;
  const bp = ap + <usize>(MC * KC_MAX) * 4;
  const tile = bp + <usize>(KC_MAX * NC) * 4; // [MR, NR] edge tile
  if (K == 0) {
    if (acc) return;
    for (let i = i0; i < i1; i++) memory.fill(c + <usize>(i * ldc + j0) * 4, 0, <usize>(j1 - j0) * 4);
    return;
  }
  const nk = (K + KC_MAX - 1) / KC_MAX;
  for (let jc = j0; jc < j1; jc += NC) {
    const nc = min(NC, j1 - jc);
    for (let q = 0; q < nk; q++) {
      // K split evenly into nk blocks (288 as 256 + 32 cost ~20% in the survey)
      const p0 = <i32>((<i64>K * q) / nk), kc = <i32>((<i64>K * (q + 1)) / nk) - p0;
      const accumulate = q > 0 || acc;
      if (bHalf != 0) packBHalf(bp, b, sbk, sbj, p0, kc, jc, nc, bHalf);
      else packB(bp, b, sbk, sbj, p0, kc, jc, nc);
      for (let ic = i0; ic < i1; ic += MC) {
        const mc = min(MC, i1 - ic);
        packA(ap, a, sai, sak, ic, mc, p0, kc);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          const bpp = bp + <usize>(jr * kc) * 4;
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = min(MR, mc - ir);
            const app = ap + <usize>(ir * kc) * 4;
            const cp = c + <usize>((ic + ir) * ldc + jc + jr) * 4;
            if (rows == MR && cols == NR) {
              micro(kc, app, bpp, cp, ldc, accumulate);
            } else {
              // edge: compute the full tile into `tile`, then add/copy the valid part
              micro(kc, app, bpp, tile, NR, false);
              for (let r = 0; r < rows; r++) {
                for (let j = 0; j < cols; j++) {
                  const d = cp + <usize>(r * ldc + j) * 4;
                  const v = load<f32>(tile + <usize>(r * NR + j) * 4);
                  store<f32>(d, accumulate ? load<f32>(d) + v : v);
                }
              }
            }
          }
        }
      }
    }
  }
}

// The module's one import besides the memory: a GEMM the host runs (the native backend's BLAS: ~4× this kernel on
// attention's small blocks). Only thread 0 (the caller's thread) calls it, and only when the caller asks (attention's
// hostShare ≥ 0); other instances get a stub that throws. (Splitting small matmuls the same way, BLAS on the caller
// and wasm on the workers, was slower than the BLAS alone on one thread: tiny's matmuls 4.8 → 5.9 ms per step.)
@external("env", "hostGemm")
declare function hostGemm(transA: i32, transB: i32, M: i32, N: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32,
                          c: usize, ldc: i32, acc: i32): void;

/** Units of n thread 0 takes when it runs the host's GEMM: the share hostShare of them (hostShare < 0: none, −1). */
// @ts-ignore: decorator
@inline
export function hostUnits(n: i32, hostShare: f32): i32 {
  return hostShare < 0 ? -1 : <i32>Mathf.round(<f32>n * min(hostShare, <f32>1));
}

/** C = op(A)·op(B) (or C += with acc) of one block on one thread: through the host's GEMM when `host`, else this kernel. */
// @ts-ignore: decorator
@inline
export function blockGemm(host: bool, transA: bool, transB: bool, M: i32, N: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32,
                          c: usize, ldc: i32, scratch: usize, acc: bool): void {
  if (host && M > 0 && N > 0 && K > 0) hostGemm(transA ? 1 : 0, transB ? 1 : 0, M, N, K, a, lda, b, ldb, c, ldc, acc ? 1 : 0);
  else gemmSingle(transA, transB, M, N, K, a, lda, b, ldb, c, ldc, scratch, acc);
}

/**
 * Thread `tid` of `nth` computes its share of C = op(A)·op(B). a is [M, K] (lda = K) or, with transA, [K, M]
 * (lda = M); b is [K, N] or, with transB, [N, K]; c is [M, N] (ldc = N); acc ≠ 0: C += op(A)·op(B) instead of
 * C = op(A)·op(B). Work is split along M (each thread packs
 * all of B) or, when N > M, along N (each packs all of A): the redundant packing is the smaller operand.
 * scratch: nth × gemmScratchBytes() bytes. bHalf ≠ 0: b holds bfloat16 (1) or float16 (2) values (a frozen weight;
 * ldb in elements), converted as B is packed.
 */
export function gemm(tid: i32, nth: i32, transA: i32, transB: i32, M: i32, N: i32, K: i32,
                     a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, scratch: usize, acc: i32, bHalf: i32): void {
  const mine = scratch + <usize>tid * gemmScratchBytes();
  if (N > M) {
    const panels = (N + NR - 1) / NR;
    const j0 = min(N, <i32>((<i64>panels * tid) / nth) * NR), j1 = min(N, <i32>((<i64>panels * (tid + 1)) / nth) * NR);
    if (j1 > j0) gemmBlock(transA != 0, transB != 0, M, N, K, a, lda, b, ldb, c, ldc, 0, M, j0, j1, mine, acc != 0, bHalf);
  } else {
    const slivers = (M + MR - 1) / MR;
    const i0 = min(M, <i32>((<i64>slivers * tid) / nth) * MR), i1 = min(M, <i32>((<i64>slivers * (tid + 1)) / nth) * MR);
    if (i1 > i0) gemmBlock(transA != 0, transB != 0, M, N, K, a, lda, b, ldb, c, ldc, i0, i1, 0, N, mine, acc != 0, bHalf);
  }
}

/** Single-threaded C = op(A)·op(B) (or C += with acc) on the caller's scratch (gemmScratchBytes()): for kernels
 *  that run GEMMs inside their own thread split (attention). */
export function gemmSingle(transA: bool, transB: bool, M: i32, N: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32,
                           c: usize, ldc: i32, scratch: usize, acc: bool): void {
  gemmBlock(transA, transB, M, N, K, a, lda, b, ldb, c, ldc, 0, M, 0, N, scratch, acc);
}
