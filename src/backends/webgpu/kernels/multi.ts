// Kernels over lists of tensors: the global norm (partial reductions per tensor into one buffer, then one
// final reduction: deterministic), clipping by that norm and the Adam/AdamW/SGD updates — each reading its
// device scalars (norm, gate) on the device. Tensors are separate buffers, so the list is one dispatch per tensor,
// all recorded into the same command buffer without a wait.

import type { KernelTable } from '../../../core/backend.js';
import type { GpuRuntime, GpuTensor } from '../device.js';
import { T, WG, main1d, mainRow, ro, run1d, rw, wgslType } from './common.js';

/** Workgroups per tensor in the norm's first pass (each thread strides over its share). */
const MAX_PARTS = 64;

/**
 * Error-free float32 transforms (Dekker, Knuth): a double-float (hi, lo) carries ~48 bits. The 2-norm and
 * clipping use them to give the float32 results a float64 computation rounds to (ref's and the CPU backends'),
 * so that clipping agrees bit for bit across backends. They assume IEEE float32 operations evaluated as written
 * (WGSL does not reassociate).
 */
const DD = /* wgsl */ `
fn ddSplit(a: f32) -> vec2<f32> { let c = 4097.0 * a; let h = c - (c - a); return vec2<f32>(h, a - h); }
fn twoProd(a: f32, b: f32) -> vec2<f32> {
  let p = a * b; let A = ddSplit(a); let B = ddSplit(b);
  return vec2<f32>(p, ((A.x * B.x - p) + A.x * B.y + A.y * B.x) + A.y * B.y);
}
fn twoSum(a: f32, b: f32) -> vec2<f32> { let s = a + b; let bb = s - a; return vec2<f32>(s, (a - (s - bb)) + (b - bb)); }
fn fastTwoSum(a: f32, b: f32) -> vec2<f32> { let s = a + b; return vec2<f32>(s, b - (s - a)); }
fn ddAdd(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let s = twoSum(a.x, b.x); let t = twoSum(a.y, b.y);
  let u = fastTwoSum(s.x, s.y + t.x);
  return fastTwoSum(u.x, t.y + u.y);
}`;

/** Splits a float64 into float32 hi + lo. */
const split64 = (x: number): [number, number] => { const hi = Math.fround(x); return [hi, Math.fround(x - hi)]; };

export function multiKernels(rt: GpuRuntime): Partial<KernelTable> {
  /** The 2-norm: squares summed as double-floats (exact products), partials [2 per workgroup + 1 for non-finite
   *  squares], then one workgroup adds them and takes a corrected square root. */
  const norm2 = (list: readonly object[], sizes: readonly number[], parts: number[], total: number, partial: GpuTensor, out: GpuTensor) => {
    const dd = rt.alloc(3 * Math.max(1, total));
    rt.release(partial);
    const reduce = /* wgsl */ `
      var rh: array<f32, ${WG}>; var rl: array<f32, ${WG}>;
      fn wgDD(lid: u32, v: vec2<f32>) -> vec2<f32> {
        rh[lid] = v.x; rl[lid] = v.y;
        workgroupBarrier();
        for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
          if (lid < s) { let r = ddAdd(vec2<f32>(rh[lid], rl[lid]), vec2<f32>(rh[lid + s], rl[lid + s])); rh[lid] = r.x; rl[lid] = r.y; }
          workgroupBarrier();
        }
        let r = vec2<f32>(rh[0], rl[0]);
        workgroupBarrier();
        return r;
      }`.replace(/var rh/, 'var<workgroup> rh').replace(/var rl/, 'var<workgroup> rl');
    let base = 0;
    list.forEach((s, k) => {
      if (parts[k] === 0) return;
      rt.dispatch({ key: 'norm2_part', code: () => ro(1, 'x') + rw(2, 'part') + mainRow(`
        let n = pu(1u); let parts = pu(0u);
        var acc = vec2<f32>(0.0, 0.0);
        var sp = 0.0;
        for (var i = row * WGR + lid; i < n; i = i + parts * WGR) {
          let v = x[i];
          if (notFinite(v)) { sp = sp + v * v; } else { acc = ddAdd(acc, twoProd(v, v)); }
        }
        acc = wgDD(lid, acc);
        sp = wgSum(lid, sp);
        if (lid == 0u) { let o = 3u * (pu(2u) + row); part[o] = acc.x; part[o + 1u] = acc.y; part[o + 2u] = sp; }`, DD + reduce) },
      [T(s), dd], [parts[k]!, sizes[k]!, base], [], parts[k]!);
      base += parts[k]!;
    });
    rt.dispatch({ key: 'norm2_final', code: () => ro(1, 'part') + rw(2, 'o') + mainRow(`
      let n = pu(1u);
      var acc = vec2<f32>(0.0, 0.0);
      var sp = 0.0;
      for (var i = lid; i < n; i = i + WGR) { acc = ddAdd(acc, vec2<f32>(part[3u * i], part[3u * i + 1u])); sp = sp + part[3u * i + 2u]; }
      acc = wgDD(lid, acc);
      sp = wgSum(lid, sp);
      if (lid == 0u) {
        if (sp != 0.0 || isNan(sp)) { o[0] = sqrt(sp); }
        else if (acc.x == 0.0) { o[0] = 0.0; }
        else {
          // s = sqrt(hi) corrected by (hi + lo − s²) / 2s, then rounded once
          let s = sqrt(acc.x);
          let sq = twoProd(s, s);
          o[0] = s + (((acc.x - sq.x) - sq.y) + acc.y) / (2.0 * s);
        }
      }`, DD + reduce) }, [dd, out], [1, total], [], 1);
    rt.release(dd);
    return out;
  };

  return {
    globalNorm(list, sizes, normType, dtype) {
      wgslType(dtype);
      const mode = normType === 2 ? 0 : normType === Infinity ? 1 : 2;
      const parts = sizes.map((n) => (n === 0 ? 0 : Math.min(MAX_PARTS, Math.ceil(n / (WG * 4)))));
      const total = parts.reduce((a, b) => a + b, 0);
      const partial = rt.alloc(Math.max(1, total));
      const out = rt.alloc(1);
      const term = /* wgsl */ `
        fn term(x: f32) -> f32 {
          let a = abs(x);
          if (pu(3u) == 0u) { return x * x; }
          if (pu(3u) == 1u) { return a; }
          if (isNan(a)) { return a; }
          if (a == 0.0) { return 0.0; }
          return pow(a, pf(0u));
        }
        fn comb(lid: u32, v: f32) -> f32 { if (pu(3u) == 1u) { return wgMax(lid, v); } return wgSum(lid, v); }
        fn add(s: f32, v: f32) -> f32 { if (pu(3u) == 1u) { return maxN(s, v); } return s + v; }`;
      if (mode === 0) return norm2(list, sizes, parts, total, partial, out);
      let base = 0;
      list.forEach((s, k) => {
        if (parts[k] === 0) return;
        // ints: 0 parts, 1 n, 2 base, 3 mode
        rt.dispatch({ key: 'norm_part', code: () => ro(1, 'x') + rw(2, 'part') + mainRow(`
          let n = pu(1u); let parts = pu(0u);
          var s = 0.0;
          for (var i = row * WGR + lid; i < n; i = i + parts * WGR) { s = add(s, term(x[i])); }
          s = comb(lid, s);
          if (lid == 0u) { part[pu(2u) + row] = s; }`, term) }, [T(s), partial], [parts[k]!, sizes[k]!, base, mode], [normType], parts[k]!);
        base += parts[k]!;
      });
      // ints: 0 (1 row), 1 total parts, 2 unused, 3 mode; floats: 0 p, 1 1/p
      rt.dispatch({ key: 'norm_final', code: () => ro(1, 'part') + rw(2, 'o') + mainRow(`
        let n = pu(1u);
        var s = 0.0;
        for (var i = lid; i < n; i = i + WGR) { s = add(s, part[i]); }
        s = comb(lid, s);
        if (lid == 0u) {
          if (pu(3u) == 0u) { o[0] = sqrt(s); }
          else if (pu(3u) == 1u) { o[0] = s; }
          else if (isNan(s) || s == 0.0) { o[0] = s; }
          else { o[0] = pow(s, pf(1u)); }
        }`, term) }, [partial, out], [1, total, 0, mode], [normType, 1 / normType], 1);
      rt.release(partial);
      return out;
    },

    clipByNorm(list, sizes, norm, maxNorm, dtype) {
      wgslType(dtype);
      const nrm = T(norm);
      // coef = min(1, maxNorm / (norm + 1e-6)) as a double-float, and x·coef rounded once (as float64 math would)
      list.forEach((s, k) => run1d(rt, { key: 'clipByNorm', code: () => ro(1, 'nrm') + rw(2, 'x') + DD + main1d(`
        let nv = nrm[0];
        if (notFinite(nv)) { return; }
        let s0 = twoSum(nv, pf(2u));
        let d = fastTwoSum(s0.x, s0.y + pf(3u));
        let q1 = pf(0u) / d.x;
        let p = twoProd(q1, d.x);
        let q = fastTwoSum(q1, ((((pf(0u) - p.x) - p.y) + pf(1u)) - q1 * d.y) / d.x);
        if (q.x > 1.0 || (q.x == 1.0 && q.y >= 0.0)) { return; }
        let xv = x[i];
        let t = twoProd(xv, q.x);
        x[i] = t.x + (t.y + xv * q.y);`) }, [nrm, T(s)], sizes[k]!, [], [...split64(maxNorm), ...split64(1e-6)]));
    },

    adamStep(group, args, gate, dtype) {
      wgslType(dtype);
      const { lr, beta1, beta2, eps, weightDecay: wd, decoupled, amsgrad } = args;
      const gt = gate ? T(gate) : rt.dummy2;
      group.params.forEach((p, k) => {
        const step = group.steps[k]!;
        const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
        const stepSize = lr / (1 - beta1 ** step);
        run1d(rt, { key: 'adam', code: () => rw(1, 'p') + ro(2, 'g') + rw(3, 'm') + rw(4, 'v') + rw(5, 'vm') + ro(6, 'gate') + main1d(`
          if (pu(3u) != 0u && notFinite(gate[0])) { return; }
          var grad = g[i];
          var pv = p[i];
          let wd = pf(4u);
          if (wd != 0.0) {
            if (pu(1u) != 0u) { pv = pv * pf(7u); } else { grad = grad + wd * pv; }
          }
          let mv = pf(0u) * m[i] + pf(1u) * grad;
          let vv = pf(2u) * v[i] + pf(3u) * grad * grad;
          m[i] = mv;
          v[i] = vv;
          var second = vv;
          if (pu(2u) != 0u) { second = max(vm[i], vv); vm[i] = second; }
          p[i] = pv - (pf(5u) * mv) / (sqrt(second) / pf(6u) + pf(8u));`) },
        [T(p), T(group.grads[k]!), T(group.m[k]!), T(group.v[k]!), group.vMax ? T(group.vMax[k]!) : rt.dummy, gt], group.sizes[k]!,
        [decoupled ? 1 : 0, amsgrad ? 1 : 0, gate ? 1 : 0],
        [beta1, 1 - beta1, beta2, 1 - beta2, wd, stepSize, bc2Sqrt, 1 - lr * wd, eps]);
      });
    },

    sgdStep(group, args, gate, dtype) {
      wgslType(dtype);
      const { lr, momentum, dampening, nesterov, weightDecay: wd } = args;
      const gt = gate ? T(gate) : rt.dummy2;
      group.params.forEach((p, k) => {
        run1d(rt, { key: 'sgd', code: () => rw(1, 'p') + ro(2, 'g') + rw(3, 'buf') + ro(4, 'gate') + main1d(`
          if (pu(4u) != 0u && notFinite(gate[0])) { return; }
          var d = g[i];
          let pv = p[i];
          if (pf(3u) != 0.0) { d = d + pf(3u) * pv; }
          if (pu(1u) != 0u) {
            var bv = d;
            if (pu(2u) == 0u) { bv = pf(1u) * buf[i] + pf(2u) * d; }
            buf[i] = bv;
            if (pu(3u) != 0u) { d = d + pf(1u) * bv; } else { d = bv; }
          }
          p[i] = pv - pf(0u) * d;`) },
        [T(p), T(group.grads[k]!), group.bufs ? T(group.bufs[k]!) : rt.dummy, gt], group.sizes[k]!,
        [group.bufs ? 1 : 0, group.firstStep[k] ? 1 : 0, nesterov ? 1 : 0, gate ? 1 : 0],
        [lr, momentum, 1 - dampening, wd]);
      });
    },
    // Muon (see the Backend interface): the momentum directions of a group of one shape laid out as one stack, and the
    // gated in-place step from the orthogonalised stack. Newton–Schulz between them is composed from batched matmuls.
    muonMomentum(group, args, dtype) {
      wgslType(dtype);
      const total = group.sizes.reduce((a, n) => a + n, 0);
      const out = rt.alloc(Math.max(1, total)); // [Σ sizes]: the directions, in list order
      let off = 0;
      group.grads.forEach((g, k) => {
        run1d(rt, { key: 'muonMomentum', code: () => rw(1, 'u') + ro(2, 'g') + ro(3, 'buf') + main1d(`
          let nb = buf[i] + pf(0u) * (g[i] - buf[i]);
          var v = nb;
          if (pu(2u) != 0u) { v = g[i] + pf(1u) * (nb - g[i]); }
          u[pu(1u) + i] = v;`) },
        [out, T(g), T(group.bufs[k]!)], group.sizes[k]!, [off, args.nesterov ? 1 : 0], [1 - args.momentum, args.momentum]);
        off += group.sizes[k]!;
      });
      return out;
    },

    muonStep(group, update, args, gate, dtype) {
      wgslType(dtype);
      const { lr, momentum: beta, weightDecay: wd, scale } = args;
      const gt = gate ? T(gate) : rt.dummy2;
      let off = 0;
      group.params.forEach((p, k) => {
        run1d(rt, { key: 'muonStep', code: () => rw(1, 'p') + ro(2, 'g') + rw(3, 'buf') + ro(4, 'u') + ro(5, 'gate') + main1d(`
          if (pu(2u) != 0u && notFinite(gate[0])) { return; }
          buf[i] = buf[i] + pf(0u) * (g[i] - buf[i]);
          var pv = p[i];
          if (pu(3u) != 0u) { pv = pv * pf(1u); }
          p[i] = pv - pf(2u) * u[pu(1u) + i];`) },
        [T(p), T(group.grads[k]!), T(group.bufs[k]!), T(update), gt], group.sizes[k]!,
        [off, gate ? 1 : 0, wd !== 0 ? 1 : 0], [1 - beta, 1 - lr * wd, lr * scale]);
        off += group.sizes[k]!;
      });
    },
  };
}
