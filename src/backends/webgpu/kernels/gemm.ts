// GEMM (every transpose layout, batched with broadcasting) and the fused LM head + cross-entropy built on it.
//
// The GEMM: a workgroup computes a 64×64 block of C with 16×16 threads, each holding a 4×4 register block
// (rows ty + 16r, columns tx + 16c: stores and workgroup-memory reads are consecutive across tx). K advances in
// tiles of 16: A[64×16] and B[16×64] go through workgroup memory (8 KiB, within WebGPU's guaranteed 16 KiB),
// loaded so that consecutive threads read consecutive addresses in each layout (the variant is picked by which
// stride is 1). Operands are addressed through strides, A(i, p) = a[aOff + i·sai + p·sap] and
// B(p, j) = b[bOff + p·sbp + j·sbj], so transposes and row offsets (the fused loss's chunks) cost nothing.

import type { KernelTable } from '../../../core/backend.js';
import { broadcastStrides, sizeOf } from '../../../core/dtype.js';
import type { GpuRuntime, GpuTensor } from '../device.js';
import { fillInto } from './elementwise.js';
import { T, WG, mainRow, mergeDims, ro, rowThreads, rw, wgslType } from './common.js';

const BM = 64, BN = 64, BK = 16;
const MAX_BATCH_RANK = 4;

export interface GemmArgs {
  a: GpuTensor; aOff: number; sai: number; sap: number;
  b: GpuTensor; bOff: number; sbp: number; sbj: number;
  c: GpuTensor; cOff: number;
  M: number; N: number; K: number;
  /** C += A·B instead of C = A·B. */
  accumulate: boolean;
  /** Batch dims (merged) with each operand's element stride per batch index; C is contiguous over them. */
  batch?: { shape: number[]; aStrides: number[]; bStrides: number[] };
}

const gemmCode = (aKFast: boolean, bNFast: boolean) => () => `
${ro(1, 'a')}${ro(2, 'b')}${rw(3, 'c')}
var<workgroup> As: array<f32, ${BK * BM}>;
var<workgroup> Bs: array<f32, ${BK * BN}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(local_invocation_id) l: vec3<u32>) {
  let M = pu(0u); let N = pu(1u); let K = pu(2u);
  let sai = pu(3u); let sap = pu(4u); let sbp = pu(5u); let sbj = pu(6u);
  var aB = pu(7u); var bB = pu(8u);
  var rest = wid.z;
  for (var d = i32(pu(11u)) - 1; d >= 0; d = d - 1) {
    let dim = pu(12u + u32(d));
    let q = rest % dim;
    aB = aB + q * pu(16u + u32(d));
    bB = bB + q * pu(20u + u32(d));
    rest = rest / dim;
  }
  let cB = pu(9u) + wid.z * M * N;
  let row0 = wid.y * ${BM}u; let col0 = wid.x * ${BN}u;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < K; k0 = k0 + ${BK}u) {
    for (var t = 0u; t < ${(BM * BK) / WG}u; t = t + 1u) {
      let e = lid + t * ${WG}u;
      ${aKFast ? `let p = e % ${BK}u; let i = e / ${BK}u;` : `let i = e % ${BM}u; let p = e / ${BM}u;`}
      let gi = row0 + i; let gp = k0 + p;
      var v = 0.0;
      if (gi < M && gp < K) { v = a[aB + gi * sai + gp * sap]; }
      As[p * ${BM}u + i] = v;
    }
    for (var t = 0u; t < ${(BN * BK) / WG}u; t = t + 1u) {
      let e = lid + t * ${WG}u;
      ${bNFast ? `let j = e % ${BN}u; let p = e / ${BN}u;` : `let p = e % ${BK}u; let j = e / ${BK}u;`}
      let gj = col0 + j; let gp = k0 + p;
      var v = 0.0;
      if (gj < N && gp < K) { v = b[bB + gp * sbp + gj * sbj]; }
      Bs[p * ${BN}u + j] = v;
    }
    workgroupBarrier();
    for (var p = 0u; p < ${BK}u; p = p + 1u) {
      let bv = vec4<f32>(Bs[p * ${BN}u + l.x], Bs[p * ${BN}u + l.x + 16u], Bs[p * ${BN}u + l.x + 32u], Bs[p * ${BN}u + l.x + 48u]);
      acc[0] = acc[0] + As[p * ${BM}u + l.y] * bv;
      acc[1] = acc[1] + As[p * ${BM}u + l.y + 16u] * bv;
      acc[2] = acc[2] + As[p * ${BM}u + l.y + 32u] * bv;
      acc[3] = acc[3] + As[p * ${BM}u + l.y + 48u] * bv;
    }
    workgroupBarrier();
  }
  let accum = pu(10u) != 0u;
  for (var r = 0u; r < 4u; r = r + 1u) {
    let gi = row0 + l.y + 16u * r;
    if (gi >= M) { continue; }
    for (var q = 0u; q < 4u; q = q + 1u) {
      let gj = col0 + l.x + 16u * q;
      if (gj >= N) { continue; }
      let k = cB + gi * N + gj;
      if (accum) { c[k] = c[k] + acc[r][q]; } else { c[k] = acc[r][q]; }
    }
  }
}`;

/** The same product without workgroup memory or barriers: a thread computes a 4×4 block straight from the
 *  operands (8×8 threads, 32×32 per workgroup). Chosen on software adapters, which pay for barriers per thread. */
const gemmDirectCode = () => `
${ro(1, 'a')}${ro(2, 'b')}${rw(3, 'c')}
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let M = pu(0u); let N = pu(1u); let K = pu(2u);
  let sai = pu(3u); let sap = pu(4u); let sbp = pu(5u); let sbj = pu(6u);
  var aB = pu(7u); var bB = pu(8u);
  var rest = wid.z;
  for (var d = i32(pu(11u)) - 1; d >= 0; d = d - 1) {
    let dim = pu(12u + u32(d));
    let q = rest % dim;
    aB = aB + q * pu(16u + u32(d));
    bB = bB + q * pu(20u + u32(d));
    rest = rest / dim;
  }
  let cB = pu(9u) + wid.z * M * N;
  let i0 = wid.y * 32u + l.y * 4u; let j0 = wid.x * 32u + l.x * 4u;
  if (i0 >= M || j0 >= N) { return; }
  // rows/columns past the edge read row/column 0 (in bounds) and are not stored
  var ia = vec4<u32>(0u);
  var jb = vec4<u32>(0u);
  for (var r = 0u; r < 4u; r = r + 1u) {
    ia[r] = aB + select(0u, (i0 + r) * sai, i0 + r < M);
    jb[r] = bB + select(0u, (j0 + r) * sbj, j0 + r < N);
  }
  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0); var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  for (var p = 0u; p < K; p = p + 1u) {
    let pa = p * sap; let pb = p * sbp;
    let bv = vec4<f32>(b[jb.x + pb], b[jb.y + pb], b[jb.z + pb], b[jb.w + pb]);
    acc0 = acc0 + a[ia.x + pa] * bv;
    acc1 = acc1 + a[ia.y + pa] * bv;
    acc2 = acc2 + a[ia.z + pa] * bv;
    acc3 = acc3 + a[ia.w + pa] * bv;
  }
  let accum = pu(10u) != 0u;
  var acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var r = 0u; r < 4u; r = r + 1u) {
    let gi = i0 + r;
    if (gi >= M) { break; }
    for (var q = 0u; q < 4u; q = q + 1u) {
      let gj = j0 + q;
      if (gj >= N) { break; }
      let k = cB + gi * N + gj;
      if (accum) { c[k] = c[k] + acc[r][q]; } else { c[k] = acc[r][q]; }
    }
  }
}`;

/**
 * The direct GEMM with vec4 loads, when every operand offset, stride and dimension is a multiple of 4: a thread
 * loads its 4×4 blocks of A and B (k advancing by 4) as four vec4 each — along whichever dimension is contiguous —
 * and multiplies them as mat4x4 (acc[c][r] = C(i0 + r, j0 + c)).
 */
const gemmDirect4Code = (aKFast: boolean, bKFast: boolean) => () => `
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
${rw(3, 'c')}
@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
  let M = pu(0u); let N = pu(1u); let K = pu(2u);
  let sai = pu(3u); let sap = pu(4u); let sbp = pu(5u); let sbj = pu(6u);
  var aB = pu(7u); var bB = pu(8u);
  var rest = wid.z;
  for (var d = i32(pu(11u)) - 1; d >= 0; d = d - 1) {
    let dim = pu(12u + u32(d));
    let q = rest % dim;
    aB = aB + q * pu(16u + u32(d));
    bB = bB + q * pu(20u + u32(d));
    rest = rest / dim;
  }
  let cB = pu(9u) + wid.z * M * N;
  let i0 = wid.y * 32u + l.y * 4u; let j0 = wid.x * 32u + l.x * 4u;
  if (i0 >= M || j0 >= N) { return; }
  var acc = mat4x4<f32>();
  for (var p = 0u; p < K; p = p + 4u) {
    ${aKFast
      // rows of A are contiguous in k: four rows, transposed into columns over k
      ? `let ao = aB + i0 * sai + p;
    let am = transpose(mat4x4<f32>(a[ao / 4u], a[(ao + sai) / 4u], a[(ao + 2u * sai) / 4u], a[(ao + 3u * sai) / 4u]));`
      : `let ao = aB + p * sap + i0;
    let am = mat4x4<f32>(a[ao / 4u], a[(ao + sap) / 4u], a[(ao + 2u * sap) / 4u], a[(ao + 3u * sap) / 4u]);`}
    ${bKFast
      ? `let bo = bB + j0 * sbj + p;
    let bm = mat4x4<f32>(b[bo / 4u], b[(bo + sbj) / 4u], b[(bo + 2u * sbj) / 4u], b[(bo + 3u * sbj) / 4u]);`
      : `let bo = bB + p * sbp + j0;
    let bm = transpose(mat4x4<f32>(b[bo / 4u], b[(bo + sbp) / 4u], b[(bo + 2u * sbp) / 4u], b[(bo + 3u * sbp) / 4u]));`}
    acc = acc + am * bm;
  }
  let accum = pu(10u) != 0u;
  for (var r = 0u; r < 4u; r = r + 1u) {
    let k = cB + (i0 + r) * N + j0;
    for (var q = 0u; q < 4u; q = q + 1u) {
      if (accum) { c[k + q] = c[k + q] + acc[q][r]; } else { c[k + q] = acc[q][r]; }
    }
  }
}`;

/** Which GEMM: 'tiled' (workgroup memory; GPUs) or 'direct' (no barriers; software adapters). */
export type GemmVariant = 'tiled' | 'direct';

export function gemm(rt: GpuRuntime, g: GemmArgs, variant: GemmVariant): void {
  const { M, N, K } = g;
  const bt = g.batch ?? { shape: [1], aStrides: [0], bStrides: [0] };
  if (bt.shape.length > MAX_BATCH_RANK) throw new RangeError(`webgpu backend: matmul with ${bt.shape.length} batch dimensions (after merging) is not supported (at most ${MAX_BATCH_RANK})`);
  const nb = sizeOf(bt.shape);
  if (M === 0 || N === 0 || nb === 0) return;
  const pad = (x: number[]) => [...x, ...new Array(MAX_BATCH_RANK - x.length).fill(0)];
  const aKFast = g.sap === 1, bNFast = g.sbj === 1;
  const ints = [M, N, K, g.sai, g.sap, g.sbp, g.sbj, g.aOff, g.bOff, g.cOff, g.accumulate ? 1 : 0, bt.shape.length, ...pad(bt.shape), ...pad(bt.aStrides), ...pad(bt.bStrides)];
  if (variant === 'direct') {
    // vec4 loads need every offset, stride and edge on a multiple of 4 (the contiguous stride is 1)
    const aK = g.sap === 1, bK = g.sbp === 1;
    const quad = (x: number) => x % 4 === 0;
    const aligned = [M, N, K, g.aOff, g.bOff, aK ? g.sai : g.sap, bK ? g.sbj : g.sbp, ...bt.aStrides, ...bt.bStrides].every(quad) &&
      (aK || g.sai === 1) && (bK || g.sbj === 1);
    if (aligned) rt.dispatch({ key: `gemm_direct4_${aK}_${bK}`, code: gemmDirect4Code(aK, bK) }, [g.a, g.b, g.c], ints, [], [Math.ceil(N / 32), Math.ceil(M / 32), nb]);
    else rt.dispatch({ key: 'gemm_direct', code: gemmDirectCode }, [g.a, g.b, g.c], ints, [], [Math.ceil(N / 32), Math.ceil(M / 32), nb]);
  }
  else rt.dispatch({ key: `gemm_${aKFast}_${bNFast}`, code: gemmCode(aKFast, bNFast) }, [g.a, g.b, g.c], ints, [], [Math.ceil(N / BN), Math.ceil(M / BM), nb]);
}

/** The fused loss's row pass, in place on a chunk of logits [rows, V]: soft-cap, lse, loss, then dlogits. */
const lceRowCode = (wg: number) => () => ro(1, 'tg', 'i32') + ro(2, 'rowg') + rw(3, 'z') + rw(4, 'loss') + mainRow(`
  let V = pu(1u); let o0 = row * V; let n = pu(3u) + row; let y = tg[n];
  let eps = pf(0u); let zl = pf(1u); let cap = pf(2u);
  if (cap > 0.0) {
    for (var j = lid; j < V; j = j + WGR) { z[o0 + j] = cap * tanh(z[o0 + j] / cap); }
  }
  storageBarrier();
  var m = -3.4028234e38;
  for (var j = lid; j < V; j = j + WGR) { m = maxN(m, z[o0 + j]); }
  m = wgMax(lid, m);
  var s = 0.0; var zs = 0.0;
  for (var j = lid; j < V; j = j + WGR) { let v = z[o0 + j]; s = s + exp(v - m); zs = zs + v; }
  s = wgSum(lid, s);
  zs = wgSum(lid, zs);
  let l = m + log(s);
  let ign = y == pi(2u);
  let bad = !ign && (y < 0 || y >= i32(V));
  var zy = 0.0;
  if (!ign && !bad) { zy = z[o0 + u32(y)]; }
  storageBarrier();
  let grad = pu(4u) != 0u;
  if (ign) {
    if (lid == 0u) { loss[n] = 0.0; }
    if (grad) { for (var j = lid; j < V; j = j + WGR) { z[o0 + j] = 0.0; } }
  } else if (bad) {
    if (lid == 0u) { loss[n] = pf(4u); }
    if (grad) { for (var j = lid; j < V; j = j + WGR) { z[o0 + j] = pf(4u); } }
  } else {
    if (lid == 0u) {
      var v = (1.0 - eps) * (l - zy);
      if (eps != 0.0) { v = v + eps * (l - zs / f32(V)); }
      if (zl != 0.0) { v = v + zl * l * l; }
      loss[n] = v;
    }
    if (grad) {
      var g = pf(3u);
      if (pu(5u) != 0u) { g = rowg[n]; }
      let ps = 1.0 + 2.0 * zl * l;
      for (var j = lid; j < V; j = j + WGR) {
        let zj = z[o0 + j];
        var d = g * (ps * exp(zj - l) - eps / f32(V));
        if (i32(j) == y) { d = d - g * (1.0 - eps); }
        if (cap > 0.0) { d = d * (1.0 - (zj / cap) * (zj / cap)); }
        z[o0 + j] = d;
      }
    }
  }`, '', wg);

export function gemmKernels(rt: GpuRuntime, variant: GemmVariant): Partial<KernelTable> {
  return {
    matmul(a, aShape, b, bShape, transA, transB, outShape, dtype) {
      wgslType(dtype);
      const r = outShape.length;
      const M = outShape[r - 2]!, N = outShape[r - 1]!;
      const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
      const batchShape = outShape.slice(0, -2);
      const sa = broadcastStrides(aShape.slice(0, -2), batchShape).map((s) => s * M * K);
      const sb = broadcastStrides(bShape.slice(0, -2), batchShape).map((s) => s * K * N);
      const m = mergeDims(batchShape, [sa, sb]);
      const out = rt.alloc(sizeOf(outShape));
      gemm(rt, {
        a: T(a), aOff: 0, sai: transA ? 1 : K, sap: transA ? M : 1,
        b: T(b), bOff: 0, sbp: transB ? 1 : N, sbj: transB ? K : 1,
        c: out, cOff: 0, M, N, K, accumulate: false,
        batch: { shape: m.shape, aStrides: m.strides[0]!, bStrides: m.strides[1]! },
      }, variant);
      return out;
    },

    linearCrossEntropy(hidden, weight, targets, args, grad, dtype) {
      wgslType(dtype);
      const { N, C, V, ignoreIndex, labelSmoothing, zLoss, softcap } = args;
      const H = T(hidden), W = T(weight), tg = T(targets);
      // the chunk the caller asked for is the memory bound: [R, V] is the only logits buffer
      const R = Math.max(1, Math.min(N, args.chunkSize));
      const loss = rt.alloc(N);
      const dHidden = grad ? rt.alloc(N * C) : null;
      const dWeight = grad && args.weightGrad ? rt.alloc(V * C) : null;
      if (dWeight) fillInto(rt, dWeight, V * C, 0);
      const rowg = grad && 'rows' in grad ? T(grad.rows) : rt.dummy;
      const scale = grad && 'scale' in grad ? grad.scale : 0;
      const z = rt.alloc(R * V); // [R, V]: the only logits buffer
      for (let n0 = 0; n0 < N; n0 += R) {
        const rows = Math.min(R, N - n0);
        // z = H[n0 : n0 + rows] · Wᵀ
        gemm(rt, { a: H, aOff: n0 * C, sai: C, sap: 1, b: W, bOff: 0, sbp: 1, sbj: C, c: z, cOff: 0, M: rows, N: V, K: C, accumulate: false }, variant);
        rt.dispatch({ key: `lceRow_${rowThreads(V)}`, code: lceRowCode(rowThreads(V)) }, [tg, rowg, z, loss],
          [rows, V, ignoreIndex, n0, grad ? 1 : 0, rowg === rt.dummy ? 0 : 1], [labelSmoothing, zLoss, softcap, scale, NaN], rows);
        if (!grad) continue;
        // dH[chunk] = dz · W        [rows, C]
        gemm(rt, { a: z, aOff: 0, sai: V, sap: 1, b: W, bOff: 0, sbp: C, sbj: 1, c: dHidden!, cOff: n0 * C, M: rows, N: C, K: V, accumulate: false }, variant);
        // dW += dzᵀ · H[chunk]       [V, C]
        if (dWeight) gemm(rt, { a: z, aOff: 0, sai: 1, sap: V, b: H, bOff: n0 * C, sbp: C, sbj: 1, c: dWeight, cOff: 0, M: V, N: C, K: rows, accumulate: true }, variant);
      }
      rt.release(z);
      return { loss, dHidden, dWeight };
    },
  };
}
