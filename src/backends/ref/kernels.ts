// The `ref` backend: every kernel in plain TypeScript over TypedArrays. It is the oracle the faster backends
// are tested against, so clarity beats speed here — but loops are ordered so small models train usefully.
// Accumulations use JS numbers (float64) even for float32 storage.

import type { AttentionArgs, Backend, BinaryOp, KernelTable, UnaryOp } from '../../core/backend.js';
import { type DType, type Shape, type TypedArray, arrayFor, broadcastStrides, isHalf, sizeOf, stridesOf } from '../../core/dtype.js';
import { halfToFloat32 } from '../../core/half.js';

type F = Float32Array | Float64Array;
const A = (s: object) => s as TypedArray;
const Fl = (s: object) => s as F;
const I = (s: object) => s as Int32Array;
const alloc = (dtype: DType, n: number) => arrayFor(dtype, n) as F;

export const refBackend: Backend = {
  name: 'ref',
  upload: (data) => data,
  // a half tensor (Uint16Array of bits) reads back as its float32 values
  download: async (s, dtype) => (isHalf(dtype) ? halfToFloat32(s as Uint16Array, dtype) : A(s).slice()),
  downloadSync: (s, dtype) => (isHalf(dtype) ? halfToFloat32(s as Uint16Array, dtype) : A(s).slice()),
  supports: () => true,
};

/** Calls fn(outIndex, aIndex, bIndex) for every element of outShape with broadcast strides. */
function forEachBroadcast(outShape: Shape, sa: number[], sb: number[], fn: (o: number, ia: number, ib: number) => void): void {
  const n = sizeOf(outShape);
  const rank = outShape.length;
  if (rank === 0) { if (n === 1) fn(0, 0, 0); return; }
  const last = rank - 1;
  const inner = outShape[last]!;
  const idx = new Array<number>(rank).fill(0);
  let ia = 0, ib = 0;
  for (let o = 0; o < n; o += inner) {
    const sal = sa[last]!, sbl = sb[last]!;
    for (let j = 0; j < inner; j++) fn(o + j, ia + j * sal, ib + j * sbl);
    // advance the multi-index over the outer dims
    for (let d = last - 1; d >= 0; d--) {
      idx[d]!++;
      ia += sa[d]!; ib += sb[d]!;
      if (idx[d]! < outShape[d]!) break;
      ia -= sa[d]! * outShape[d]!; ib -= sb[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

const binaryFns: Record<BinaryOp, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  div: (x, y) => x / y,
};

const unaryFns: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  silu: (x) => x / (1 + Math.exp(-x)),
  square: (x) => x * x,
  abs: Math.abs,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
};

/**
 * C[M, N] (+)= op(A) · op(B) at the given offsets, any of the four layouts through strides. A 4×4 register block
 * (16 accumulators, 8 loads per 16 multiply-adds) with scalar edges: plain JS, but ~3× faster than a naive loop,
 * which matters because `ref` also trains the small default model.
 */
function matmulInto(out: F, a: F, aOff: number, b: F, bOff: number, oOff: number, M: number, N: number, K: number,
                    transA: boolean, transB: boolean, accumulate = false): void {
  // A(i, p) = a[aOff + i·sai + p·sap]; B(p, j) = b[bOff + p·sbp + j·sbj]
  const sai = transA ? 1 : K, sap = transA ? M : 1;
  const sbp = transB ? 1 : N, sbj = transB ? K : 1;
  const M4 = M - (M % 4), N4 = N - (N % 4);
  for (let i = 0; i < M4; i += 4) {
    const ai = aOff + i * sai;
    for (let j = 0; j < N4; j += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      let ia = ai, ib = bOff + j * sbj;
      for (let p = 0; p < K; p++, ia += sap, ib += sbp) {
        const a0 = a[ia]!, a1 = a[ia + sai]!, a2 = a[ia + 2 * sai]!, a3 = a[ia + 3 * sai]!;
        const b0 = b[ib]!, b1 = b[ib + sbj]!, b2 = b[ib + 2 * sbj]!, b3 = b[ib + 3 * sbj]!;
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
      }
      let o = oOff + i * N + j;
      if (accumulate) {
        c00 += out[o]!; c01 += out[o + 1]!; c02 += out[o + 2]!; c03 += out[o + 3]!;
        c10 += out[o + N]!; c11 += out[o + N + 1]!; c12 += out[o + N + 2]!; c13 += out[o + N + 3]!;
        c20 += out[o + 2 * N]!; c21 += out[o + 2 * N + 1]!; c22 += out[o + 2 * N + 2]!; c23 += out[o + 2 * N + 3]!;
        c30 += out[o + 3 * N]!; c31 += out[o + 3 * N + 1]!; c32 += out[o + 3 * N + 2]!; c33 += out[o + 3 * N + 3]!;
      }
      out[o] = c00; out[o + 1] = c01; out[o + 2] = c02; out[o + 3] = c03; o += N;
      out[o] = c10; out[o + 1] = c11; out[o + 2] = c12; out[o + 3] = c13; o += N;
      out[o] = c20; out[o + 1] = c21; out[o + 2] = c22; out[o + 3] = c23; o += N;
      out[o] = c30; out[o + 1] = c31; out[o + 2] = c32; out[o + 3] = c33;
    }
  }
  // edges: the last M % 4 rows (all columns) and the last N % 4 columns of the blocked rows
  const dot = (i: number, j: number) => {
    let s = 0;
    for (let p = 0, ia = aOff + i * sai, ib = bOff + j * sbj; p < K; p++, ia += sap, ib += sbp) s += a[ia]! * b[ib]!;
    out[oOff + i * N + j] = accumulate ? out[oOff + i * N + j]! + s : s;
  };
  for (let i = 0; i < M4; i++) for (let j = N4; j < N; j++) dot(i, j);
  for (let i = M4; i < M; i++) for (let j = 0; j < N; j++) dot(i, j);
}

export const refKernels: KernelTable = {
  fill(dtype, size, value) {
    const a = arrayFor(dtype, size);
    if (value !== 0) a.fill(value);
    return a;
  },

  cast(a, to) {
    const src = A(a);
    const out = arrayFor(to, src.length);
    if (to === 'int32') for (let i = 0; i < src.length; i++) out[i] = Math.trunc(src[i]!);
    else (out as F).set(src);
    return out;
  },

  binary(op, a, aShape, b, bShape, outShape, dtype) {
    const x = A(a), y = A(b);
    const out = arrayFor(dtype, sizeOf(outShape));
    const f = binaryFns[op];
    if (x.length === out.length && y.length === out.length) {
      for (let i = 0; i < out.length; i++) out[i] = f(x[i]!, y[i]!);
    } else if (y.length === 1 && x.length === out.length) {
      const v = y[0]!;
      for (let i = 0; i < out.length; i++) out[i] = f(x[i]!, v);
    } else {
      forEachBroadcast(outShape, broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape),
        (o, ia, ib) => { out[o] = f(x[ia]!, y[ib]!); });
    }
    return out;
  },

  unary(op, a, dtype) {
    const x = A(a);
    const out = arrayFor(dtype, x.length);
    const f = unaryFns[op];
    for (let i = 0; i < x.length; i++) out[i] = f(x[i]!);
    return out;
  },

  siluBackward(x, g, dtype) {
    const xs = Fl(x), gs = Fl(g);
    const out = alloc(dtype, xs.length);
    for (let i = 0; i < xs.length; i++) {
      const s = 1 / (1 + Math.exp(-xs[i]!));
      out[i] = gs[i]! * s * (1 + xs[i]! * (1 - s));
    }
    return out;
  },

  swiglu(gate, up, dtype) {
    const a = Fl(gate), b = Fl(up);
    const out = alloc(dtype, a.length);
    for (let i = 0; i < a.length; i++) out[i] = (a[i]! / (1 + Math.exp(-a[i]!))) * b[i]!;
    return out;
  },

  swigluBackward(gate, up, g, dtype) {
    const a = Fl(gate), b = Fl(up), gs = Fl(g);
    const dGate = alloc(dtype, a.length), dUp = alloc(dtype, a.length);
    for (let i = 0; i < a.length; i++) {
      const s = 1 / (1 + Math.exp(-a[i]!));
      dUp[i] = gs[i]! * a[i]! * s;
      dGate[i] = gs[i]! * b[i]! * s * (1 + a[i]! * (1 - s));
    }
    return { dGate, dUp };
  },

  sum(a, shape, axes, dtype) {
    const x = A(a);
    const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const acc = new Float64Array(sizeOf(outShape));
    const so = broadcastStrides(outShape, shape);
    forEachBroadcast(shape, stridesOf(shape), so, (_o, ia, ib) => { acc[ib]! += x[ia]!; });
    const out = arrayFor(dtype, acc.length);
    (out as F).set(acc);
    return out;
  },

  max(a, shape, axis, dtype) {
    const x = A(a);
    const outer = sizeOf(shape.slice(0, axis)), D = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
    const values = arrayFor(dtype, outer * inner), indices = new Int32Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        let best = -Infinity, bi = 0;
        for (let d = 0; d < D; d++) {
          const v = x[(o * D + d) * inner + i]!;
          if (v > best || Number.isNaN(v)) { best = v; bi = d; if (Number.isNaN(v)) break; }
        }
        values[o * inner + i] = best; indices[o * inner + i] = bi;
      }
    }
    return { values, indices };
  },

  maxBackward(g, indices, shape, axis, dtype) {
    const gs = Fl(g), idx = I(indices);
    const outer = sizeOf(shape.slice(0, axis)), D = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
    const out = alloc(dtype, sizeOf(shape));
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) out[(o * D + idx[o * inner + i]!) * inner + i] = gs[o * inner + i]!;
    }
    return out;
  },

  expand(a, aShape, outShape, dtype) {
    const x = A(a);
    const out = arrayFor(dtype, sizeOf(outShape));
    forEachBroadcast(outShape, broadcastStrides(aShape, outShape), broadcastStrides([], outShape), (o, ia) => { out[o] = x[ia]!; });
    return out;
  },

  matmul(a, aShape, b, bShape, transA, transB, outShape, dtype, bDtype = dtype) {
    // a half B (a frozen weight) is widened for this call: the oracle runs exactly the float32 product
    const x = Fl(a), y = isHalf(bDtype) ? halfToFloat32(b as Uint16Array, bDtype) : Fl(b);
    const r = outShape.length;
    const M = outShape[r - 2]!, N = outShape[r - 1]!;
    const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
    const out = alloc(dtype, sizeOf(outShape));
    const batchShape = outShape.slice(0, -2);
    const sa = broadcastStrides(aShape.slice(0, -2), batchShape).map((s) => s * M * K);
    const sb = broadcastStrides(bShape.slice(0, -2), batchShape).map((s) => s * K * N);
    forEachBroadcast(batchShape, sa, sb, (o, ia, ib) => matmulInto(out, x, ia, y, ib, o * M * N, M, N, K, transA, transB));
    return out;
  },

  permute(a, shape, perm, dtype) {
    const x = A(a);
    const outShape = perm.map((p) => shape[p]!);
    const st = stridesOf(shape);
    const out = arrayFor(dtype, x.length);
    forEachBroadcast(outShape, perm.map((p) => st[p]!), outShape.map(() => 0), (o, ia) => { out[o] = x[ia]!; });
    return out;
  },

  slice(a, shape, starts, ends, dtype) {
    const x = A(a);
    const outShape = shape.map((_, i) => ends[i]! - starts[i]!);
    const st = stridesOf(shape);
    const base = starts.reduce((p, s, i) => p + s * st[i]!, 0);
    const out = arrayFor(dtype, sizeOf(outShape));
    forEachBroadcast(outShape, st, outShape.map(() => 0), (o, ia) => { out[o] = x[base + ia]!; });
    return out;
  },

  pad(a, aShape, outShape, starts, dtype) {
    const x = A(a);
    const st = stridesOf(outShape);
    const base = starts.reduce((p, s, i) => p + s * st[i]!, 0);
    const out = arrayFor(dtype, sizeOf(outShape));
    forEachBroadcast(aShape, stridesOf(aShape), st, (_o, ia, io) => { out[base + io] = x[ia]!; });
    return out;
  },

  embedding(w, V, C, ids, N, dtype) {
    const is = I(ids);
    if (isHalf(dtype)) {
      // a half table: each row converted as it is looked up (float32 rows out)
      const hw = w as Uint16Array, out = new Float32Array(N * C);
      for (let n = 0; n < N; n++) {
        const id = is[n]!;
        if (id >= 0 && id < V) halfToFloat32(hw.subarray(id * C, id * C + C), dtype, out.subarray(n * C, n * C + C));
        else out.fill(NaN, n * C, n * C + C);
      }
      return out;
    }
    const ws = Fl(w);
    const out = alloc(dtype, N * C);
    for (let n = 0; n < N; n++) {
      const id = is[n]!;
      if (id >= 0 && id < V) out.set(ws.subarray(id * C, id * C + C), n * C);
      else out.fill(NaN, n * C, n * C + C); // the op validates ids it can see; an unseen bad id must not train silently
    }
    return out;
  },

  embeddingBackward(g, ids, N, V, C, dtype, into) {
    const gs = Fl(g), is = I(ids);
    const out = into ? Fl(into) : alloc(dtype, V * C);
    for (let n = 0; n < N; n++) {
      const o = is[n]! * C;
      for (let c = 0; c < C; c++) out[o + c]! += gs[n * C + c]!;
    }
    return out;
  },

  softmax(a, rows, cols, log, dtype) {
    const x = Fl(a);
    const out = alloc(dtype, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity;
      for (let j = 0; j < cols; j++) m = Math.max(m, x[o + j]!);
      let s = 0;
      for (let j = 0; j < cols; j++) s += Math.exp(x[o + j]! - m);
      if (log) {
        const l = m + Math.log(s);
        for (let j = 0; j < cols; j++) out[o + j] = x[o + j]! - l;
      } else {
        for (let j = 0; j < cols; j++) out[o + j] = Math.exp(x[o + j]! - m) / s;
      }
    }
    return out;
  },

  softmaxBackward(y, g, rows, cols, log, dtype) {
    const ys = Fl(y), gs = Fl(g);
    const out = alloc(dtype, rows * cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      if (log) {
        // dx = g − softmax · Σg
        let s = 0;
        for (let j = 0; j < cols; j++) s += gs[o + j]!;
        for (let j = 0; j < cols; j++) out[o + j] = gs[o + j]! - Math.exp(ys[o + j]!) * s;
      } else {
        // dx = y · (g − Σ g·y)
        let s = 0;
        for (let j = 0; j < cols; j++) s += gs[o + j]! * ys[o + j]!;
        for (let j = 0; j < cols; j++) out[o + j] = ys[o + j]! * (gs[o + j]! - s);
      }
    }
    return out;
  },

  logsumexp(a, rows, cols, dtype) {
    const x = Fl(a);
    const out = alloc(dtype, rows);
    for (let r = 0; r < rows; r++) out[r] = rowLse(x, r * cols, cols);
    return out;
  },

  rmsNorm(x, w, rows, C, eps, dtype) {
    const xs = Fl(x), ws = Fl(w);
    const y = alloc(dtype, rows * C), rstd = alloc(dtype, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * C;
      let ss = 0;
      for (let c = 0; c < C; c++) ss += xs[o + c]! * xs[o + c]!;
      const rs = 1 / Math.sqrt(ss / C + eps);
      rstd[r] = rs;
      for (let c = 0; c < C; c++) y[o + c] = ws[c]! * (xs[o + c]! * rs);
    }
    return { y, rstd };
  },

  rmsNormBackward(x, w, rstd, g, rows, C, dtype) {
    const xs = Fl(x), ws = Fl(w), rs = Fl(rstd), gs = Fl(g);
    const dx = alloc(dtype, rows * C);
    const dw = new Float64Array(C);
    for (let r = 0; r < rows; r++) {
      const o = r * C, s = rs[r]!;
      // xhat = x·s; dxhat = g·w; dx = s·(dxhat − xhat·mean(dxhat·xhat))
      let dot = 0;
      for (let c = 0; c < C; c++) {
        const xh = xs[o + c]! * s;
        dw[c]! += gs[o + c]! * xh;
        dot += gs[o + c]! * ws[c]! * xh;
      }
      dot /= C;
      for (let c = 0; c < C; c++) dx[o + c] = s * (gs[o + c]! * ws[c]! - xs[o + c]! * s * dot);
    }
    const dwOut = alloc(dtype, C);
    dwOut.set(dw);
    return { dx, dw: dwOut };
  },

  rope(x, B, T, H, HD, positions, invFreq, scaling, inverse, dtype) {
    const xs = Fl(x), pos = I(positions);
    const half = HD / 2;
    const out = alloc(dtype, xs.length);
    const cos = new Float64Array(half), sin = new Float64Array(half);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const p = pos[b * T + t]!;
        for (let j = 0; j < half; j++) {
          // HF computes the angle and cos/sin in float32; the fixture in float64. Compute in float64.
          const ang = p * invFreq[j]!;
          cos[j] = Math.cos(ang) * scaling;
          sin[j] = (inverse ? -Math.sin(ang) : Math.sin(ang)) * scaling;
        }
        for (let h = 0; h < H; h++) {
          const o = ((b * T + t) * H + h) * HD;
          for (let j = 0; j < half; j++) {
            // rotate_half: (x1, x2) → (−x2, x1); out = x·cos + rotate_half(x)·sin. The transpose is sin → −sin.
            const x1 = xs[o + j]!, x2 = xs[o + j + half]!;
            out[o + j] = x1 * cos[j]! - x2 * sin[j]!;
            out[o + j + half] = x2 * cos[j]! + x1 * sin[j]!;
          }
        }
      }
    }
    return out;
  },

  attention(q, k, v, args, dtype) {
    const { B, T, S, NH, HD } = args;
    const qs = Fl(q), ks = Fl(k), vs = Fl(v);
    const out = alloc(dtype, B * T * NH * HD);
    const lse = alloc(dtype, B * NH * T);
    const p = new Float64Array(S);
    const acc = new Float64Array(HD);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < NH; h++) {
        for (let t = 0; t < T; t++) {
          const qo = ((b * T + t) * NH + h) * HD;
          const m = attnScores(qs, ks, qo, b, h, t, args, p);
          const oo = qo;
          if (m === -Infinity) { lse[(b * NH + h) * T + t] = -Infinity; continue; } // no key: output 0
          let s = 0;
          for (let j = 0; j < S; j++) { const e = p[j] === -Infinity ? 0 : Math.exp(p[j]! - m); p[j] = e; s += e; }
          acc.fill(0);
          const kvh = Math.floor(h / (NH / args.NKV));
          for (let j = 0; j < S; j++) {
            if (p[j] === 0) continue;
            const w = p[j]! / s, vo = ((b * S + j) * args.NKV + kvh) * HD;
            for (let d = 0; d < HD; d++) acc[d]! += w * vs[vo + d]!;
          }
          for (let d = 0; d < HD; d++) out[oo + d] = acc[d]!;
          lse[(b * NH + h) * T + t] = m + Math.log(s);
        }
      }
    }
    return { out, lse };
  },

  attentionBackward(q, k, v, out, lse, g, args, dtype) {
    const { B, T, S, NH, NKV, HD, scale } = args;
    const qs = Fl(q), ks = Fl(k), vs = Fl(v), os = Fl(out), ls = Fl(lse), gs = Fl(g);
    const dq = alloc(dtype, qs.length);
    const dk = new Float64Array(ks.length), dv = new Float64Array(vs.length);
    const p = new Float64Array(S);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < NH; h++) {
        const kvh = Math.floor(h / (NH / NKV));
        for (let t = 0; t < T; t++) {
          const l = ls[(b * NH + h) * T + t]!;
          if (l === -Infinity) continue;
          const qo = ((b * T + t) * NH + h) * HD;
          attnScores(qs, ks, qo, b, h, t, args, p);
          // D = dO · O  (= Σ_j P_ij dP_ij)
          let D = 0;
          for (let d = 0; d < HD; d++) D += gs[qo + d]! * os[qo + d]!;
          for (let j = 0; j < S; j++) {
            if (p[j] === -Infinity) continue;
            const P = Math.exp(p[j]! - l);
            const ko = ((b * S + j) * NKV + kvh) * HD;
            let dP = 0;
            for (let d = 0; d < HD; d++) { dP += gs[qo + d]! * vs[ko + d]!; dv[ko + d]! += P * gs[qo + d]!; }
            const dS = P * (dP - D) * scale;
            for (let d = 0; d < HD; d++) { dq[qo + d]! += dS * ks[ko + d]!; dk[ko + d]! += dS * qs[qo + d]!; }
          }
        }
      }
    }
    const dkOut = alloc(dtype, dk.length), dvOut = alloc(dtype, dv.length);
    dkOut.set(dk); dvOut.set(dv);
    return { dq, dk: dkOut, dv: dvOut };
  },

  crossEntropy(logits, targets, args, dtype) {
    const { N, V, ignoreIndex, labelSmoothing: eps, zLoss } = args;
    const z = Fl(logits), t = I(targets);
    const loss = alloc(dtype, N), lse = alloc(dtype, N);
    for (let n = 0; n < N; n++) {
      const o = n * V;
      const l = rowLse(z, o, V);
      lse[n] = l;
      const y = t[n]!;
      if (y === ignoreIndex) { loss[n] = 0; continue; }
      if (y < 0 || y >= V) { loss[n] = NaN; continue; }
      let v = (1 - eps) * (l - z[o + y]!);
      if (eps !== 0) {
        let s = 0;
        for (let j = 0; j < V; j++) s += z[o + j]!;
        v += eps * (l - s / V);
      }
      if (zLoss !== 0) v += zLoss * l * l;
      loss[n] = v;
    }
    return { loss, lse };
  },

  crossEntropyBackward(logits, lse, targets, g, args, dtype) {
    const { N, V, ignoreIndex, labelSmoothing: eps, zLoss } = args;
    const z = Fl(logits), ls = Fl(lse), t = I(targets), gs = Fl(g);
    const out = alloc(dtype, N * V);
    for (let n = 0; n < N; n++) {
      const y = t[n]!;
      if (y === ignoreIndex) continue;
      const o = n * V, l = ls[n]!, gn = gs[n]!;
      if (y < 0 || y >= V) { out.fill(NaN, o, o + V); continue; }
      const pScale = 1 + 2 * zLoss * l; // softmax coefficient: CE term + z-loss term
      for (let j = 0; j < V; j++) out[o + j] = gn * (pScale * Math.exp(z[o + j]! - l) - eps / V);
      out[o + y]! -= gn * (1 - eps);
    }
    return out;
  },

  linearCrossEntropy(hidden, weight, targets, args, grad, dtype, wDtype = dtype) {
    const { N, C, V, ignoreIndex, labelSmoothing: eps, zLoss, softcap, chunkSize } = args;
    // a half head (frozen) is widened for this call: the oracle runs exactly the float32 math
    const H = Fl(hidden), W = isHalf(wDtype) ? halfToFloat32(weight as Uint16Array, wDtype) : Fl(weight), t = I(targets);
    const loss = alloc(dtype, N);
    const rowScale = grad && 'rows' in grad ? Fl(grad.rows) : null;
    const dHidden = grad ? alloc(dtype, N * C) : null;
    const dWeight = grad && args.weightGrad ? alloc(dtype, V * C) : null; // accumulated chunk by chunk
    const R = Math.max(1, Math.min(chunkSize, N));
    const z = new Float64Array(R * V); // [R, V] the only logits buffer
    const dH64 = new Float64Array(R * C);
    for (let n0 = 0; n0 < N; n0 += R) {
      const rows = Math.min(R, N - n0);
      matmulInto(z, H, n0 * C, W, 0, 0, rows, V, C, false, true); // z = H[n0:n0+rows] · Wᵀ
      let any = false;
      for (let r = 0; r < rows; r++) {
        const n = n0 + r, o = r * V, y = t[n]!;
        if (softcap > 0) for (let j = 0; j < V; j++) z[o + j] = softcap * Math.tanh(z[o + j]! / softcap);
        if (y === ignoreIndex) { loss[n] = 0; z.fill(0, o, o + V); continue; }
        if (y < 0 || y >= V) { loss[n] = NaN; z.fill(NaN, o, o + V); any = true; continue; }
        const l = rowLse(z, o, V);
        let v = (1 - eps) * (l - z[o + y]!);
        if (eps !== 0) { let s = 0; for (let j = 0; j < V; j++) s += z[o + j]!; v += eps * (l - s / V); }
        if (zLoss !== 0) v += zLoss * l * l;
        loss[n] = v;
        if (!grad) continue;
        // z[o..] becomes d(g·loss_n)/d(raw logits): g·(p·(1 + 2λ·lse) − ε/V − (1−ε)·onehot) · softcap'
        const g = rowScale ? rowScale[n]! : (grad as { scale: number }).scale;
        const pScale = 1 + 2 * zLoss * l;
        for (let j = 0; j < V; j++) {
          const zj = z[o + j]!;
          let d = g * (pScale * Math.exp(zj - l) - eps / V);
          if (j === y) d -= g * (1 - eps);
          if (softcap > 0) d *= 1 - (zj / softcap) * (zj / softcap);
          z[o + j] = d;
        }
        any = true;
      }
      if (!grad || !any) { if (grad) dHidden!.fill(0, n0 * C, (n0 + rows) * C); continue; }
      matmulInto(dH64, z, 0, W, 0, 0, rows, C, V, false, false); // dH = dz · W      [rows, C]
      for (let i = 0; i < rows * C; i++) dHidden![n0 * C + i] = dH64[i]!;
      if (dWeight) matmulInto(dWeight, z, 0, H, n0 * C, 0, V, C, rows, true, false, true); // dW += dzᵀ · H   [V, C]
    }
    return { loss, dHidden, dWeight };
  },

  addInPlace(dst, src) {
    const d = Fl(dst), s = Fl(src);
    for (let i = 0; i < d.length; i++) d[i]! += s[i]!;
  },

  scaleInPlace(a, s) {
    const x = Fl(a);
    for (let i = 0; i < x.length; i++) x[i]! *= s;
  },

  clamp(a, lo, hi, dtype) {
    const x = Fl(a), out = alloc(dtype, x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! < lo ? lo : x[i]! > hi ? hi : x[i]!; // NaN fails both: stays NaN
    return out;
  },

  clampBackward(x, g, lo, hi, dtype) {
    const xs = Fl(x), gs = Fl(g), out = alloc(dtype, xs.length);
    for (let i = 0; i < xs.length; i++) out[i] = xs[i]! >= lo && xs[i]! <= hi ? gs[i]! : 0;
    return out;
  },

  globalNorm(list, _sizes, normType, dtype) {
    let total = 0;
    for (const s of list) {
      const x = Fl(s);
      if (normType === Infinity) for (let i = 0; i < x.length; i++) total = Math.max(total, Math.abs(x[i]!)); // NaN sticks
      else if (normType === 2) for (let i = 0; i < x.length; i++) total += x[i]! * x[i]!;
      else for (let i = 0; i < x.length; i++) total += Math.abs(x[i]!) ** normType;
    }
    const norm = normType === Infinity ? total : normType === 2 ? Math.sqrt(total) : total ** (1 / normType);
    const out = alloc(dtype, 1);
    out[0] = norm;
    return out;
  },

  clipByNorm(list, _sizes, norm, maxNorm) {
    const total = Fl(norm)[0]!;
    if (!Number.isFinite(total)) return;
    const coef = Math.min(1, maxNorm / (total + 1e-6));
    if (coef === 1) return;
    for (const s of list) {
      const x = Fl(s);
      for (let i = 0; i < x.length; i++) x[i]! *= coef;
    }
  },

  adamStep(group, args, gate) {
    if (gate && !Number.isFinite(Fl(gate)[0]!)) return;
    const { lr, beta1, beta2, eps, weightDecay: wd, decoupled, amsgrad } = args;
    group.params.forEach((p, k) => {
      const ps = Fl(p), gs = Fl(group.grads[k]!), ms = Fl(group.m[k]!), vs = Fl(group.v[k]!);
      const vm = group.vMax ? Fl(group.vMax[k]!) : null;
      const step = group.steps[k]!;
      const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
      const stepSize = lr / (1 - beta1 ** step);
      for (let i = 0; i < ps.length; i++) {
        let grad = gs[i]!;
        if (wd !== 0) {
          if (decoupled) ps[i]! *= 1 - lr * wd;
          else grad += wd * ps[i]!;
        }
        ms[i] = beta1 * ms[i]! + (1 - beta1) * grad;
        vs[i] = beta2 * vs[i]! + (1 - beta2) * grad * grad;
        let second = vs[i]!;
        if (amsgrad && vm) { vm[i] = Math.max(vm[i]!, second); second = vm[i]!; }
        ps[i]! -= (stepSize * ms[i]!) / (Math.sqrt(second) / bc2Sqrt + eps);
      }
    });
  },

  sgdStep(group, args, gate) {
    if (gate && !Number.isFinite(Fl(gate)[0]!)) return;
    const { lr, momentum, dampening, nesterov, weightDecay: wd } = args;
    group.params.forEach((p, k) => {
      const ps = Fl(p), gs = Fl(group.grads[k]!), bs = group.bufs ? Fl(group.bufs[k]!) : null;
      const firstStep = group.firstStep[k]!;
      for (let i = 0; i < ps.length; i++) {
        let d = gs[i]!;
        if (wd !== 0) d += wd * ps[i]!;
        if (bs) {
          bs[i] = firstStep ? d : momentum * bs[i]! + (1 - dampening) * d;
          d = nesterov ? d + momentum * bs[i]! : bs[i]!;
        }
        ps[i]! -= lr * d;
      }
    });
  },

  muonMomentum(group, args, dtype) {
    const { momentum: beta, nesterov } = args;
    const round = dtype === 'float32' ? Math.fround : (x: number) => x; // buf' as muonStep will store it
    const out = alloc(dtype, group.sizes.reduce((s, n) => s + n, 0));
    let o = 0;
    group.grads.forEach((g, k) => {
      const gs = Fl(g), bs = Fl(group.bufs[k]!);
      for (let i = 0; i < gs.length; i++, o++) {
        const nb = round(bs[i]! + (1 - beta) * (gs[i]! - bs[i]!));
        out[o] = nesterov ? gs[i]! + beta * (nb - gs[i]!) : nb;
      }
    });
    return out;
  },

  muonStep(group, update, args, gate) {
    if (gate && !Number.isFinite(Fl(gate)[0]!)) return;
    const { lr, momentum: beta, weightDecay: wd, scale } = args;
    const us = Fl(update);
    let o = 0;
    group.params.forEach((p, k) => {
      const ps = Fl(p), gs = Fl(group.grads[k]!), bs = Fl(group.bufs[k]!);
      for (let i = 0; i < ps.length; i++, o++) {
        bs[i] = bs[i]! + (1 - beta) * (gs[i]! - bs[i]!);
        if (wd !== 0) ps[i]! *= 1 - lr * wd;
        ps[i]! -= lr * scale * us[o]!;
      }
    });
  },
};

function rowLse(x: F, o: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[o + j]!);
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[o + j]! - m);
  return m + Math.log(s);
}

/** Fills p[j] with the scaled score of key j (−Infinity where masked) and returns the max score. */
function attnScores(qs: F, ks: F, qo: number, b: number, h: number, t: number, args: AttentionArgs, p: Float64Array): number {
  const { S, NH, NKV, HD, scale, causal, qOffset, window } = args;
  const mask = args.keyMask ? I(args.keyMask) : null;
  const doc = args.docIds ? I(args.docIds) : null;
  const kvh = Math.floor(h / (NH / NKV));
  const qpos = qOffset + t;
  const qdoc = doc ? doc[b * S + qpos]! : 0;
  let m = -Infinity;
  for (let j = 0; j < S; j++) {
    if ((causal && j > qpos) || (window > 0 && j <= qpos - window) || (mask && mask[b * S + j] === 0) || (doc && doc[b * S + j] !== qdoc)) {
      p[j] = -Infinity;
      continue;
    }
    const ko = ((b * S + j) * NKV + kvh) * HD;
    let s = 0;
    for (let d = 0; d < HD; d++) s += qs[qo + d]! * ks[ko + d]!;
    s *= scale;
    p[j] = s;
    if (s > m) m = s;
  }
  return m;
}

