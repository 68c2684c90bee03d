// Multi-tensor kernels: one call covers a whole list of tensors (all gradients of a step, an optimizer group).
// The list is a table in wasm memory, one row of i32 fields per tensor (the `row` of each kernel's entry in
// src/backends/wasm/exports.ts, in that order); the threads split the concatenated elements evenly (in quads), so
// a list of many small tensors and one of a few large ones both take one dispatch.
//
//   globalNorm, clipByNorm rows:  [x, n]
//   adamStep rows:                [p, g, m, v, n, step]
//   sgdStep rows:                 [p, g, buf (0: no momentum), n, firstStep]
//
// A gate (adamStep, sgdStep) is the address of one f32, or 0: when its value is NaN or ±Infinity the kernel
// changes nothing (a step whose loss or gradient norm is not finite is skipped without a read on the host).

import { arriveLast, share } from './split';

const LIST_ROW: usize = 2 * 4;
const ADAM_ROW: usize = 6 * 4;
const SGD_ROW: usize = 5 * 4;

/** Σ x² over n floats at x, in f64 (each square exact, as ref's). */
function sumSquares(x: usize, n: i32): f64 {
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(x + <usize>i * 4);
    const lo = f64x2.promote_low_f32x4(v), hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
    a0 = f64x2.add(a0, f64x2.mul(lo, lo));
    a1 = f64x2.add(a1, f64x2.mul(hi, hi));
  }
  const s = f64x2.add(a0, a1);
  let acc = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < n; i++) { const v = <f64>load<f32>(x + <usize>i * 4); acc += v * v; }
  return acc;
}

/** max |x| over n floats at x (NaN anywhere gives NaN: wasm's max propagates it). */
function maxAbs(x: usize, n: i32): f32 {
  let m = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) m = f32x4.max(m, f32x4.abs(v128.load(x + <usize>i * 4)));
  const s = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  let r = max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
  for (; i < n; i++) r = max(r, abs(load<f32>(x + <usize>i * 4)));
  return r;
}

/**
 * out[0] = the global norm of the count tensors in the table (total elements in all): sqrt(Σ x²) (inf = 0) or
 * max |x| (inf ≠ 0), accumulated in f64. Each thread reduces its share into partial[tid] (f64); the last to finish
 * combines them in thread order. counter: an i32 the caller zeroed.
 */
export function globalNorm(tid: i32, nth: i32, table: usize, count: i32, total: i32, inf: i32, partial: usize,
                           counter: usize, out: usize): void {
  const r = share((total + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(total, <i32>r << 2);
  let acc: f64 = 0;
  let off = 0;
  for (let k = 0; k < count && off < i1; k++) {
    const row = table + <usize>k * LIST_ROW;
    const n = load<i32>(row, 4);
    const a = max(i0, off), b = min(i1, off + n);
    if (a < b) {
      const x = <usize>load<u32>(row) + <usize>(a - off) * 4;
      acc = inf != 0 ? max(acc, <f64>maxAbs(x, b - a)) : acc + sumSquares(x, b - a);
    }
    off += n;
  }
  store<f64>(partial + <usize>tid * 8, acc);
  if (!arriveLast(counter, nth)) return;
  let t: f64 = 0;
  for (let k = 0; k < nth; k++) {
    const v = load<f64>(partial + <usize>k * 8);
    t = inf != 0 ? max(t, v) : t + v;
  }
  store<f32>(out, <f32>(inf != 0 ? t : Math.sqrt(t)));
}

/**
 * Every tensor of the table times min(1, maxNorm / (norm + 1e-6)), in place, norm being the f32 at `norm`; a
 * non-finite norm (or a coefficient of 1) changes nothing. The coefficient and the products are f64, rounded to
 * f32 once, as ref's.
 */
export function clipByNorm(tid: i32, nth: i32, table: usize, count: i32, total: i32, norm: usize, maxNorm: f64): void {
  const t = <f64>load<f32>(norm);
  if (!isFinite(t)) return;
  const coef = min(<f64>1, maxNorm / (t + 1e-6));
  if (coef == 1) return;
  const r = share((total + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(total, <i32>r << 2);
  const vc = f64x2.splat(coef);
  let off = 0;
  for (let k = 0; k < count && off < i1; k++) {
    const row = table + <usize>k * LIST_ROW;
    const n = load<i32>(row, 4);
    const a = max(i0, off), b = min(i1, off + n);
    if (a < b) {
      const x = <usize>load<u32>(row) + <usize>(a - off) * 4, len = b - a;
      let i = 0;
      for (; i + 4 <= len; i += 4) {
        const o = <usize>i * 4;
        const v = v128.load(x + o);
        const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v), vc));
        const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)), vc));
        v128.store(x + o, v128.shuffle<f32>(lo, hi, 0, 1, 4, 5));
      }
      for (; i < len; i++) { const o = <usize>i * 4; store<f32>(x + o, <f32>(<f64>load<f32>(x + o) * coef)); }
    }
    off += n;
  }
}

// @ts-ignore: decorator
@inline
function gateClosed(gate: usize): bool {
  return gate != 0 && !isFinite(load<f32>(gate));
}

/** Adam/AdamW on n elements of one parameter (see adamStep). */
// @ts-ignore: decorator
@inline
function adamSpan(p: usize, g: usize, m: usize, v: usize, n: i32, lr: f32, beta1: f32, beta2: f32, oneMinusBeta1: f32,
                  oneMinusBeta2: f32, eps: f32, wd: f32, decoupled: bool, stepSize: f32, bc2Sqrt: f32): void {
  const decay = f32x4.splat(<f32>1 - lr * wd), vwd = f32x4.splat(wd);
  const b1 = f32x4.splat(beta1), c1 = f32x4.splat(oneMinusBeta1), b2 = f32x4.splat(beta2), c2 = f32x4.splat(oneMinusBeta2);
  const ss = f32x4.splat(stepSize), bc = f32x4.splat(<f32>1 / bc2Sqrt), ve = f32x4.splat(eps);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    let pv = v128.load(p + o), gv = v128.load(g + o);
    if (wd != 0) {
      if (decoupled) pv = f32x4.mul(pv, decay);
      else gv = f32x4.add(gv, f32x4.mul(vwd, pv));
    }
    const mv = f32x4.add(f32x4.mul(b1, v128.load(m + o)), f32x4.mul(c1, gv));
    const vv = f32x4.add(f32x4.mul(b2, v128.load(v + o)), f32x4.mul(c2, f32x4.mul(gv, gv)));
    v128.store(m + o, mv);
    v128.store(v + o, vv);
    v128.store(p + o, f32x4.sub(pv, f32x4.div(f32x4.mul(ss, mv), f32x4.add(f32x4.mul(f32x4.sqrt(vv), bc), ve))));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    let pv = load<f32>(p + o), gv = load<f32>(g + o);
    if (wd != 0) {
      if (decoupled) pv *= <f32>1 - lr * wd;
      else gv += wd * pv;
    }
    const mv = beta1 * load<f32>(m + o) + oneMinusBeta1 * gv;
    const vv = beta2 * load<f32>(v + o) + oneMinusBeta2 * gv * gv;
    store<f32>(m + o, mv);
    store<f32>(v + o, vv);
    store<f32>(p + o, pv - (stepSize * mv) / (Mathf.sqrt(vv) / bc2Sqrt + eps));
  }
}

/**
 * One Adam/AdamW update (PyTorch semantics, no amsgrad) of every parameter in the table, in place: decoupled ≠ 0
 * → p ·= 1 − lr·wd, else g += wd·p; m, v updated; p −= stepSize·m / (√v / bc2Sqrt + eps) with the bias corrections
 * of each row's own step count (computed in f64, as ref). Nothing happens when the gate is closed.
 */
export function adamStep(tid: i32, nth: i32, table: usize, count: i32, total: i32, gate: usize, lr: f64, beta1: f64,
                         beta2: f64, eps: f32, wd: f32, decoupled: i32): void {
  if (gateClosed(gate)) return;
  const r = share((total + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(total, <i32>r << 2);
  let off = 0;
  for (let k = 0; k < count && off < i1; k++) {
    const row = table + <usize>k * ADAM_ROW;
    const n = load<i32>(row, 16);
    const a = max(i0, off), b = min(i1, off + n);
    if (a < b) {
      const step = <f64>load<i32>(row, 20);
      const stepSize = <f32>(lr / (1 - Math.pow(beta1, step))), bc2Sqrt = <f32>Math.sqrt(1 - Math.pow(beta2, step));
      const o = <usize>(a - off) * 4;
      adamSpan(<usize>load<u32>(row) + o, <usize>load<u32>(row, 4) + o, <usize>load<u32>(row, 8) + o,
        <usize>load<u32>(row, 12) + o, b - a, <f32>lr, <f32>beta1, <f32>beta2,
        // 1 − β in f64, then rounded (as PyTorch's Python scalars): 1 − f32(0.999) would be off by 1.3e-5
        <f32>(1 - beta1), <f32>(1 - beta2), eps, wd, decoupled != 0, stepSize, bc2Sqrt);
    }
    off += n;
  }
}

/**
 * One SGD update (PyTorch semantics) of every parameter in the table, in place: d = g + wd·p; with a momentum
 * buffer b = d on the row's first step, else momentum·b + (1 − dampening)·d, and d = nesterov ? d + momentum·b : b;
 * p −= lr·d. Nothing happens when the gate is closed.
 */
export function sgdStep(tid: i32, nth: i32, table: usize, count: i32, total: i32, gate: usize, lr: f32, momentum: f32,
                        dampening: f32, nesterov: i32, wd: f32): void {
  if (gateClosed(gate)) return;
  const r = share((total + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(total, <i32>r << 2);
  const vwd = f32x4.splat(wd), vlr = f32x4.splat(lr), vmom = f32x4.splat(momentum), vdamp = f32x4.splat(<f32>1 - dampening);
  let off = 0;
  for (let k = 0; k < count && off < i1; k++) {
    const row = table + <usize>k * SGD_ROW;
    const n = load<i32>(row, 12);
    const a = max(i0, off), b = min(i1, off + n);
    if (a < b) {
      const o = <usize>(a - off) * 4, len = b - a;
      const p = <usize>load<u32>(row) + o, g = <usize>load<u32>(row, 4) + o;
      const buf0 = <usize>load<u32>(row, 8), first = load<i32>(row, 16) != 0;
      const buf = buf0 != 0 ? buf0 + o : 0;
      let i = 0;
      for (; i + 4 <= len; i += 4) {
        const io = <usize>i * 4;
        const pv = v128.load(p + io);
        let d = v128.load(g + io);
        if (wd != 0) d = f32x4.add(d, f32x4.mul(vwd, pv));
        if (buf != 0) {
          const bv = first ? d : f32x4.add(f32x4.mul(vmom, v128.load(buf + io)), f32x4.mul(vdamp, d));
          v128.store(buf + io, bv);
          d = nesterov != 0 ? f32x4.add(d, f32x4.mul(vmom, bv)) : bv;
        }
        v128.store(p + io, f32x4.sub(pv, f32x4.mul(vlr, d)));
      }
      for (; i < len; i++) {
        const io = <usize>i * 4;
        const pv = load<f32>(p + io);
        let d = load<f32>(g + io);
        if (wd != 0) d += wd * pv;
        if (buf != 0) {
          const bv = first ? d : momentum * load<f32>(buf + io) + (<f32>1 - dampening) * d;
          store<f32>(buf + io, bv);
          d = nesterov != 0 ? d + momentum * bv : bv;
        }
        store<f32>(p + io, pv - lr * d);
      }
    }
    off += n;
  }
}
