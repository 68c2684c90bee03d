// Row kernels (one workgroup per row, tree reductions in workgroup memory: deterministic): sum over axes,
// softmax / log-softmax / logsumexp, RMSNorm, cross-entropy; and the per-element ones that index by ids:
// embedding (+ its scatter-add backward, a thread per column walking the rows in order: deterministic, no
// atomics) and RoPE.

import type { KernelTable } from '../../../core/backend.js';
import { sizeOf, stridesOf } from '../../../core/dtype.js';
import type { GpuRuntime, GpuTensor } from '../device.js';
import { fillInto } from './elementwise.js';
import { MAX_RANK, T, main1d, mainRow, mergeDims, ro, rowThreads, run1d, rw, wgslType } from './common.js';

/** WGSL: sin and cos of p·f (p an integer position, f an inverse frequency) to ~1 ulp: the product's rounding
 *  error is kept (fma), the angle is reduced by π/2 in three parts (Cody–Waite) and the polynomials are Cephes'
 *  sinf/cosf on [−π/4, π/4]. GPUs' built-in sin/cos are only accurate to ~2⁻¹¹ on some drivers. */
export const SINCOS = /* wgsl */ `
fn sincos(p: f32, f: f32) -> vec2<f32> {
  let a = p * f;
  let e = fma(p, f, -a);
  let k = round(a * 0.636619772367581343);
  let r = (((a - k * 1.5703125) - k * 4.837512969970703125e-4) - k * 7.54978995489188216e-8) + e;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let q = i32(k) & 3;
  if (q == 0) { return vec2<f32>(s, c); }
  if (q == 1) { return vec2<f32>(c, -s); }
  if (q == 2) { return vec2<f32>(-s, -c); }
  return vec2<f32>(-c, s);
}`;

export function rowKernels(rt: GpuRuntime): Partial<KernelTable> {
  const invFreqs = new WeakMap<Float32Array, GpuTensor>();
  const table = (invFreq: Float32Array): GpuTensor => {
    let t = invFreqs.get(invFreq);
    if (!t) { t = rt.upload(invFreq); rt.persist(t); invFreqs.set(invFreq, t); }
    return t;
  };
  const zeros = (n: number) => { const t = rt.alloc(n); fillInto(rt, t, n, 0); return t; };
  /** One workgroup per row of `cols` elements, its width from rowThreads(cols). */
  const rows = (key: string, cols: number, code: (wg: number) => string, buffers: GpuTensor[], n: number, ints: number[] = [], floats: number[] = []) => {
    const wg = rowThreads(cols);
    if (n > 0) rt.dispatch({ key: `${key}_${wg}`, code: () => code(wg) }, buffers, [n, ...ints], floats, n);
  };

  return {
    sum(a, shape, axes, dtype) {
      wgslType(dtype);
      const st = stridesOf(shape);
      const keptDims = shape.map((_, i) => i).filter((i) => !axes.includes(i));
      const kept = mergeDims(keptDims.map((i) => shape[i]!), [keptDims.map((i) => st[i]!)]);
      const red = mergeDims(axes.map((i) => shape[i]!), [axes.map((i) => st[i]!)]);
      const nOut = sizeOf(kept.shape), nRed = sizeOf(red.shape);
      const pad = (x: number[]) => [...x, ...new Array(MAX_RANK - x.length).fill(0)];
      if (nRed === 0) return zeros(nOut);
      const out = rt.alloc(nOut);
      rows('sum', nRed, (wg) => ro(1, 'a') + rw(2, 'o') + mainRow(`
        let nRed = pu(1u);
        let base = offs2(row, 2u, 3u, 9u);
        var s = 0.0;
        for (var r = lid; r < nRed; r = r + WGR) { s = s + a[base + offs2(r, 15u, 16u, 22u)]; }
        let tot = wgSum(lid, s);
        if (lid == 0u) { o[row] = tot; }`, /* wgsl */ `
        fn offs2(i: u32, rk: u32, sh: u32, st: u32) -> u32 {
          var r = i;
          var o = 0u;
          for (var d = i32(pu(rk)) - 1; d >= 0; d = d - 1) {
            let dim = pu(sh + u32(d));
            o = o + (r % dim) * pu(st + u32(d));
            r = r / dim;
          }
          return o;
        }`, wg), [T(a), out], nOut,
      [nRed, kept.shape.length, ...pad(kept.shape), ...pad(kept.strides[0]!), red.shape.length, ...pad(red.shape), ...pad(red.strides[0]!)]);
      return out;
    },

    softmax(a, R, cols, log, dtype) {
      wgslType(dtype);
      const out = rt.alloc(R * cols);
      rows(`softmax_${log}`, cols, (wg) => ro(1, 'a') + rw(2, 'o') + mainRow(`
        let cols = pu(1u); let o0 = row * cols;
        var m = -3.4028234e38;
        for (var j = lid; j < cols; j = j + WGR) { m = maxN(m, a[o0 + j]); }
        m = wgMax(lid, m);
        var s = 0.0;
        for (var j = lid; j < cols; j = j + WGR) { s = s + exp(a[o0 + j] - m); }
        s = wgSum(lid, s);
        ${log
          ? 'let l = m + log(s); for (var j = lid; j < cols; j = j + WGR) { o[o0 + j] = a[o0 + j] - l; }'
          : 'for (var j = lid; j < cols; j = j + WGR) { o[o0 + j] = exp(a[o0 + j] - m) / s; }'}`, '', wg), [T(a), out], R, [cols]);
      return out;
    },

    softmaxBackward(y, g, R, cols, log, dtype) {
      wgslType(dtype);
      const out = rt.alloc(R * cols);
      rows(`softmaxBackward_${log}`, cols, (wg) => ro(1, 'y') + ro(2, 'g') + rw(3, 'o') + mainRow(`
        let cols = pu(1u); let o0 = row * cols;
        var s = 0.0;
        for (var j = lid; j < cols; j = j + WGR) { s = s + ${log ? 'g[o0 + j]' : 'g[o0 + j] * y[o0 + j]'}; }
        s = wgSum(lid, s);
        for (var j = lid; j < cols; j = j + WGR) {
          ${log ? 'o[o0 + j] = g[o0 + j] - exp(y[o0 + j]) * s;' : 'o[o0 + j] = y[o0 + j] * (g[o0 + j] - s);'}
        }`, '', wg), [T(y), T(g), out], R, [cols]);
      return out;
    },

    logsumexp(a, R, cols, dtype) {
      wgslType(dtype);
      const out = rt.alloc(R);
      rows('logsumexp', cols, (wg) => ro(1, 'a') + rw(2, 'o') + mainRow(`
        let cols = pu(1u); let o0 = row * cols;
        var m = -3.4028234e38;
        for (var j = lid; j < cols; j = j + WGR) { m = maxN(m, a[o0 + j]); }
        m = wgMax(lid, m);
        var s = 0.0;
        for (var j = lid; j < cols; j = j + WGR) { s = s + exp(a[o0 + j] - m); }
        s = wgSum(lid, s);
        if (lid == 0u) { o[row] = m + log(s); }`, '', wg), [T(a), out], R, [cols]);
      return out;
    },

    rmsNorm(x, w, R, C, eps, dtype) {
      wgslType(dtype);
      const y = rt.alloc(R * C), rstd = rt.alloc(R);
      rows('rmsNorm', C, (wg) => ro(1, 'x') + ro(2, 'w') + rw(3, 'y') + rw(4, 'rs') + mainRow(`
        let C = pu(1u); let o0 = row * C;
        var ss = 0.0;
        for (var c = lid; c < C; c = c + WGR) { let v = x[o0 + c]; ss = ss + v * v; }
        ss = wgSum(lid, ss);
        let r = 1.0 / sqrt(ss / f32(C) + pf(0u));
        if (lid == 0u) { rs[row] = r; }
        for (var c = lid; c < C; c = c + WGR) { y[o0 + c] = w[c] * (x[o0 + c] * r); }`, '', wg), [T(x), T(w), y, rstd], R, [C], [eps]);
      return { y, rstd };
    },

    rmsNormBackward(x, w, rstd, g, R, C, dtype) {
      wgslType(dtype);
      const dx = rt.alloc(R * C), dw = rt.alloc(C);
      rows('rmsNormBackward', C, (wg) => ro(1, 'x') + ro(2, 'w') + ro(3, 'rs') + ro(4, 'g') + rw(5, 'dx') + mainRow(`
        let C = pu(1u); let o0 = row * C; let s = rs[row];
        var dot = 0.0;
        for (var c = lid; c < C; c = c + WGR) { dot = dot + g[o0 + c] * w[c] * (x[o0 + c] * s); }
        dot = wgSum(lid, dot) / f32(C);
        for (var c = lid; c < C; c = c + WGR) { dx[o0 + c] = s * (g[o0 + c] * w[c] - x[o0 + c] * s * dot); }`, '', wg),
      [T(x), T(w), T(rstd), T(g), dx], R, [C]);
      // dw[c] = Σ_rows g·x̂: a thread per column, rows in order
      run1d(rt, { key: 'rmsNormBackwardW', code: () => ro(1, 'x') + ro(2, 'rs') + ro(3, 'g') + rw(4, 'dw') + main1d(`
        let C = pu(0u); let R = pu(1u);
        var s = 0.0;
        for (var r = 0u; r < R; r = r + 1u) { s = s + g[r * C + i] * (x[r * C + i] * rs[r]); }
        dw[i] = s;`) }, [T(x), T(rstd), T(g), dw], C, [R]);
      return { dx, dw };
    },

    crossEntropy(logits, targets, args, dtype) {
      wgslType(dtype);
      const { N, V, ignoreIndex, labelSmoothing, zLoss } = args;
      const loss = rt.alloc(N), lse = rt.alloc(N);
      rows('crossEntropy', V, (wg) => ro(1, 'z') + ro(2, 'tg', 'i32') + rw(3, 'loss') + rw(4, 'lse') + mainRow(`
        let V = pu(1u); let o0 = row * V; let eps = pf(0u); let zl = pf(1u);
        var m = -3.4028234e38;
        for (var j = lid; j < V; j = j + WGR) { m = maxN(m, z[o0 + j]); }
        m = wgMax(lid, m);
        var s = 0.0; var zs = 0.0;
        for (var j = lid; j < V; j = j + WGR) { let v = z[o0 + j]; s = s + exp(v - m); zs = zs + v; }
        s = wgSum(lid, s);
        zs = wgSum(lid, zs);
        let l = m + log(s);
        if (lid == 0u) {
          lse[row] = l;
          let y = tg[row];
          if (y == pi(2u)) { loss[row] = 0.0; }
          else if (y < 0 || y >= i32(V)) { loss[row] = pf(2u); }
          else {
            var v = (1.0 - eps) * (l - z[o0 + u32(y)]);
            if (eps != 0.0) { v = v + eps * (l - zs / f32(V)); }
            if (zl != 0.0) { v = v + zl * l * l; }
            loss[row] = v;
          }
        }`, '', wg), [T(logits), T(targets), loss, lse], N, [V, ignoreIndex], [labelSmoothing, zLoss, NaN]);
      return { loss, lse };
    },

    crossEntropyBackward(logits, lse, targets, g, args, dtype) {
      wgslType(dtype);
      const { N, V, ignoreIndex, labelSmoothing, zLoss } = args;
      const out = rt.alloc(N * V);
      run1d(rt, { key: 'crossEntropyBackward', code: () => ro(1, 'z') + ro(2, 'lse') + ro(3, 'tg', 'i32') + ro(4, 'g') + rw(5, 'o') + main1d(`
        let V = pu(1u); let n = i / V; let j = i % V; let y = tg[n];
        let eps = pf(0u);
        if (y == pi(2u)) { o[i] = 0.0; return; }
        if (y < 0 || y >= i32(V)) { o[i] = pf(2u); return; }
        let l = lse[n]; let gn = g[n];
        var d = gn * ((1.0 + 2.0 * pf(1u) * l) * exp(z[i] - l) - eps / f32(V));
        if (i32(j) == y) { d = d - gn * (1.0 - eps); }
        o[i] = d;`) }, [T(logits), T(lse), T(targets), T(g), out], N * V, [V, ignoreIndex], [labelSmoothing, zLoss, NaN]);
      return out;
    },

    embedding(w, V, C, ids, N, dtype) {
      wgslType(dtype);
      const out = rt.alloc(N * C);
      run1d(rt, { key: 'embedding', code: () => ro(1, 'w') + ro(2, 'ids', 'i32') + rw(3, 'o') + main1d(`
        let C = pu(1u); let n = i / C; let c = i % C; let id = ids[n];
        if (id < 0 || id >= i32(pu(2u))) { o[i] = pf(0u); } else { o[i] = w[u32(id) * C + c]; }`) },
      [T(w), T(ids), out], N * C, [C, V], [NaN]);
      return out;
    },

    embeddingBackward(g, ids, N, V, C, dtype, into) {
      wgslType(dtype);
      const out = into ? T(into) : zeros(V * C);
      // a thread per column c adds the rows in order (deterministic); ids outside [0, V) are skipped
      run1d(rt, { key: 'embeddingBackward', code: () => ro(1, 'g') + ro(2, 'ids', 'i32') + rw(3, 'o') + main1d(`
        let C = pu(0u); let N = pu(1u); let V = i32(pu(2u));
        for (var n = 0u; n < N; n = n + 1u) {
          let id = ids[n];
          if (id >= 0 && id < V) { let k = u32(id) * C + i; o[k] = o[k] + g[n * C + i]; }
        }`) }, [T(g), T(ids), out], C, [N, V]);
      return out;
    },

    rope(x, B, Tn, H, HD, positions, invFreq, scaling, inverse, dtype) {
      wgslType(dtype);
      const half = HD / 2;
      const out = rt.alloc(B * Tn * H * HD);
      run1d(rt, { key: 'rope', code: () => ro(1, 'x') + ro(2, 'pos', 'i32') + ro(3, 'f') + rw(4, 'o') + SINCOS + main1d(`
        let half = pu(1u); let H = pu(2u);
        let j = i % half; let r = i / half; let h = r % H; let bt = r / H;
        let sc = sincos(f32(pos[bt]), f[j]);
        let c = sc.y * pf(0u);
        let s = sc.x * pf(0u) * pf(1u);
        let o0 = (bt * H + h) * 2u * half;
        let x1 = x[o0 + j]; let x2 = x[o0 + j + half];
        o[o0 + j] = x1 * c - x2 * s;
        o[o0 + j + half] = x2 * c + x1 * s;`) }, [T(x), T(positions), table(invFreq), out], B * Tn * H * half, [half, H], [scaling, inverse ? -1 : 1]);
      return out;
    },
  };
}
