// Causal GQA attention, forward and backward, with the softmax statistics (lse) saved: no [T, S] matrix is kept
// between forward and backward (the backward recomputes each block of scores from q, k and lse). Blocks of query
// rows go through the GEMM micro-kernel; the forward of a few rows (decoding with a KV cache) goes row by row.
// Layouts: q, out, g, dq [B, T, NH, HD]; k, v, dk, dv [B, S, NKV, HD]; lse [B, NH, T]; keyMask, docIds [B, S] i32.
// Query head h reads KV head h / (NH / NKV) (HF repeat_kv). A query with no allowed key outputs 0 and lse −∞.

import { dot, exp1, exp4, hsum } from './math';
import { blockGemm, gemmScratchBytes, hostUnits } from './gemm';
import { shareFirst } from './split';

const NEG_INF: f32 = -Infinity;

/** The dots of row x [HD] with 4 key rows at kp, kp + kstride, … as one f32x4 (HD a multiple of 4). */
// @ts-ignore: decorator
@inline
function dot4(x: usize, kp: usize, kstride: usize, HD: i32): v128 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const k1 = kp + kstride, k2 = k1 + kstride, k3 = k2 + kstride;
  for (let d = 0; d < HD; d += 4) {
    const o = <usize>d * 4;
    const xv = v128.load(x + o);
    a0 = f32x4.add(a0, f32x4.mul(xv, v128.load(kp + o)));
    a1 = f32x4.add(a1, f32x4.mul(xv, v128.load(k1 + o)));
    a2 = f32x4.add(a2, f32x4.mul(xv, v128.load(k2 + o)));
    a3 = f32x4.add(a3, f32x4.mul(xv, v128.load(k3 + o)));
  }
  // 4×4 transpose-add: lane i of the result = Σ lanes of a_i
  const t0 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
  const t1 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
}

/** p[j] = x · row j of base (stride kstride) · scale for j < n: 4 keys at a time when HD % 4 = 0. */
function dotRows(p: usize, x: usize, base: usize, kstride: usize, n: i32, HD: i32, scale: f32): void {
  let j = 0;
  if ((HD & 3) == 0) {
    const vs = f32x4.splat(scale);
    for (; j + 4 <= n; j += 4) v128.store(p + <usize>j * 4, f32x4.mul(dot4(x, base + <usize>j * kstride, kstride, HD), vs));
  }
  for (; j < n; j++) store<f32>(p + <usize>j * 4, dot(x, base + <usize>j * kstride, HD) * scale);
}

/**
 * Scaled scores of query row qo against keys [0, jEnd) into p (−∞ where masked); returns the max (−∞ if none).
 */
function scoreRow(p: usize, qo: usize, kbase: usize, kstride: usize, jStart: i32, jEnd: i32, HD: i32, scale: f32,
                  keyMask: usize, docIds: usize, maskRow: usize, qdoc: i32): f32 {
  dotRows(p, qo, kbase, kstride, jEnd, HD, scale);
  maskKeys(p, jStart, jEnd, keyMask, docIds, maskRow, qdoc);
  return rowMax(p, jEnd);
}

/**
 * p[j] = −∞ for the keys j < jEnd the query may not see: before jStart (outside a sliding window), padding
 * (keyMask 0) or another document.
 */
function maskKeys(p: usize, jStart: i32, jEnd: i32, keyMask: usize, docIds: usize, maskRow: usize, qdoc: i32): void {
  const j0 = min(jStart, jEnd);
  for (let j = 0; j < j0; j++) store<f32>(p + <usize>j * 4, NEG_INF);
  if (keyMask == 0 && docIds == 0) return;
  for (let j = j0; j < jEnd; j++) {
    const jo = <usize>j * 4;
    if ((keyMask != 0 && load<i32>(keyMask + maskRow + jo) == 0) || (docIds != 0 && load<i32>(docIds + maskRow + jo) != qdoc)) {
      store<f32>(p + jo, NEG_INF);
    }
  }
}

/** max of p[0, n) (−∞ for n = 0); pmax is one maxps (f32x4.max's NaN/−0 handling costs ~8 instructions on x64). */
function rowMax(p: usize, n: i32): f32 {
  let vm = f32x4.splat(NEG_INF);
  let j = 0;
  for (; j + 4 <= n; j += 4) vm = f32x4.pmax(vm, v128.load(p + <usize>j * 4));
  let m = max(max(f32x4.extract_lane(vm, 0), f32x4.extract_lane(vm, 1)), max(f32x4.extract_lane(vm, 2), f32x4.extract_lane(vm, 3)));
  for (; j < n; j++) m = max(m, load<f32>(p + <usize>j * 4));
  return m;
}

/** out[0, HD) = Σ_j p[j]·row j of vbase, accumulated in registers 16 floats at a time. */
function weightedSum(out: usize, p: usize, vbase: usize, kstride: usize, n: i32, HD: i32): void {
  let d = 0;
  for (; d + 16 <= HD; d += 16) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let vp = vbase + <usize>d * 4;
    for (let j = 0; j < n; j++) {
      const w = v128.load32_splat(p + <usize>j * 4);
      a0 = f32x4.add(a0, f32x4.mul(w, v128.load(vp)));
      a1 = f32x4.add(a1, f32x4.mul(w, v128.load(vp, 16)));
      a2 = f32x4.add(a2, f32x4.mul(w, v128.load(vp, 32)));
      a3 = f32x4.add(a3, f32x4.mul(w, v128.load(vp, 48)));
      vp += kstride;
    }
    const o = out + <usize>d * 4;
    v128.store(o, a0); v128.store(o, a1, 16); v128.store(o, a2, 32); v128.store(o, a3, 48);
  }
  for (; d + 4 <= HD; d += 4) {
    let a0 = f32x4.splat(0);
    let vp = vbase + <usize>d * 4;
    for (let j = 0; j < n; j++) {
      a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(p + <usize>j * 4), v128.load(vp)));
      vp += kstride;
    }
    v128.store(out + <usize>d * 4, a0);
  }
  for (; d < HD; d++) {
    let a: f32 = 0;
    for (let j = 0; j < n; j++) a += load<f32>(p + <usize>j * 4) * load<f32>(vbase + <usize>j * kstride + <usize>d * 4);
    store<f32>(out + <usize>d * 4, a);
  }
}

/** p[j] = exp(scale·p[j] − shift) for j < n, exactly 0 where p[j] = −∞ (masked); returns Σ p. */
function expRowScaled(p: usize, n: i32, scale: f32, shift: f32): f32 {
  const vsc = f32x4.splat(scale), vs = f32x4.splat(shift), ninf = f32x4.splat(NEG_INF);
  let acc = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const x = v128.load(p + <usize>j * 4);
    const e = v128.and(exp4(f32x4.sub(f32x4.mul(x, vsc), vs)), f32x4.ne(x, ninf));
    v128.store(p + <usize>j * 4, e);
    acc = f32x4.add(acc, e);
  }
  let tail: f32 = 0;
  for (; j < n; j++) {
    const x = load<f32>(p + <usize>j * 4);
    const e: f32 = x == NEG_INF ? 0 : exp1(x * scale - shift);
    store<f32>(p + <usize>j * 4, e);
    tail += e;
  }
  return hsum(acc) + tail;
}

/** The first key a query at absolute position qpos may see: qpos − window + 1 with a sliding window (window > 0), else 0. */
function windowStart(qpos: i32, window: i32): i32 {
  return window > 0 ? max(0, qpos - window + 1) : 0;
}

/** Forward: thread tid of nth takes a share of the B·NH (batch, head) pairs. scratch: nth × S floats (64-aligned). */
function attentionRows(tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize,
                          B: i32, T: i32, S: i32, NH: i32, NKV: i32, HD: i32, scale: f32, causal: i32, qOffset: i32,
                          window: i32, keyMask: usize, docIds: usize, scratch: usize): void {
  const p = scratch + <usize>tid * ((<usize>S * 4 + 63) & ~<usize>63); // [S] scores, then weights
  const items = B * NH, rep = NH / NKV;
  const i0 = <i32>((<i64>items * tid) / nth), i1 = <i32>((<i64>items * (tid + 1)) / nth);
  const kstride = <usize>(NKV * HD) * 4;
  for (let item = i0; item < i1; item++) {
    const b = item / NH, h = item % NH, kvh = h / rep;
    const kbase = k + <usize>((b * S * NKV + kvh) * HD) * 4, vbase = v + <usize>((b * S * NKV + kvh) * HD) * 4;
    const maskRow = <usize>(b * S) * 4;
    for (let t = 0; t < T; t++) {
      const qpos = qOffset + t;
      const qo = q + <usize>(((b * T + t) * NH + h) * HD) * 4;
      const oo = out + <usize>(((b * T + t) * NH + h) * HD) * 4;
      const jEnd = causal ? min(S, qpos + 1) : S;
      const qdoc = docIds != 0 ? load<i32>(docIds + maskRow + <usize>qpos * 4) : 0;
      const m = scoreRow(p, qo, kbase, kstride, windowStart(qpos, window), jEnd, HD, scale, keyMask, docIds, maskRow, qdoc);
      const lo = lse + <usize>((b * NH + h) * T + t) * 4;
      if (m == NEG_INF) { memory.fill(oo, 0, <usize>HD * 4); store<f32>(lo, NEG_INF); continue; }
      const sum = expRowScaled(p, jEnd, 1, m); // the scores are scaled already
      scaleRow(p, jEnd, <f32>1 / sum); // normalise the weights first (jEnd multiplies instead of HD)
      weightedSum(oo, p, vbase, kstride, jEnd, HD);
      store<f32>(lo, m + Mathf.log(sum));
    }
  }
}

// ---- blocked attention: blocks of QB query rows through the GEMM micro-kernel ----------------------------------
// For T ≥ QB_MIN. Per (batch, head) and block of query rows [t0, t1): scores S = Q·Kᵀ over the keys the block may
// see, the softmax row by row (masks, lse), then O = P·V; the backward recomputes P from lse and runs dV += Pᵀ·dO,
// dP = dO·Vᵀ, dS = P ⊙ (dP − D)·scale, dQ = dS·K, dK += dSᵀ·Q. Only a [QB, S] block of scores exists at a time.

const QB: i32 = 32; // 32 wastes less on the causal diagonal than 64 (s15M attention 150 -> 141 ms per step)
const QB_HOST: i32 = 64; // the host's GEMM: fewer, larger calls
const QB_MIN: i32 = 16;

/**
 * Turns the raw scores of query row t (s[0, jB), jB = the block's key range) into softmax weights of scale·s in
 * place: masked (causal end, key mask, documents) and exponentiated in one pass. computeLse: returns lse and
 * leaves the weights UNnormalised (their sum is 1 / `rowInv`, written there; the caller scales the output row);
 * else uses lseIn (exp(scale·s − lse): normalised). Returns lse (−∞ when no key is allowed: the row is zeros).
 */
function softmaxRow(s: usize, jB: i32, jStart: i32, jEnd: i32, scale: f32, keyMask: usize, docIds: usize, maskRow: usize, qdoc: i32,
                    computeLse: bool, lseIn: f32, rowInv: usize): f32 {
  maskKeys(s, jStart, jEnd, keyMask, docIds, maskRow, qdoc);
  if (!(scale > 0)) {
    // a non-positive scale flips the order of the scores: scale them first (−∞ stays −∞ only for masked keys)
    for (let j = 0; j < jEnd; j++) {
      const x = load<f32>(s + <usize>j * 4);
      if (x != NEG_INF) store<f32>(s + <usize>j * 4, x * scale);
    }
    scale = 1;
  }
  let l = lseIn;
  if (computeLse) {
    const m = rowMax(s, jEnd);
    if (m == NEG_INF) { memory.fill(s, 0, <usize>jB * 4); store<f32>(rowInv, 0); return NEG_INF; }
    const shift = m * scale; // = max of scale·s (scale > 0: rounding is monotonic)
    const sum = expRowScaled(s, jEnd, scale, shift);
    store<f32>(rowInv, <f32>1 / sum);
    l = shift + Mathf.log(sum);
  } else {
    if (l == NEG_INF) { memory.fill(s, 0, <usize>jB * 4); return NEG_INF; }
    expRowScaled(s, jEnd, scale, l);
  }
  if (jB > jEnd) memory.fill(s + <usize>jEnd * 4, 0, <usize>(jB - jEnd) * 4);
  return l;
}

function attentionBlocked(tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize,
                          B: i32, T: i32, S: i32, NH: i32, NKV: i32, HD: i32, scale: f32, causal: i32, qOffset: i32,
                          window: i32, keyMask: usize, docIds: usize, scratch: usize, gemmScratch: usize, hostShare: f32): void {
  const ldS = S; // scores block [QB, S], then the rows' 1 / Σ weights [QB]
  const sb = scratch + <usize>tid * attentionBlockBytes(S);
  const inv = sb + <usize>(QB_HOST * S) * 4;
  const gs = gemmScratch + <usize>tid * gemmScratchBytes();
  const items = B * NH, rep = NH / NKV;
  const range = shareFirst(items, tid, nth, hostUnits(items, hostShare)), host = tid == 0 && hostShare >= 0;
  const qb = host ? QB_HOST : QB;
  const ldq = NH * HD, ldk = NKV * HD;
  for (let item = <i32>(range >> 32); item < <i32>range; item++) {
    const b = item / NH, h = item % NH, kvh = h / rep;
    const kbase = k + <usize>((b * S * NKV + kvh) * HD) * 4, vbase = v + <usize>((b * S * NKV + kvh) * HD) * 4;
    const maskRow = <usize>(b * S) * 4;
    for (let t0 = 0; t0 < T; t0 += qb) {
      const rows = min(qb, T - t0);
      const jB = causal ? min(S, qOffset + t0 + rows) : S; // keys any row of the block may see
      const qo = q + <usize>(((b * T + t0) * NH + h) * HD) * 4, oo = out + <usize>(((b * T + t0) * NH + h) * HD) * 4;
      blockGemm(host, false, true, rows, jB, HD, qo, ldq, kbase, ldk, sb, ldS, gs, false); // S = Q·Kᵀ
      for (let r = 0; r < rows; r++) {
        const t = t0 + r, qpos = qOffset + t;
        const jEnd = causal ? min(S, qpos + 1) : S;
        const qdoc = docIds != 0 ? load<i32>(docIds + maskRow + <usize>qpos * 4) : 0;
        const l = softmaxRow(sb + <usize>(r * ldS) * 4, jB, windowStart(qpos, window), jEnd, scale, keyMask, docIds, maskRow, qdoc, true, 0,
          inv + <usize>r * 4);
        store<f32>(lse + <usize>((b * NH + h) * T + t) * 4, l);
      }
      blockGemm(host, false, false, rows, HD, jB, sb, ldS, vbase, ldk, oo, ldq, gs, false); // O = P·V, P unnormalised
      for (let r = 0; r < rows; r++) scaleRow(oo + <usize>(r * ldq) * 4, HD, load<f32>(inv + <usize>r * 4)); // O /= Σ P
    }
  }
}

function attentionBackwardBlocked(tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize, g: usize,
                                  dq: usize, dk: usize, dv: usize, B: i32, T: i32, S: i32, NH: i32, NKV: i32, HD: i32,
                                  scale: f32, causal: i32, qOffset: i32, window: i32, keyMask: usize, docIds: usize, scratch: usize,
                                  gemmScratch: usize, hostShare: f32): void {
  const ldS = S;
  const blockBytes = attentionBlockBytes(S);
  const pb = scratch + <usize>tid * 2 * blockBytes; // P block [QB, S]
  const db = pb + blockBytes; // dP, then dS block [QB, S]
  const gs = gemmScratch + <usize>tid * gemmScratchBytes();
  const items = B * NKV, rep = NH / NKV;
  const range = shareFirst(items, tid, nth, hostUnits(items, hostShare)), host = tid == 0 && hostShare >= 0;
  const qb = host ? QB_HOST : QB;
  const ldq = NH * HD, ldk = NKV * HD;
  const kstride = <usize>ldk * 4, rowBytes = <usize>HD * 4;
  for (let item = <i32>(range >> 32); item < <i32>range; item++) {
    const b = item / NKV, kvh = item % NKV;
    const off = <usize>((b * S * NKV + kvh) * HD) * 4;
    const kbase = k + off, vbase = v + off, dkbase = dk + off, dvbase = dv + off;
    const maskRow = <usize>(b * S) * 4;
    for (let j = 0; j < S; j++) {
      memory.fill(dkbase + <usize>j * kstride, 0, rowBytes);
      memory.fill(dvbase + <usize>j * kstride, 0, rowBytes);
    }
    for (let hh = 0; hh < rep; hh++) {
      const h = kvh * rep + hh;
      for (let t0 = 0; t0 < T; t0 += qb) {
        const rows = min(qb, T - t0);
        const jB = causal ? min(S, qOffset + t0 + rows) : S;
        const ro = <usize>(((b * T + t0) * NH + h) * HD) * 4;
        blockGemm(host, false, true, rows, jB, HD, q + ro, ldq, kbase, ldk, pb, ldS, gs, false); // S = Q·Kᵀ
        blockGemm(host, false, true, rows, jB, HD, g + ro, ldq, vbase, ldk, db, ldS, gs, false); // dP = dO·Vᵀ
        for (let r = 0; r < rows; r++) {
          const t = t0 + r, qpos = qOffset + t;
          const jEnd = causal ? min(S, qpos + 1) : S;
          const qdoc = docIds != 0 ? load<i32>(docIds + maskRow + <usize>qpos * 4) : 0;
          const pr = pb + <usize>(r * ldS) * 4, dr = db + <usize>(r * ldS) * 4;
          const l = load<f32>(lse + <usize>((b * NH + h) * T + t) * 4);
          softmaxRow(pr, jB, windowStart(qpos, window), jEnd, scale, keyMask, docIds, maskRow, qdoc, false, l, 0); // P = exp(scale·s − lse)
          const rowOff = <usize>(r * ldq) * 4;
          const D = dot(g + ro + rowOff, out + ro + rowOff, HD);
          const vD = f32x4.splat(D), vsc = f32x4.splat(scale);
          let j = 0;
          for (; j + 4 <= jB; j += 4) {
            const o = <usize>j * 4;
            v128.store(dr + o, f32x4.mul(f32x4.mul(v128.load(pr + o), f32x4.sub(v128.load(dr + o), vD)), vsc));
          }
          for (; j < jB; j++) {
            const o = <usize>j * 4;
            store<f32>(dr + o, load<f32>(pr + o) * (load<f32>(dr + o) - D) * scale);
          }
        }
        blockGemm(host, true, false, jB, HD, rows, pb, ldS, g + ro, ldq, dvbase, ldk, gs, true); // dV += Pᵀ·dO
        blockGemm(host, true, false, jB, HD, rows, db, ldS, q + ro, ldq, dkbase, ldk, gs, true); // dK += dSᵀ·Q
        blockGemm(host, false, false, rows, HD, jB, db, ldS, kbase, ldk, dq + ro, ldq, gs, false); // dQ = dS·K
      }
    }
  }
}

/** Bytes of block scratch per thread the forward (1 block) and backward (2 blocks) need beyond the GEMM scratch. */
export function attentionBlockBytes(S: i32): usize {
  return (<usize>(QB_HOST * S + QB_HOST) * 4 + 63) & ~<usize>63; // a [QB_HOST, S] block and QB_HOST floats (the forward's row sums)
}

/** x[0, n) *= a. */
function scaleRow(x: usize, n: i32, a: f32): void {
  const va = f32x4.splat(a);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(x + <usize>i * 4, f32x4.mul(v128.load(x + <usize>i * 4), va));
  for (; i < n; i++) store<f32>(x + <usize>i * 4, load<f32>(x + <usize>i * 4) * a);
}

/**
 * Forward: thread tid of nth takes a share of the B·NH (batch, head) pairs. T ≥ 16: blocked (scratch: nth ×
 * attentionBlockBytes(S), plus the GEMM scratch); smaller T (decoding): row by row (scratch: nth × S floats).
 */
export function attention(tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize,
                          B: i32, T: i32, S: i32, NH: i32, NKV: i32, HD: i32, scale: f32, causal: i32, qOffset: i32,
                          window: i32, keyMask: usize, docIds: usize, scratch: usize, gemmScratch: usize, hostShare: f32): void {
  if (T >= QB_MIN) {
    attentionBlocked(tid, nth, q, k, v, out, lse, B, T, S, NH, NKV, HD, scale, causal, qOffset, window, keyMask, docIds, scratch, gemmScratch, hostShare);
  } else attentionRows(tid, nth, q, k, v, out, lse, B, T, S, NH, NKV, HD, scale, causal, qOffset, window, keyMask, docIds, scratch);
}

/**
 * Backward, always blocked: thread tid takes a share of the B·NKV (batch, KV head) groups, so each thread owns the
 * dk/dv slices it accumulates into (and the dq rows of the group's query heads): no races, no reduction.
 * Scratch: nth × 2 × attentionBlockBytes(S), plus the GEMM scratch.
 */
export function attentionBackward(tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize, g: usize,
                                  dq: usize, dk: usize, dv: usize, B: i32, T: i32, S: i32, NH: i32, NKV: i32, HD: i32,
                                  scale: f32, causal: i32, qOffset: i32, window: i32, keyMask: usize, docIds: usize, scratch: usize,
                                  gemmScratch: usize, hostShare: f32): void {
  attentionBackwardBlocked(tid, nth, q, k, v, out, lse, g, dq, dk, dv, B, T, S, NH, NKV, HD, scale, causal, qOffset,
    window, keyMask, docIds, scratch, gemmScratch, hostShare);
}
