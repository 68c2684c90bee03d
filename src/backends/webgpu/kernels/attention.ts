// Attention forward and backward, tiled with an online softmax (FlashAttention's recurrence; a thread per query
// row, K/V blocks shared through workgroup memory). Causal, key mask, documents, GQA and a KV offset; a query
// with no allowed key outputs 0 and gets lse = −∞ (the backward then skips it).
//
//   forward      thread = query (b, h, t); workgroup = QB consecutive queries of one head; K/V blocks of KB keys
//   backward dq  same layout: recomputes P from lse, writes dq and D = dO·O (per query, for the next pass)
//   backward dkv thread = key (b, kvh, j); workgroup = QB consecutive keys; Q/dO blocks of QB2 queries of every
//                head of the GQA group; dk, dv summed in registers (deterministic, no atomics)
//
// Block sizes follow the device's workgroup memory (adapter.limits.maxComputeWorkgroupStorageSize).

import type { AttentionArgs, KernelTable } from '../../../core/backend.js';
import type { GpuRuntime } from '../device.js';
import { T, main1d, ro, run1d, rw, wgslType } from './common.js';
import { fillInto } from './elementwise.js';

const QB = 64;

/** dot of two VT values (head dims are read as vec4 when HD is a multiple of 4). */
const dotFn = (VT: string) => (VT === 'f32' ? 'fn dotv(a: f32, b: f32) -> f32 { return a * b; }' : 'fn dotv(a: vec4<f32>, b: vec4<f32>) -> f32 { return dot(a, b); }');

/** Largest power of two ≤ 64 with `bytesPer(b)` ≤ the device's workgroup memory. */
function block(rt: GpuRuntime, bytesPer: (b: number) => number): number {
  const limit = rt.device.limits.maxComputeWorkgroupStorageSize;
  let b = 64;
  while (b > 1 && bytesPer(b) > limit) b >>= 1;
  return b;
}

// ints: 0 B, 1 T, 2 S, 3 NH, 4 NKV, 5 causal, 6 qOffset, 7 hasMask, 8 hasDoc, 9 (kernel's own), 10 window (0: none);
// floats: 0 scale, 1 −∞
const common = /* wgsl */ `
fn allowed(b: u32, j: u32, qpos: u32, qdoc: i32) -> bool {
  let S = pu(2u);
  if (pu(5u) != 0u && j > qpos) { return false; }
  if (pu(10u) != 0u && j + pu(10u) <= qpos) { return false; } // sliding window: only keys j > qpos − window
  if (pu(7u) != 0u && ki[2u * (b * S + j)] == 0) { return false; }
  if (pu(8u) != 0u && (qpos >= S || ki[2u * (b * S + j) + 1u] != qdoc)) { return false; }
  return true;
}
fn queryDoc(b: u32, qpos: u32) -> i32 {
  let S = pu(2u);
  if (pu(8u) != 0u && qpos < S) { return ki[2u * (b * S + qpos) + 1u]; }
  return 0;
}`;

/** The first key no query of the block [t0, t0 + QB) can see (causal), or S. */
const keyEnd = /* wgsl */ `
  var kEnd = S;
  if (pu(5u) != 0u) { kEnd = min(S, pu(6u) + min(T, t0 + ${QB}u)); }`;

const fwdCode = (HD: number, KB: number) => () => {
  const HV = HD % 4 === 0 ? HD / 4 : HD, VT = HD % 4 === 0 ? 'vec4<f32>' : 'f32';
  return `
${ro(1, 'Q', VT)}${ro(2, 'K', VT)}${ro(3, 'Vv', VT)}${ro(4, 'ki', 'i32')}${rw(5, 'O', VT)}${rw(6, 'L')}
var<workgroup> Ks: array<${VT}, ${KB * HV}>;
var<workgroup> Vs: array<${VT}, ${KB * HV}>;
${common}
${dotFn(VT)}
@compute @workgroup_size(${QB})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = pu(1u); let S = pu(2u); let NH = pu(3u); let NKV = pu(4u);
  let b = wid.z; let h = wid.y; let t0 = wid.x * ${QB}u; let t = t0 + lid;
  let kvh = h / (NH / NKV);
  let live = t < T;
  let qpos = pu(6u) + t;
  let scale = pf(0u);
  var q: array<${VT}, ${HV}>;
  var acc: array<${VT}, ${HV}>;
  let qo = ((b * T + t) * NH + h) * ${HV}u;
  if (live) { for (var d = 0u; d < ${HV}u; d = d + 1u) { q[d] = Q[qo + d]; } }
  let qdoc = queryDoc(b, qpos);
  var m = -3.4028234e38;
  var l = 0.0;
  ${keyEnd}
  for (var k0 = 0u; k0 < kEnd; k0 = k0 + ${KB}u) {
    for (var e = lid; e < ${KB * HV}u; e = e + ${QB}u) {
      let j = k0 + e / ${HV}u;
      var kv = ${VT}(0.0); var vv = ${VT}(0.0);
      if (j < S) { let off = ((b * S + j) * NKV + kvh) * ${HV}u + e % ${HV}u; kv = K[off]; vv = Vv[off]; }
      Ks[e] = kv; Vs[e] = vv;
    }
    workgroupBarrier();
    if (live) {
      for (var jj = 0u; jj < ${KB}u; jj = jj + 1u) {
        let j = k0 + jj;
        if (j >= kEnd) { break; }
        if (!allowed(b, j, qpos, qdoc)) { continue; }
        var s = 0.0;
        for (var d = 0u; d < ${HV}u; d = d + 1u) { s = s + dotv(q[d], Ks[jj * ${HV}u + d]); }
        s = s * scale;
        if (s > m) {
          let corr = exp(m - s);
          l = l * corr;
          for (var d = 0u; d < ${HV}u; d = d + 1u) { acc[d] = acc[d] * corr; }
          m = s;
        }
        let p = exp(s - m);
        l = l + p;
        for (var d = 0u; d < ${HV}u; d = d + 1u) { acc[d] = acc[d] + p * Vs[jj * ${HV}u + d]; }
      }
    }
    workgroupBarrier();
  }
  if (live) {
    let lo = (b * NH + h) * T + t;
    if (l == 0.0) {
      for (var d = 0u; d < ${HV}u; d = d + 1u) { O[qo + d] = ${VT}(0.0); }
      L[lo] = pf(1u);
    } else {
      for (var d = 0u; d < ${HV}u; d = d + 1u) { O[qo + d] = acc[d] / l; }
      L[lo] = m + log(l);
    }
  }
}`;
};

const dqCode = (HD: number, KB: number) => () => {
  const HV = HD % 4 === 0 ? HD / 4 : HD, VT = HD % 4 === 0 ? 'vec4<f32>' : 'f32';
  return `
${ro(1, 'Q', VT)}${ro(2, 'K', VT)}${ro(3, 'Vv', VT)}${ro(4, 'ki', 'i32')}${ro(5, 'LD')}${ro(6, 'G', VT)}${rw(7, 'dQ', VT)}
var<workgroup> Ks: array<${VT}, ${KB * HV}>;
var<workgroup> Vs: array<${VT}, ${KB * HV}>;
${common}
${dotFn(VT)}
@compute @workgroup_size(${QB})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = pu(1u); let S = pu(2u); let NH = pu(3u); let NKV = pu(4u);
  let b = wid.z; let h = wid.y; let t0 = wid.x * ${QB}u; let t = t0 + lid;
  let kvh = h / (NH / NKV);
  let qpos = pu(6u) + t;
  let scale = pf(0u);
  var q: array<${VT}, ${HV}>;
  var g: array<${VT}, ${HV}>;
  var dq: array<${VT}, ${HV}>;
  let qo = ((b * T + t) * NH + h) * ${HV}u;
  var lse = 0.0;
  var D = 0.0;
  var live = t < T;
  if (live) {
    for (var d = 0u; d < ${HV}u; d = d + 1u) { q[d] = Q[qo + d]; g[d] = G[qo + d]; }
    let r = (b * NH + h) * T + t;
    lse = LD[r];
    D = LD[pu(9u) + r];
    live = !notFinite(lse);
  }
  let qdoc = queryDoc(b, qpos);
  ${keyEnd}
  for (var k0 = 0u; k0 < kEnd; k0 = k0 + ${KB}u) {
    for (var e = lid; e < ${KB * HV}u; e = e + ${QB}u) {
      let j = k0 + e / ${HV}u;
      var kv = ${VT}(0.0); var vv = ${VT}(0.0);
      if (j < S) { let off = ((b * S + j) * NKV + kvh) * ${HV}u + e % ${HV}u; kv = K[off]; vv = Vv[off]; }
      Ks[e] = kv; Vs[e] = vv;
    }
    workgroupBarrier();
    if (live) {
      for (var jj = 0u; jj < ${KB}u; jj = jj + 1u) {
        let j = k0 + jj;
        if (j >= kEnd) { break; }
        if (!allowed(b, j, qpos, qdoc)) { continue; }
        var s = 0.0; var dP = 0.0;
        for (var d = 0u; d < ${HV}u; d = d + 1u) { s = s + dotv(q[d], Ks[jj * ${HV}u + d]); dP = dP + dotv(g[d], Vs[jj * ${HV}u + d]); }
        let P = exp(s * scale - lse);
        let dS = P * (dP - D) * scale;
        for (var d = 0u; d < ${HV}u; d = d + 1u) { dq[d] = dq[d] + dS * Ks[jj * ${HV}u + d]; }
      }
    }
    workgroupBarrier();
  }
  if (t < T) { for (var d = 0u; d < ${HV}u; d = d + 1u) { dQ[qo + d] = dq[d]; } }
}`;
};

const dkvCode = (HD: number, QB2: number) => () => {
  const HV = HD % 4 === 0 ? HD / 4 : HD, VT = HD % 4 === 0 ? 'vec4<f32>' : 'f32';
  return `
${ro(1, 'Q', VT)}${ro(2, 'K', VT)}${ro(3, 'Vv', VT)}${ro(4, 'ki', 'i32')}${ro(5, 'LD')}${ro(6, 'G', VT)}${rw(7, 'dK', VT)}${rw(8, 'dV', VT)}
var<workgroup> Qs: array<${VT}, ${QB2 * HV}>;
var<workgroup> Gs: array<${VT}, ${QB2 * HV}>;
var<workgroup> Ls: array<f32, ${QB2}>;
var<workgroup> Ds: array<f32, ${QB2}>;
${common}
${dotFn(VT)}
@compute @workgroup_size(${QB})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let T = pu(1u); let S = pu(2u); let NH = pu(3u); let NKV = pu(4u);
  let b = wid.z; let kvh = wid.y; let j0 = wid.x * ${QB}u; let j = j0 + lid;
  let grp = NH / NKV;
  let scale = pf(0u);
  let qOff = pu(6u);
  var kk: array<${VT}, ${HV}>;
  var vv: array<${VT}, ${HV}>;
  var dk: array<${VT}, ${HV}>;
  var dv: array<${VT}, ${HV}>;
  let ko = ((b * S + j) * NKV + kvh) * ${HV}u;
  var live = j < S;
  if (live) {
    for (var d = 0u; d < ${HV}u; d = d + 1u) { kk[d] = K[ko + d]; vv[d] = Vv[ko + d]; }
    if (pu(7u) != 0u && ki[2u * (b * S + j)] == 0) { live = false; }
  }
  var kdoc = 0;
  if (pu(8u) != 0u && j < S) { kdoc = ki[2u * (b * S + j) + 1u]; }
  // causal: queries before t = j0 − qOff see none of this block's keys
  var tStart = 0u;
  if (pu(5u) != 0u && j0 > qOff) { tStart = ((j0 - qOff) / ${QB2}u) * ${QB2}u; }
  for (var hh = 0u; hh < grp; hh = hh + 1u) {
    let h = kvh * grp + hh;
    for (var t0 = tStart; t0 < T; t0 = t0 + ${QB2}u) {
      for (var e = lid; e < ${QB2 * HV}u; e = e + ${QB}u) {
        let t = t0 + e / ${HV}u;
        var qv = ${VT}(0.0); var gv = ${VT}(0.0);
        if (t < T) { let off = ((b * T + t) * NH + h) * ${HV}u + e % ${HV}u; qv = Q[off]; gv = G[off]; }
        Qs[e] = qv; Gs[e] = gv;
      }
      for (var e = lid; e < ${QB2}u; e = e + ${QB}u) {
        let t = t0 + e;
        var lv = 0.0; var dv0 = 0.0;
        if (t < T) { let r = (b * NH + h) * T + t; lv = LD[r]; dv0 = LD[pu(9u) + r]; }
        Ls[e] = lv; Ds[e] = dv0;
      }
      workgroupBarrier();
      if (live) {
        for (var tt = 0u; tt < ${QB2}u; tt = tt + 1u) {
          let t = t0 + tt;
          if (t >= T) { break; }
          let qpos = qOff + t;
          if (pu(5u) != 0u && j > qpos) { continue; }
          if (pu(10u) != 0u && j + pu(10u) <= qpos) { continue; }
          if (pu(8u) != 0u && (qpos >= S || ki[2u * (b * S + qpos) + 1u] != kdoc)) { continue; }
          let lse = Ls[tt];
          if (notFinite(lse)) { continue; }
          var s = 0.0; var dP = 0.0;
          for (var d = 0u; d < ${HV}u; d = d + 1u) { s = s + dotv(Qs[tt * ${HV}u + d], kk[d]); dP = dP + dotv(Gs[tt * ${HV}u + d], vv[d]); }
          let P = exp(s * scale - lse);
          let dS = P * (dP - Ds[tt]) * scale;
          for (var d = 0u; d < ${HV}u; d = d + 1u) {
            dv[d] = dv[d] + P * Gs[tt * ${HV}u + d];
            dk[d] = dk[d] + dS * Qs[tt * ${HV}u + d];
          }
        }
      }
      workgroupBarrier();
    }
  }
  if (j < S) { for (var d = 0u; d < ${HV}u; d = d + 1u) { dK[ko + d] = dk[d]; dV[ko + d] = dv[d]; } }
}`;
};

function ints(a: AttentionArgs, extra = 0): number[] {
  return [a.B, a.T, a.S, a.NH, a.NKV, a.causal ? 1 : 0, a.qOffset, a.keyMask ? 1 : 0, a.docIds ? 1 : 0, extra, a.window];
}

export function attentionKernels(rt: GpuRuntime): Partial<KernelTable> {
  const KB = (HD: number) => block(rt, (b) => 2 * b * HD * 4);
  const QB2 = (HD: number) => block(rt, (b) => (2 * b * HD + 2 * b) * 4);
  /** [B, S, 2] int32: (key mask, document id) per key, so that every kernel stays within 8 storage bindings. */
  const keyInfo = (a: AttentionArgs) => {
    if (!a.keyMask && !a.docIds) return rt.dummy;
    const n = a.B * a.S;
    const ki = rt.alloc(2 * n);
    run1d(rt, { key: 'attn_keyinfo', code: () => ro(1, 'mask', 'i32') + ro(2, 'doc', 'i32') + rw(3, 'ki', 'i32') + main1d(`
      var mv = 1; var dv = 0;
      if (pu(1u) != 0u) { mv = mask[i]; }
      if (pu(2u) != 0u) { dv = doc[i]; }
      ki[2u * i] = mv; ki[2u * i + 1u] = dv;`) },
    [a.keyMask ? T(a.keyMask) : rt.dummy, a.docIds ? T(a.docIds) : rt.dummy2, ki], n, [a.keyMask ? 1 : 0, a.docIds ? 1 : 0]);
    return ki;
  };
  return {
    attention(q, k, v, args, dtype) {
      wgslType(dtype);
      const { B, T: Tn, NH, HD } = args;
      const out = rt.alloc(B * Tn * NH * HD), lse = rt.alloc(B * NH * Tn);
      if (B * Tn * NH === 0) return { out, lse };
      const kb = KB(HD);
      const ki = keyInfo(args);
      rt.dispatch({ key: `attn_fwd_${HD}_${kb}`, code: fwdCode(HD, kb) }, [T(q), T(k), T(v), ki, out, lse],
        ints(args), [args.scale, -Infinity], [Math.ceil(Tn / QB), NH, B]);
      if (ki !== rt.dummy) rt.release(ki);
      return { out, lse };
    },

    attentionBackward(q, k, v, out, lse, g, args, dtype) {
      wgslType(dtype);
      const { B, T: Tn, S, NH, NKV, HD } = args;
      const dq = rt.alloc(B * Tn * NH * HD), dk = rt.alloc(B * S * NKV * HD), dv = rt.alloc(B * S * NKV * HD);
      const n = B * NH * Tn;
      // [2, B, NH, T]: lse, then D = dO·O per query
      const LD = rt.alloc(2 * n);
      run1d(rt, { key: 'attn_ld', code: () => ro(1, 'L') + ro(2, 'O') + ro(3, 'G') + rw(4, 'LD') + main1d(`
        let T = pu(1u); let NH = pu(2u); let HD = pu(3u);
        let t = i % T; let bh = i / T; let h = bh % NH; let b = bh / NH;
        let o = ((b * T + t) * NH + h) * HD;
        var D = 0.0;
        for (var d = 0u; d < HD; d = d + 1u) { D = D + G[o + d] * O[o + d]; }
        LD[i] = L[i]; LD[pu(0u) + i] = D;`) }, [T(lse), T(out), T(g), LD], n, [Tn, NH, HD]);
      const ki = keyInfo(args);
      const kb = KB(HD), qb2 = QB2(HD);
      if (n > 0) {
        rt.dispatch({ key: `attn_dq_${HD}_${kb}`, code: dqCode(HD, kb) }, [T(q), T(k), T(v), ki, LD, T(g), dq],
          ints(args, n), [args.scale], [Math.ceil(Tn / QB), NH, B]);
      }
      if (B * S * NKV > 0) {
        if (n === 0) { fillInto(rt, dk, dk.n, 0); fillInto(rt, dv, dv.n, 0); } else {
          rt.dispatch({ key: `attn_dkv_${HD}_${qb2}`, code: dkvCode(HD, qb2) }, [T(q), T(k), T(v), ki, LD, T(g), dk, dv],
            ints(args, n), [args.scale], [Math.ceil(S / QB), NKV, B]);
        }
      }
      rt.release(LD);
      if (ki !== rt.dummy) rt.release(ki);
      return { dq, dk, dv };
    },
  };
}
