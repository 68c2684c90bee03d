// Row-wise kernels: cross-entropy (forward with lse, backward), RMSNorm (forward with rstd, backward), embedding
// rows (gather, scatter-add), and elementwise ops. Rows (or element ranges) are split evenly over the threads.
// Token ids and targets are never trusted: one outside [0, V) gives a NaN row or loss, never an out-of-bounds access.

import { exp1, exp4, hmax, hsum } from './math';
import { arriveLast, share } from './split';

const NEG_INF: f32 = -Infinity;

/** Whether id is a row of a [V, …] table: 0 ≤ id < V (one unsigned compare). */
// @ts-ignore: decorator
@inline
function inRange(id: i32, V: i32): bool {
  return <u32>id < <u32>V;
}

/** n floats at p set to NaN. */
function fillNaN(p: usize, n: i32): void {
  const v = f32x4.splat(NaN);
  let j = 0;
  for (; j + 4 <= n; j += 4) v128.store(p + <usize>j * 4, v);
  for (; j < n; j++) store<f32>(p + <usize>j * 4, NaN);
}

/**
 * log Σ exp over n floats at z (max-subtracted); −∞ for an all −∞ row (left as is). keepExp: the row is left holding
 * e_j = exp(z_j − max), and the max is kept in expShift (for gradRowFromExp).
 */
// @ts-ignore: decorator
@inline
function rowLse(z: usize, n: i32, keepExp: bool): f32 {
  let vm = f32x4.splat(NEG_INF);
  let j = 0;
  for (; j + 4 <= n; j += 4) vm = f32x4.pmax(vm, v128.load(z + <usize>j * 4));
  let m = hmax(vm);
  for (; j < n; j++) m = max(m, load<f32>(z + <usize>j * 4));
  if (m == NEG_INF) return NEG_INF;
  const vs = f32x4.splat(m);
  let acc = f32x4.splat(0);
  j = 0;
  for (; j + 4 <= n; j += 4) {
    const e = exp4(f32x4.sub(v128.load(z + <usize>j * 4), vs));
    if (keepExp) v128.store(z + <usize>j * 4, e);
    acc = f32x4.add(acc, e);
  }
  let s = hsum(acc);
  for (; j < n; j++) {
    const e = exp1(load<f32>(z + <usize>j * 4) - m);
    if (keepExp) store<f32>(z + <usize>j * 4, e);
    s += e;
  }
  if (keepExp) expShift = m;
  return m + Mathf.log(s);
}

function rowSum(z: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) acc = f32x4.add(acc, v128.load(z + <usize>j * 4));
  let s = hsum(acc);
  for (; j < n; j++) s += load<f32>(z + <usize>j * 4);
  return s;
}

/** loss[n] = (1−ε)(lse − z_t) + ε(lse − mean z) + zLoss·lse², 0 where target = ignoreIndex, NaN where the target is
 *  outside [0, V); lse[n] always. */
export function crossEntropy(tid: i32, nth: i32, z: usize, targets: usize, loss: usize, lse: usize, N: i32, V: i32,
                             ignoreIndex: i32, eps: f32, zLoss: f32): void {
  const r = share(N, tid, nth);
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const row = z + <usize>n * <usize>V * 4;
    const l = rowLse(row, V, false);
    store<f32>(lse + <usize>n * 4, l);
    const y = load<i32>(targets + <usize>n * 4);
    if (y == ignoreIndex) { store<f32>(loss + <usize>n * 4, 0); continue; }
    if (!inRange(y, V)) { store<f32>(loss + <usize>n * 4, NaN); continue; }
    let v = (<f32>1 - eps) * (l - load<f32>(row + <usize>y * 4));
    if (eps != 0) v += eps * (l - rowSum(row, V) / <f32>V);
    if (zLoss != 0) v += zLoss * l * l;
    store<f32>(loss + <usize>n * 4, v);
  }
}

/** dz[n, :] = g[n]·((1 + 2·zLoss·lse)·softmax − (1−ε)·onehot − ε/V), 0 on ignored rows, NaN where the target is
 *  outside [0, V). */
export function crossEntropyBackward(tid: i32, nth: i32, z: usize, lse: usize, targets: usize, g: usize, dz: usize,
                                     N: i32, V: i32, ignoreIndex: i32, eps: f32, zLoss: f32): void {
  const r = share(N, tid, nth);
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const row = z + <usize>n * <usize>V * 4, drow = dz + <usize>n * <usize>V * 4;
    const y = load<i32>(targets + <usize>n * 4);
    if (y == ignoreIndex) { memory.fill(drow, 0, <usize>V * 4); continue; }
    if (!inRange(y, V)) { fillNaN(drow, V); continue; }
    gradRow(row, drow, y, load<f32>(lse + <usize>n * 4), load<f32>(g + <usize>n * 4), V, eps, zLoss);
  }
}

/** out[:] = gn·((1 + 2·zLoss·l)·exp(z − l) − ε/V) − gn·(1−ε)·onehot(y): one row of the cross-entropy gradient
 *  (out may be z itself). */
@inline function gradRow(z: usize, out: usize, y: i32, l: f32, gn: f32, V: i32, eps: f32, zLoss: f32): void {
  const a = gn * (<f32>1 + 2 * zLoss * l), c = gn * eps / <f32>V;
  const va = f32x4.splat(a), vc = f32x4.splat(c), vl = f32x4.splat(l);
  let j = 0;
  for (; j + 4 <= V; j += 4) {
    const o = <usize>j * 4;
    v128.store(out + o, f32x4.sub(f32x4.mul(va, exp4(f32x4.sub(v128.load(z + o), vl))), vc));
  }
  for (; j < V; j++) store<f32>(out + <usize>j * 4, a * exp1(load<f32>(z + <usize>j * 4) - l) - c);
  const yo = out + <usize>y * 4;
  store<f32>(yo, load<f32>(yo) - gn * (<f32>1 - eps));
}

/**
 * The fused LM-head loss's middle step on one chunk of logits z [rows, V] (rows n0 .. n0+rows of the batch):
 * loss[n] as crossEntropy and, when wantGrad, z turned in place into d(g_n·loss_n)/dz = g_n·((1 + 2·zLoss·lse)·p
 * − ε/V − (1−ε)·onehot) with g_n = rowScale[n] (rowScale ≠ 0) or scale; ignored rows get loss 0 and dz 0, rows
 * whose target is outside [0, V) loss NaN and dz NaN (so dHidden and dWeight are NaN too, as ref's).
 */
export function crossEntropyChunk(tid: i32, nth: i32, z: usize, targets: usize, loss: usize, rowScale: usize, scale: f32,
                                  n0: i32, rows: i32, V: i32, ignoreIndex: i32, eps: f32, zLoss: f32, wantGrad: i32): void {
  const r = share(rows, tid, nth);
  for (let i = <i32>(r >> 32); i < <i32>r; i++) {
    const n = n0 + i;
    const row = z + <usize>i * <usize>V * 4;
    const y = load<i32>(targets + <usize>n * 4);
    if (y == ignoreIndex) {
      store<f32>(loss + <usize>n * 4, 0);
      if (wantGrad) memory.fill(row, 0, <usize>V * 4);
      continue;
    }
    if (!inRange(y, V)) {
      store<f32>(loss + <usize>n * 4, NaN);
      if (wantGrad) fillNaN(row, V);
      continue;
    }
    const zy = load<f32>(row + <usize>y * 4);
    const mean = eps != 0 ? rowSum(row, V) / <f32>V : 0;
    // with a gradient wanted, the row keeps exp(z − max) so the gradient pass multiplies instead of exponentiating again
    const l = rowLse(row, V, wantGrad != 0);
    let v = (<f32>1 - eps) * (l - zy);
    if (eps != 0) v += eps * (l - mean);
    if (zLoss != 0) v += zLoss * l * l;
    store<f32>(loss + <usize>n * 4, v);
    if (!wantGrad) continue;
    const gn = rowScale != 0 ? load<f32>(rowScale + <usize>n * 4) : scale;
    gradRowFromExp(row, y, l, gn, V, eps, zLoss);
  }
}

/** The row max rowLse(…, keepExp) used (a wasm global belongs to one instance, i.e. to one thread: no race). */
let expShift: f32 = 0;

/** gradRow on a row that holds e_j = exp(z_j − m) (rowLse(…, true) just ran on it): p_j = e_j · exp(m − lse). */
function gradRowFromExp(row: usize, y: i32, l: f32, gn: f32, V: i32, eps: f32, zLoss: f32): void {
  const a = gn * (<f32>1 + 2 * zLoss * l) * Mathf.exp(expShift - l), c = gn * eps / <f32>V;
  const va = f32x4.splat(a), vc = f32x4.splat(c);
  let j = 0;
  for (; j + 4 <= V; j += 4) {
    const o = <usize>j * 4;
    v128.store(row + o, f32x4.sub(f32x4.mul(va, v128.load(row + o)), vc));
  }
  for (; j < V; j++) store<f32>(row + <usize>j * 4, a * load<f32>(row + <usize>j * 4) - c);
  const yo = row + <usize>y * 4;
  store<f32>(yo, load<f32>(yo) - gn * (<f32>1 - eps));
}

/** y = x · rsqrt(mean(x²) + eps) · w per row of C; rstd [rows]. */
export function rmsNorm(tid: i32, nth: i32, x: usize, w: usize, y: usize, rstd: usize, rows: i32, C: i32, eps: f32): void {
  const r = share(rows, tid, nth);
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const xo = x + <usize>(n * C) * 4, yo = y + <usize>(n * C) * 4;
    let acc = f32x4.splat(0);
    let c = 0;
    for (; c + 4 <= C; c += 4) { const v = v128.load(xo + <usize>c * 4); acc = f32x4.add(acc, f32x4.mul(v, v)); }
    let ss = hsum(acc);
    for (; c < C; c++) { const v = load<f32>(xo + <usize>c * 4); ss += v * v; }
    const rs: f32 = <f32>1 / Mathf.sqrt(ss / <f32>C + eps);
    store<f32>(rstd + <usize>n * 4, rs);
    const vr = f32x4.splat(rs);
    c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c * 4;
      v128.store(yo + o, f32x4.mul(v128.load(w + o), f32x4.mul(v128.load(xo + o), vr)));
    }
    for (; c < C; c++) { const o = <usize>c * 4; store<f32>(yo + o, load<f32>(w + o) * (load<f32>(xo + o) * rs)); }
  }
}

/**
 * dx = s·(g·w − x·s·mean(g·w·x·s)) per row; dw = Σ over rows of g·x·s: each thread sums its rows into
 * dwPart[tid][C], and the last thread to finish adds the nth partial rows up into dw (in thread order, in f64).
 * counter: an i32 the caller zeroed.
 */
export function rmsNormBackward(tid: i32, nth: i32, x: usize, w: usize, rstd: usize, g: usize, dx: usize, dwPart: usize,
                                dwOut: usize, counter: usize, rows: i32, C: i32): void {
  const dw = dwPart + <usize>(tid * C) * 4;
  memory.fill(dw, 0, <usize>C * 4);
  const r = share(rows, tid, nth);
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const off = <usize>(n * C) * 4;
    const xo = x + off, go = g + off, dxo = dx + off;
    const s = load<f32>(rstd + <usize>n * 4), vs = f32x4.splat(s);
    let acc = f32x4.splat(0);
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c * 4;
      const xh = f32x4.mul(v128.load(xo + o), vs), gv = v128.load(go + o);
      v128.store(dw + o, f32x4.add(v128.load(dw + o), f32x4.mul(gv, xh)));
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(gv, v128.load(w + o)), xh));
    }
    let d = hsum(acc);
    for (; c < C; c++) {
      const o = <usize>c * 4;
      const xh = load<f32>(xo + o) * s, gv = load<f32>(go + o);
      store<f32>(dw + o, load<f32>(dw + o) + gv * xh);
      d += gv * load<f32>(w + o) * xh;
    }
    d /= <f32>C;
    const k = f32x4.splat(s * d);
    c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c * 4;
      v128.store(dxo + o, f32x4.mul(vs, f32x4.sub(f32x4.mul(v128.load(go + o), v128.load(w + o)), f32x4.mul(v128.load(xo + o), k))));
    }
    for (; c < C; c++) {
      const o = <usize>c * 4;
      store<f32>(dxo + o, s * (load<f32>(go + o) * load<f32>(w + o) - load<f32>(xo + o) * s * d));
    }
  }
  if (!arriveLast(counter, nth)) return;
  for (let c = 0; c < C; c++) {
    let t: f64 = 0;
    for (let k = 0; k < nth; k++) t += <f64>load<f32>(dwPart + <usize>(k * C + c) * 4);
    store<f32>(dwOut + <usize>c * 4, <f32>t);
  }
}

// ---- elementwise -------------------------------------------------------------------------------------------

/** out = a op b elementwise (op: 0 add, 1 sub, 2 mul, 3 div); bScalar: b is one value broadcast. */
export function binary(tid: i32, nth: i32, op: i32, a: usize, b: usize, out: usize, n: i32, bScalar: i32): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const n4 = i0 + (((i1 - i0) >> 2) << 2);
  const bs = bScalar != 0 ? v128.load32_splat(b) : f32x4.splat(0);
  for (let i = i0; i < n4; i += 4) {
    const o = <usize>i * 4;
    const x = v128.load(a + o), y = bScalar != 0 ? bs : v128.load(b + o);
    let z: v128;
    if (op == 0) z = f32x4.add(x, y);
    else if (op == 1) z = f32x4.sub(x, y);
    else if (op == 2) z = f32x4.mul(x, y);
    else z = f32x4.div(x, y);
    v128.store(out + o, z);
  }
  for (let i = n4; i < i1; i++) {
    const o = <usize>i * 4;
    const x = load<f32>(a + o), y = bScalar != 0 ? load<f32>(b) : load<f32>(b + o);
    store<f32>(out + o, op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y);
  }
}

/** out = x·σ(x) */
export function silu(tid: i32, nth: i32, x: usize, out: usize, n: i32): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const n4 = i0 + (((i1 - i0) >> 2) << 2);
  const one = f32x4.splat(1);
  for (let i = i0; i < n4; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(x + o);
    v128.store(out + o, f32x4.div(v, f32x4.add(one, exp4(f32x4.neg(v)))));
  }
  for (let i = n4; i < i1; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(x + o);
    store<f32>(out + o, v / (<f32>1 + exp1(-v)));
  }
}

/** out = g·σ(x)·(1 + x·(1 − σ(x))) */
export function siluBackward(tid: i32, nth: i32, x: usize, g: usize, out: usize, n: i32): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const n4 = i0 + (((i1 - i0) >> 2) << 2);
  const one = f32x4.splat(1);
  for (let i = i0; i < n4; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(x + o);
    const s = f32x4.div(one, f32x4.add(one, exp4(f32x4.neg(v))));
    v128.store(out + o, f32x4.mul(f32x4.mul(v128.load(g + o), s), f32x4.add(one, f32x4.mul(v, f32x4.sub(one, s)))));
  }
  for (let i = n4; i < i1; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(x + o);
    const s: f32 = <f32>1 / (<f32>1 + exp1(-v));
    store<f32>(out + o, load<f32>(g + o) * s * (<f32>1 + v * (<f32>1 - s)));
  }
}

/** out = silu(a)·b = a·σ(a)·b (SwiGLU's gated product) */
export function swiglu(tid: i32, nth: i32, a: usize, b: usize, out: usize, n: i32): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const n4 = i0 + (((i1 - i0) >> 2) << 2);
  const one = f32x4.splat(1);
  for (let i = i0; i < n4; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(a + o);
    v128.store(out + o, f32x4.mul(f32x4.div(v, f32x4.add(one, exp4(f32x4.neg(v)))), v128.load(b + o)));
  }
  for (let i = n4; i < i1; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(a + o);
    store<f32>(out + o, v / (<f32>1 + exp1(-v)) * load<f32>(b + o));
  }
}

/** da = g·b·σ(a)·(1 + a·(1 − σ(a))), db = g·a·σ(a) */
export function swigluBackward(tid: i32, nth: i32, a: usize, b: usize, g: usize, da: usize, db: usize, n: i32): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const n4 = i0 + (((i1 - i0) >> 2) << 2);
  const one = f32x4.splat(1);
  for (let i = i0; i < n4; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(a + o), gv = v128.load(g + o);
    const s = f32x4.div(one, f32x4.add(one, exp4(f32x4.neg(v))));
    v128.store(db + o, f32x4.mul(gv, f32x4.mul(v, s)));
    v128.store(da + o, f32x4.mul(f32x4.mul(f32x4.mul(gv, v128.load(b + o)), s), f32x4.add(one, f32x4.mul(v, f32x4.sub(one, s)))));
  }
  for (let i = n4; i < i1; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(a + o), gv = load<f32>(g + o);
    const s: f32 = <f32>1 / (<f32>1 + exp1(-v));
    store<f32>(db + o, gv * v * s);
    store<f32>(da + o, gv * load<f32>(b + o) * s * (<f32>1 + v * (<f32>1 - s)));
  }
}

/**
 * RoPE (HF rotate_half) on x [B·T, H, HD] → out: rows use the cos/sin table row of their position
 * (cosT, sinT [P, HD/2], already scaled; sin negated by the caller for the inverse).
 */
export function rope(tid: i32, nth: i32, x: usize, out: usize, positions: usize, cosT: usize, sinT: usize, BT: i32, H: i32, HD: i32): void {
  const half = HD >> 1;
  const r = share(BT, tid, nth);
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const p = load<i32>(positions + <usize>n * 4);
    const co = cosT + <usize>(p * half) * 4, so = sinT + <usize>(p * half) * 4;
    for (let h = 0; h < H; h++) {
      const o = <usize>((n * H + h) * HD) * 4;
      const x1 = x + o, x2 = x1 + <usize>half * 4, o1 = out + o, o2 = o1 + <usize>half * 4;
      let j = 0;
      for (; j + 4 <= half; j += 4) {
        const jo = <usize>j * 4;
        const a = v128.load(x1 + jo), b = v128.load(x2 + jo), c = v128.load(co + jo), s = v128.load(so + jo);
        v128.store(o1 + jo, f32x4.sub(f32x4.mul(a, c), f32x4.mul(b, s)));
        v128.store(o2 + jo, f32x4.add(f32x4.mul(b, c), f32x4.mul(a, s)));
      }
      for (; j < half; j++) {
        const jo = <usize>j * 4;
        const a = load<f32>(x1 + jo), b = load<f32>(x2 + jo), c = load<f32>(co + jo), s = load<f32>(so + jo);
        store<f32>(o1 + jo, a * c - b * s);
        store<f32>(o2 + jo, b * c + a * s);
      }
    }
  }
}

/**
 * out[0] = Σ x[i] over n floats, accumulated in f64 (as the ref kernel): each thread sums its share into
 * partial[tid] (f64), the last to finish adds the nth partials in thread order. counter: an i32 the caller zeroed.
 */
export function sumAll(tid: i32, nth: i32, x: usize, n: i32, partial: usize, counter: usize, out: usize): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  let lo = f64x2.splat(0), hi = f64x2.splat(0);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v = v128.load(x + <usize>i * 4);
    lo = f64x2.add(lo, f64x2.promote_low_f32x4(v));
    hi = f64x2.add(hi, f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1)));
  }
  const s = f64x2.add(lo, hi);
  let acc = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; i < i1; i++) acc += <f64>load<f32>(x + <usize>i * 4);
  store<f64>(partial + <usize>tid * 8, acc);
  if (!arriveLast(counter, nth)) return;
  let t: f64 = 0;
  for (let k = 0; k < nth; k++) t += load<f64>(partial + <usize>k * 8);
  store<f32>(out, <f32>t);
}

/** out = x² elementwise. */
export function square(tid: i32, nth: i32, x: usize, out: usize, n: i32): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v = v128.load(x + <usize>i * 4);
    v128.store(out + <usize>i * 4, f32x4.mul(v, v));
  }
  for (; i < i1; i++) { const v = load<f32>(x + <usize>i * 4); store<f32>(out + <usize>i * 4, v * v); }
}

/** out[n, :] = w[ids[n], :] for rows n of [N, C]; w is [V, C]; a NaN row for an id outside [0, V). */
export function gatherRows(tid: i32, nth: i32, w: usize, ids: usize, out: usize, N: i32, V: i32, C: i32): void {
  const r = share(N, tid, nth);
  const rowBytes = <usize>C * 4;
  for (let n = <i32>(r >> 32); n < <i32>r; n++) {
    const id = load<i32>(ids + <usize>n * 4);
    if (inRange(id, V)) memory.copy(out + <usize>n * rowBytes, w + <usize>id * rowBytes, rowBytes);
    else fillNaN(out + <usize>n * rowBytes, C);
  }
}

/**
 * Embedding backward: dw[ids[n], :] += g[n, :] for n = 0 … N−1, in that order (ref's sums, bit for bit); dw is
 * [V, C], zeroed first when zero ≠ 0. An id outside [0, V) is skipped (as ref, whose writes there go nowhere; the
 * forward already gave that row NaN). Thread tid owns the rows [v0, v1) of dw: it zeroes them and adds the g rows
 * whose id falls in them, so no two threads write the same row.
 */
export function scatterAddRows(tid: i32, nth: i32, g: usize, ids: usize, dw: usize, N: i32, V: i32, C: i32, zero: i32): void {
  const r = share(V, tid, nth);
  const v0 = <i32>(r >> 32), v1 = <i32>r;
  if (v1 <= v0) return;
  const rowBytes = <usize>C * 4;
  if (zero != 0) memory.fill(dw + <usize>v0 * rowBytes, 0, <usize>(v1 - v0) * rowBytes);
  for (let n = 0; n < N; n++) {
    const id = load<i32>(ids + <usize>n * 4);
    if (id < v0 || id >= v1) continue;
    const src = g + <usize>n * rowBytes, dst = dw + <usize>id * rowBytes;
    let c = 0;
    for (; c + 4 <= C; c += 4) {
      const o = <usize>c * 4;
      v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
    }
    for (; c < C; c++) { const o = <usize>c * 4; store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o)); }
  }
}

// ---- clamp -------------------------------------------------------------------------------------------------
// The bounds are f64 (JS numbers) while x is f32. ref compares in f64: x < lo ⟺ x < (lo rounded up to an f32),
// x > hi ⟺ x > (hi rounded down), and it stores f32(lo) / f32(hi). With those four f32 constants the kernels
// agree with ref bit for bit, at the boundaries too.

/** The smallest f32 ≥ v (v not NaN). */
function f32AtLeast(v: f64): f32 {
  const f = <f32>v;
  if (<f64>f >= v) return f;
  if (f == 0) return reinterpret<f32>(<i32>1); // v in (0, smallest denormal): the smallest positive denormal
  const bits = reinterpret<i32>(f);
  return reinterpret<f32>(f > 0 ? bits + 1 : bits - 1);
}

/** The largest f32 ≤ v (v not NaN). */
function f32AtMost(v: f64): f32 {
  return -f32AtLeast(-v);
}

/** out = min(max(x, lo), hi) as ref: x < lo → f32(lo), x > hi → f32(hi), else x (NaN stays NaN). */
export function clamp(tid: i32, nth: i32, x: usize, out: usize, n: i32, lo: f64, hi: f64): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const loC = f32AtLeast(lo), hiC = f32AtMost(hi), loV = <f32>lo, hiV = <f32>hi;
  const vloC = f32x4.splat(loC), vhiC = f32x4.splat(hiC), vloV = f32x4.splat(loV), vhiV = f32x4.splat(hiV);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(x + o);
    const y = v128.bitselect(vloV, v, f32x4.lt(v, vloC));
    v128.store(out + o, v128.bitselect(vhiV, y, f32x4.gt(v, vhiC)));
  }
  for (; i < i1; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(x + o);
    store<f32>(out + o, v < loC ? loV : v > hiC ? hiV : v);
  }
}

/** out = g where lo ≤ x ≤ hi (compared as ref, in f64), else 0 (NaN x: 0). */
export function clampBackward(tid: i32, nth: i32, x: usize, g: usize, out: usize, n: i32, lo: f64, hi: f64): void {
  const r = share((n + 3) >> 2, tid, nth);
  const i0 = <i32>(r >> 32) << 2, i1 = min(n, <i32>r << 2);
  const loC = f32AtLeast(lo), hiC = f32AtMost(hi);
  const vloC = f32x4.splat(loC), vhiC = f32x4.splat(hiC);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(x + o);
    v128.store(out + o, v128.and(v128.load(g + o), v128.and(f32x4.ge(v, vloC), f32x4.le(v, vhiC))));
  }
  for (; i < i1; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(x + o);
    store<f32>(out + o, v >= loC && v <= hiC ? load<f32>(g + o) : 0);
  }
}
