// Every op: a float64 finite-difference gradient check; fused ops are also compared with a composition of
// primitives (their "composed fallback"), forward and backward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RNG, type Tensor, abs, add, attention, concat, crossEntropyRows, div, embedding, exp, expand, log, logSoftmax,
  logsumexp, matmul, max, mean, mul, neg, permute, reshape, rmsNorm, rope, rsqrt, sigmoid, silu, slice, softmax, sqrt, swiglu,
  square, sub, sum, tanh, tensor, transpose, loraAdd,
} from '../../src/index.js';
import { gradcheck, randn } from '../gradcheck.js';
import { relErr as maxRelErr } from '../helpers.js';

const rng = new RNG(7);
const ids = (data: number[], shape: number[]) => tensor(Int32Array.from(data), shape, 'int32');

test('broadcasting elementwise ops: values and gradients', () => {
  const a = randn([2, 3, 4], rng), b = randn([3, 1], rng), c = randn([4], rng);
  const pos = tensor(Float64Array.from({ length: 12 }, () => 0.5 + rng.uniform()), [3, 4], 'float64').requireGrad();
  gradcheck('add', (x, y) => add(x, y), [a, b]);
  gradcheck('sub', (x, y) => sub(x, y), [a, c]);
  gradcheck('mul', (x, y) => mul(x, y), [a, b]);
  gradcheck('div', (x, y) => div(x, y), [a, pos]);
  gradcheck('scalar ops', (x) => add(mul(sub(x, 2), 3), 1), [a]);
  const s = add(tensor([1, 2, 3], [3, 1], 'float64'), tensor([10, 20], [2], 'float64'));
  assert.deepEqual([...s.shape], [3, 2]);
  assert.deepEqual(Array.from(s.dataSync()), [11, 21, 12, 22, 13, 23]);
  assert.throws(() => add(randn([2, 3], rng), randn([4], rng)), /cannot be broadcast together/);
});

test('unary ops: gradients', () => {
  const x = randn([3, 5], rng);
  const p = tensor(Float64Array.from({ length: 15 }, () => 0.3 + rng.uniform()), [3, 5], 'float64').requireGrad();
  for (const [name, f] of [['neg', neg], ['exp', exp], ['tanh', tanh], ['sigmoid', sigmoid], ['silu', silu], ['square', square], ['abs', abs]] as const) {
    gradcheck(name, f, [x]);
  }
  for (const [name, f] of [['log', log], ['sqrt', sqrt], ['rsqrt', rsqrt]] as const) gradcheck(name, f, [p]);
  // silu(x) = x·σ(x); swiglu(a, b) = silu(a)·b, one op with its own backward
  gradcheck('swiglu', (a, b) => swiglu(a, b), [randn([3, 4], rng), randn([3, 4], rng)]);
  { const a = randn([2, 5], rng), b = randn([2, 5], rng); assert.ok(maxRelErr(swiglu(a, b).dataSync(), mul(silu(a), b).dataSync()) < 1e-15); }
  assert.throws(() => swiglu(randn([2, 3], rng), randn([3, 2], rng)), /swiglu: gate and up must have the same shape and dtype, got float64 \[2, 3\] and float64 \[3, 2\]/);
  assert.ok(maxRelErr(silu(x).dataSync(), mul(x, sigmoid(x)).dataSync()) < 1e-15);
});

test('reductions: sum, mean, max over axes', () => {
  const x = randn([2, 3, 4], rng);
  gradcheck('sum all', (t) => sum(t), [x]);
  gradcheck('sum axes', (t) => sum(t, [0, 2]), [x]);
  gradcheck('sum keepDim', (t) => sum(t, -1, true), [x]);
  gradcheck('mean', (t) => mean(t, 1), [x]);
  gradcheck('max', (t) => max(t, 1), [x]);
  gradcheck('expand', (t) => expand(t, [2, 2, 3, 4]), [x]);
  const v = tensor([1, 5, 2, 7, 0, 3], [2, 3], 'float64');
  assert.deepEqual(Array.from(sum(v, 0).dataSync()), [8, 5, 5]);
  assert.deepEqual(Array.from(mean(v, 1).dataSync()), [8 / 3, 10 / 3]);
  assert.deepEqual(Array.from(max(v, 1).dataSync()), [5, 7]);
});

test('matmul: plain, transposed, batched and broadcast forms', () => {
  const a = randn([3, 4], rng), b = randn([4, 5], rng);
  const ref = (x: number[][], y: number[][]) => x.map((r) => y[0]!.map((_, j) => r.reduce((s, v, k) => s + v * y[k]![j]!, 0)));
  const rows = (t: Tensor) => { const [r, c] = t.shape as [number, number]; const d = t.dataSync(); return Array.from({ length: r }, (_, i) => Array.from(d.subarray(i * c, i * c + c))); };
  assert.ok(maxRelErr(matmul(a, b).dataSync(), ref(rows(a), rows(b)).flat()) < 1e-14);
  const at = transpose(a).detach().requireGrad(), bt = transpose(b).detach().requireGrad();
  for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const x = tA ? at : a, y = tB ? bt : b;
    assert.ok(maxRelErr(matmul(x, y, { transA: tA, transB: tB }).dataSync(), matmul(a, b).dataSync()) < 1e-14, `trans ${tA},${tB}`);
    gradcheck(`matmul trans ${tA},${tB}`, (p, q) => matmul(p, q, { transA: tA, transB: tB }), [x, y]);
  }
  gradcheck('batched matmul', (p, q) => matmul(p, q), [randn([2, 3, 4], rng), randn([2, 4, 2], rng)]);
  gradcheck('broadcast batch matmul', (p, q) => matmul(p, q, { transB: true }), [randn([2, 2, 3, 4], rng), randn([5, 4], rng)]);
  assert.throws(() => matmul(randn([2, 3], rng), randn([4, 2], rng)), /inner dimensions differ/);
});

test('shape ops: reshape, permute, transpose, slice, concat', () => {
  const x = randn([2, 3, 4], rng);
  gradcheck('reshape', (t) => reshape(t, [6, -1]), [x]);
  gradcheck('permute', (t) => permute(t, [2, 0, 1]), [x]);
  gradcheck('transpose', (t) => transpose(t, 0, 2), [x]);
  gradcheck('slice', (t) => slice(t, 1, 1, 3), [x]);
  const y = randn([2, 2, 4], rng);
  gradcheck('concat', (p, q) => concat([p, q, p], 1), [x, y]);
  const v = tensor([0, 1, 2, 3, 4, 5], [2, 3], 'float64');
  assert.deepEqual(Array.from(transpose(v).dataSync()), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(Array.from(slice(v, 1, 1, 3).dataSync()), [1, 2, 4, 5]);
  assert.deepEqual(Array.from(concat([v, slice(v, 0, 0, 1)], 0).dataSync()), [0, 1, 2, 3, 4, 5, 0, 1, 2]);
  assert.throws(() => reshape(v, [4, 2]), /cannot view \[2, 3\]/);
  assert.throws(() => slice(v, 1, 2, 4), /out of range/);
});

test('embedding: gather forward, scatter-add backward (repeated ids accumulate)', () => {
  const w = randn([5, 3], rng);
  const i = ids([4, 0, 4, 2], [2, 2]);
  gradcheck('embedding', (t) => embedding(t, i), [w]);
  // a tied head, logits = E[ids]·Wᵀ with E = W: the head's gradient comes first, then the embedding's rows are added
  // into that same buffer (accumulateInto) — the result must still be the full gradient
  gradcheck('embedding tied with a head matmul', (t) => matmul(embedding(t, i), t, { transB: true }), [w]);
  const e = embedding(w, i);
  assert.deepEqual([...e.shape], [2, 2, 3]);
  assert.deepEqual(Array.from(e.dataSync().subarray(0, 3)), Array.from(w.dataSync().subarray(12, 15)));
  assert.throws(() => embedding(w, ids([5], [1])), /token id 5 at position 0 is outside the vocabulary \[0, 5\)/);
});

test('softmax / log-softmax / logsumexp: max-subtracted, gradients, large logits stay finite', () => {
  const x = randn([3, 6], rng, 3);
  gradcheck('softmax', softmax, [x]);
  gradcheck('logSoftmax', logSoftmax, [x]);
  gradcheck('logsumexp', logsumexp, [x]);
  // composed: log(sum(exp(x)))
  assert.ok(maxRelErr(logsumexp(x).dataSync(), log(sum(exp(x), -1)).dataSync()) < 1e-14);
  assert.ok(maxRelErr(logSoftmax(x).dataSync(), sub(x, reshape(logsumexp(x), [3, 1])).dataSync()) < 1e-14);
  const big = tensor([1000, 1001, 1002], [1, 3], 'float32');
  const ls = logsumexp(big).dataSync()[0]!;
  assert.ok(Math.abs(ls - (1002 + Math.log(1 + Math.exp(-1) + Math.exp(-2)))) < 1e-3, `logsumexp of large logits: ${ls}`);
  assert.ok(softmax(big).dataSync().every(Number.isFinite));
});

test('rmsNorm: fused equals the composition, gradients for x and weight', () => {
  const x = randn([2, 3, 8], rng), w = randn([8], rng);
  const eps = 1e-5;
  gradcheck('rmsNorm', (a, b) => rmsNorm(a, b, eps), [x, w]);
  const composed = (a: Tensor, b: Tensor) => mul(mul(a, rsqrt(add(mean(square(a), -1, true), eps))), b);
  assert.ok(maxRelErr(rmsNorm(x, w, eps).dataSync(), composed(x, w).dataSync()) < 1e-14);
  x.grad = null; w.grad = null;
  sum(mul(rmsNorm(x, w, eps), x.detach())).backward();
  const [gx, gw] = [x.grad!.dataSync(), w.grad!.dataSync()];
  x.grad = null; w.grad = null;
  sum(mul(composed(x, w), x.detach())).backward();
  assert.ok(maxRelErr(gx, x.grad!.dataSync()) < 1e-12 && maxRelErr(gw, w.grad!.dataSync()) < 1e-12);
});

test('rope: HF rotate_half convention, positions per row, gradient', () => {
  const [B, T, H, HD] = [2, 3, 2, 4];
  const x = randn([B, T, H, HD], rng);
  const invFreq = Float32Array.from([1, 0.01]);
  const pos = ids([0, 1, 2, 5, 6, 7], [B, T]);
  gradcheck('rope', (t) => rope(t, pos, { invFreq, attentionScaling: 1 }), [x]);
  // Explicit formula: out = x·cos(cat(f, f)) + rotate_half(x)·sin(cat(f, f)), rotate_half(x) = cat(−x2, x1)
  const out = rope(x, pos, { invFreq, attentionScaling: 1 }).dataSync(), xs = x.dataSync(), p = pos.dataSync();
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
    const o = ((b * T + t) * H + h) * HD;
    const v = Array.from(xs.subarray(o, o + HD));
    const rot = [-v[2]!, -v[3]!, v[0]!, v[1]!];
    for (let d = 0; d < HD; d++) {
      const ang = p[b * T + t]! * invFreq[d % 2]!;
      assert.ok(Math.abs(out[o + d]! - (v[d]! * Math.cos(ang) + rot[d]! * Math.sin(ang))) < 1e-14);
    }
  }
});

/** Attention built from primitives: scores = q·kᵀ·scale + mask, softmax, · v (the composed fallback). */
function attentionComposed(q: Tensor, k: Tensor, v: Tensor, keyMask: Int32Array | null, causal: boolean, qOffset: number,
                           docs: Int32Array | null = null, window = 0): Tensor {
  const [B, T, NH, HD] = q.shape as number[] as [number, number, number, number];
  const [, S, NKV] = k.shape as number[] as [number, number, number];
  const rep = NH / NKV;
  const qh = permute(q, [0, 2, 1, 3]); // [B, NH, T, HD]
  // repeat_kv: head h uses kv head floor(h / rep)
  const kh = concat(Array.from({ length: NH }, (_, h) => slice(permute(k, [0, 2, 1, 3]), 1, Math.floor(h / rep), Math.floor(h / rep) + 1)), 1);
  const vh = concat(Array.from({ length: NH }, (_, h) => slice(permute(v, [0, 2, 1, 3]), 1, Math.floor(h / rep), Math.floor(h / rep) + 1)), 1);
  const bias = new Float64Array(B * T * S);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let j = 0; j < S; j++) {
    if ((causal && j > qOffset + t) || (window > 0 && j <= qOffset + t - window) || (keyMask && keyMask[b * S + j] === 0) ||
        (docs && docs[b * S + j] !== docs[b * S + qOffset + t])) {
      bias[(b * T + t) * S + j] = -1e30;
    }
  }
  const scores = add(mul(matmul(qh, kh, { transB: true }), 1 / Math.sqrt(HD)), tensor(bias, [B, 1, T, S], 'float64'));
  return permute(matmul(softmax(scores), vh), [0, 2, 1, 3]); // [B, T, NH, HD]
}

test('attention: causal GQA with key padding and KV-cache offset equals the composition; gradients', () => {
  const [B, T, NH, NKV, HD] = [2, 4, 4, 2, 3];
  const q = randn([B, T, NH, HD], rng), k = randn([B, T, NKV, HD], rng), v = randn([B, T, NKV, HD], rng);
  const maskArr = Int32Array.from([1, 1, 1, 1, 1, 1, 0, 0]);
  const keyMask = tensor(maskArr, [B, T], 'int32');
  const fused = attention(q, k, v, { keyMask });
  assert.ok(maxRelErr(fused.dataSync(), attentionComposed(q, k, v, maskArr, true, 0).dataSync()) < 1e-12);
  gradcheck('attention causal+mask', (a, b, c) => attention(a, b, c, { keyMask }), [q, k, v]);
  gradcheck('attention non-causal', (a, b, c) => attention(a, b, c, { causal: false }), [q, k, v]);
  // queries at positions 2..3 of a 4-long key sequence (what a KV cache does)
  const q2 = randn([B, 2, NH, HD], rng);
  assert.ok(maxRelErr(attention(q2, k, v).dataSync(), attentionComposed(q2, k, v, null, true, 2).dataSync()) < 1e-12);
  gradcheck('attention with offset', (a, b, c) => attention(a, b, c), [q2, k, v]);
  // document ids (packing): block-diagonal causal attention
  const docArr = Int32Array.from([0, 0, 1, 1, 0, 1, 1, 2]);
  const documentIds = tensor(docArr, [B, T], 'int32');
  assert.ok(maxRelErr(attention(q, k, v, { documentIds }).dataSync(), attentionComposed(q, k, v, null, true, 0, docArr).dataSync()) < 1e-12);
  gradcheck('attention with documents', (a, b, c) => attention(a, b, c, { documentIds }), [q, k, v]);
  // a sliding window (Mistral): position p sees keys p−w+1 .. p; with a KV offset the window counts absolute positions
  assert.ok(maxRelErr(attention(q, k, v, { window: 3, keyMask }).dataSync(), attentionComposed(q, k, v, maskArr, true, 0, null, 3).dataSync()) < 1e-12);
  assert.ok(maxRelErr(attention(q2, k, v, { window: 2 }).dataSync(), attentionComposed(q2, k, v, null, true, 2, null, 2).dataSync()) < 1e-12);
  assert.ok(maxRelErr(attention(q, k, v, { window: 2 }).dataSync(), attention(q, k, v).dataSync()) > 1e-3, 'the window changes the output');
  gradcheck('attention with a window', (a, b, c) => attention(a, b, c, { window: 2 }), [q, k, v]);
  assert.throws(() => attention(q, k, v, { window: 1.5 }), /attention: window must be a positive integer/);
  // a query with every key masked outputs 0, and no NaN reaches any gradient
  const allMasked = tensor(Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1]), [B, T], 'int32');
  const o = attention(q, k, v, { keyMask: allMasked });
  assert.ok(o.dataSync().subarray(0, T * NH * HD).every((x) => x === 0));
  q.grad = null;
  sum(o).backward();
  assert.ok(q.grad!.dataSync().every(Number.isFinite));
});

test('cross-entropy rows: fused kernel equals −log-softmax at the target; every option has an exact gradient', () => {
  const [N, V] = [6, 5];
  const z = randn([N, V], rng, 2);
  const t = ids([0, 4, -100, 2, 3, 1], [N]);
  const rows = crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }).dataSync();
  const lsm = logSoftmax(z).dataSync(), td = t.dataSync();
  for (let n = 0; n < N; n++) assert.ok(Math.abs(rows[n]! - (td[n] === -100 ? 0 : -lsm[n * V + td[n]!]!)) < 1e-14);
  const t3 = ids([0, 4, 3, 2, 3, 1], [N]); // ignoreIndex 3 marks rows 2 and 4
  for (const labelSmoothing of [0, 0.1]) for (const zLoss of [0, 1e-2]) for (const [ignoreIndex, tt] of [[-100, t], [3, t3]] as const) {
    gradcheck(`CE ls=${labelSmoothing} z=${zLoss} ignore=${ignoreIndex}`,
      (x) => crossEntropyRows(x, tt, { ignoreIndex, labelSmoothing, zLoss }), [z]);
  }
  assert.throws(() => crossEntropyRows(z, ids([0, 5, 1, 1, 1, 1], [N]), { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }),
    /target 5 at row 1 is outside \[0, 5\)/);
});

test('loraAdd: y + s·(xAᵀ)Bᵀ, values and gradients of y, x, A and B', () => {
  const rng = new RNG(31);
  const y = randn([5, 6], rng), x = randn([5, 4], rng), a = randn([3, 4], rng), b = randn([6, 3], rng);
  gradcheck('loraAdd', (y_, x_, a_, b_) => loraAdd(y_, x_, a_, b_, 0.7), [y, x, a, b]);
  const want = add(y, mul(matmul(matmul(x, a, { transB: true }), b, { transB: true }), 0.7));
  assert.ok(maxRelErr(loraAdd(y, x, a, b, 0.7).dataSync(), want.dataSync()) < 1e-14);
  assert.throws(() => loraAdd(y, x, b, a, 1), /expected y \[N, out\], x \[N, in\], A \[r, in\], B \[out, r\]/);
});
