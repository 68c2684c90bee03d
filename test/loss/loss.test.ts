// The loss: semantics pinned down, and each mistake of the tutorial formulation we grew from reproduced next to
// the right answer. Expected values are computed here independently (plain JS log-softmax), never by the code
// under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CrossEntropyLoss, RNG, type Tensor, causalLMLoss, countCausalTargets, crossEntropy, mean, shiftLabels, tensor,
} from '../../src/index.js';
import { gradcheck, randn } from '../gradcheck.js';

const rng = new RNG(3);
const ints = (a: number[], shape: number[]) => tensor(Int32Array.from(a), shape, 'int32');

/** −log softmax(z_row)[y], in plain JS. */
function nll(z: ArrayLike<number>, row: number, V: number, y: number): number {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, z[row * V + j]!);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp(z[row * V + j]! - m);
  return m + Math.log(s) - z[row * V + y]!;
}
const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test('crossEntropy: mean divides by the non-ignored count, sum adds, none is 0 where ignored', () => {
  const [N, V] = [5, 4];
  const z = randn([N, V], rng, 2);
  const y = [1, -100, 3, 0, -100];
  const t = ints(y, [N]);
  const zd = z.dataSync();
  const per = y.map((c, n) => (c === -100 ? 0 : nll(zd, n, V, c)));
  const total = per.reduce((a, b) => a + b, 0);
  close(crossEntropy(z, t, { reduction: 'sum' }).dataSync()[0]!, total);
  close(crossEntropy(z, t).dataSync()[0]!, total / 3);
  assert.deepEqual(Array.from(crossEntropy(z, t, { reduction: 'none' }).dataSync()).map((v) => +v.toFixed(12)), per.map((v) => +v.toFixed(12)));
  close(new CrossEntropyLoss({ reduction: 'sum' }).forward(z, t).dataSync()[0]!, total);
  // [..., V] logits with [...] targets
  close(crossEntropy(tensor(zd, [1, N, V], 'float64'), ints(y, [1, N])).dataSync()[0]!, total / 3);
});

test('crossEntropy: every reduction and option passes a float64 finite-difference check', () => {
  const z = randn([6, 5], rng, 2);
  const t = ints([2, -100, 4, 0, 1, -100], [6]);
  for (const reduction of ['mean', 'sum', 'none'] as const) for (const labelSmoothing of [0, 0.2]) for (const zLoss of [0, 0.05]) {
    gradcheck(`crossEntropy ${reduction} ls=${labelSmoothing} z=${zLoss}`, (x) => crossEntropy(x, t, { reduction, labelSmoothing, zLoss }), [z]);
  }
  const labels = ints([5, 1, 2, 3, -100, -100, 0, 4, 4, 1, 2, -100], [2, 6]);
  const logits = randn([2, 6, 7], rng);
  for (const numItemsInBatch of [undefined, 20]) for (const zLoss of [0, 0.05]) for (const labelSmoothing of [0, 0.1]) {
    gradcheck(`causalLMLoss n=${numItemsInBatch} z=${zLoss} ls=${labelSmoothing}`,
      (x) => causalLMLoss(x, labels, { numItemsInBatch, zLoss, labelSmoothing }), [logits]);
  }
});

test('label smoothing and z-loss follow the documented formulas', () => {
  const [N, V] = [3, 6];
  const z = randn([N, V], rng, 2), zd = z.dataSync();
  const y = [4, 0, 2];
  const eps = 0.1, lam = 0.01;
  let expected = 0;
  for (let n = 0; n < N; n++) {
    const lse = nll(zd, n, V, y[n]!) + zd[n * V + y[n]!]!;
    let meanZ = 0;
    for (let j = 0; j < V; j++) meanZ += zd[n * V + j]! / V;
    expected += (1 - eps) * nll(zd, n, V, y[n]!) + eps * (lse - meanZ) + lam * lse * lse;
  }
  close(crossEntropy(z, ints(y, [N]), { labelSmoothing: eps, zLoss: lam }).dataSync()[0]!, expected / N);
});

test('all targets ignored: mean is 0 with a zero gradient (PyTorch gives NaN), never a silent NaN', () => {
  const z = randn([3, 4], rng);
  const t = ints([-100, -100, -100], [3]);
  for (const reduction of ['mean', 'sum'] as const) {
    z.grad = null;
    const l = crossEntropy(z, t, { reduction });
    assert.equal(l.dataSync()[0], 0);
    l.backward();
    assert.ok(z.grad!.dataSync().every((g) => g === 0));
  }
  assert.ok(crossEntropy(z, t, { reduction: 'none' }).dataSync().every((v) => v === 0));
  const logits = randn([2, 3, 4], rng);
  const labels = ints([7, -100, -100, 1, -100, -100], [2, 3]); // only position 0 is labelled: nothing to predict it from
  assert.equal(countCausalTargets(labels), 0);
  assert.equal(causalLMLoss(logits, labels).dataSync()[0], 0);
  assert.equal(causalLMLoss(logits, labels, { numItemsInBatch: 0 }).dataSync()[0], 0);
});

test('causalLMLoss shifts the labels (not the logits): position t predicts label t+1', () => {
  assert.deepEqual(Array.from(shiftLabels(Int32Array.from([5, 6, 7, 8, 9, 10]), 2, 3)), [6, 7, -100, 9, 10, -100]);
  const [B, T, V] = [2, 4, 5];
  const logits = randn([B, T, V], rng), zd = logits.dataSync();
  const lab = [1, 2, 3, 4, 0, 4, -100, -100];
  let s = 0, n = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) {
    const y = lab[b * T + t + 1]!;
    if (y !== -100) { s += nll(zd, b * T + t, V, y); n++; }
  }
  assert.equal(n, 4);
  close(causalLMLoss(logits, ints(lab, [B, T])).dataSync()[0]!, s / n);
  close(causalLMLoss(logits, ints(lab, [B, T]), { numItemsInBatch: 10 }).dataSync()[0]!, s / 10);
});

test('bad inputs: labels shape, targets out of range, numItemsInBatch too small, bad options', () => {
  const logits = randn([2, 3, 5], rng);
  assert.throws(() => causalLMLoss(logits, ints([1, 2, 3, 4], [2, 2])), /labels must be \[B, T\] matching logits \[B, T, V\]; got logits \[2, 3, 5\] and labels \[2, 2\]/);
  assert.throws(() => causalLMLoss(logits, ints([1, 2, 9, 1, 2, 3], [2, 3])), /target 9 at row 1 is outside \[0, 5\)/);
  assert.throws(() => causalLMLoss(logits, ints([1, 2, 3, 1, 2, 3], [2, 3]), { numItemsInBatch: 2 }), /numItemsInBatch must be an integer ≥ this batch's 4 valid targets/);
  assert.throws(() => crossEntropy(randn([3, 5], rng), ints([1, 2], [2])), /need targets of shape \[3\]/);
  assert.throws(() => crossEntropy(randn([3, 5], rng), tensor([1, 2, 3], [3], 'float64')), /targets must be an int32 tensor/);
  assert.throws(() => crossEntropy(randn([3, 5], rng), ints([1, 2, 3], [3]), { labelSmoothing: 1 }), /labelSmoothing must be in \[0, 1\)/);
});

// ---- the tutorial's mistakes, reproduced ----------------------------------------------------------------------
// A batch of two ragged rows padded on the right with id 0 — which is also a real token in row 0.
const PAD = 0;
const rows = [[3, 0, 5, 2, 1], [4, 2, 6]]; // row 0 contains a real token 0
const [B, T, V] = [2, 5, 7];
const inputIds = rows.flatMap((r) => [...r, ...new Array(T - r.length).fill(PAD)]);
const labelsArr = rows.flatMap((r) => [...r, ...new Array(T - r.length).fill(-100)]);
const logitsT: Tensor = randn([B, T, V], new RNG(11), 2);
const zd = logitsT.dataSync();
/** The right loss, by hand: mean over (b, t) with a real next token of −log p(next). */
function rightLoss(): { sum: number; n: number } {
  let sum = 0, n = 0;
  rows.forEach((r, b) => { for (let t = 0; t + 1 < r.length; t++) { sum += nll(zd, b * T + t, V, r[t + 1]!); n++; } });
  return { sum, n };
}

test('mistake 1: a mask applied after a mean reduction changes nothing; ignoreIndex gives the right mean', () => {
  const shifted = Array.from(shiftLabels(Int32Array.from(inputIds), B, T, PAD)); // tutorial: targets padded with PAD
  const flat = tensor(zd, [B * T, V], 'float64');
  const meanAll = crossEntropy(flat, ints(shifted, [B * T])).dataSync()[0]!; // mean over every position
  const mask: number[] = shifted.map((y) => (y === PAD ? 0 : 1));
  const maskSum = mask.reduce((a, b) => a + b, 0);
  // Tutorial: loss = mean CE; loss = (loss · mask).sum() / mask.sum(): the scalar broadcasts, the mask cancels out.
  const tutorial = (meanAll * maskSum) / maskSum;
  const { sum, n } = rightLoss();
  const ours = causalLMLoss(logitsT, ints(labelsArr, [B, T])).dataSync()[0]!;
  close(ours, sum / n);
  assert.ok(Math.abs(tutorial - sum / n) > 1e-3, 'the tutorial number should be wrong');
});

test('mistake 2: a mask built from the inputs instead of the shifted targets trains on padding', () => {
  // Tutorial: mask = attention mask of the inputs (1 on real input tokens) at position t, but position t
  // predicts token t+1 — so the last real token of a padded row is trained to predict the pad.
  let sum = 0, n = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) {
    if (t >= rows[b]!.length) continue;
    sum += nll(zd, b * T + t, V, inputIds[b * T + t + 1]!); n++;
  }
  const right = rightLoss();
  assert.notEqual(n, right.n); // row 1's last real token is made to predict a pad
  assert.ok(Math.abs(sum / n - right.sum / right.n) > 1e-3);
  close(causalLMLoss(logitsT, ints(labelsArr, [B, T])).dataSync()[0]!, right.sum / right.n);
});

test('mistake 3: padding with a real token id and masking that id drops real tokens; -100 labels keep them', () => {
  const shifted = Array.from(shiftLabels(Int32Array.from(inputIds), B, T, PAD));
  const tutorial = crossEntropy(tensor(zd, [B * T, V], 'float64'), ints(shifted, [B * T]), { ignoreIndex: PAD }).dataSync()[0]!;
  const right = rightLoss();
  assert.ok(Math.abs(tutorial - right.sum / right.n) > 1e-3, 'masking id 0 also masks the real 0 in row 0');
  close(causalLMLoss(logitsT, ints(labelsArr, [B, T])).dataSync()[0]!, right.sum / right.n);
});

test('mistake 4: averaging per-micro-batch means under accumulation is wrong; numItemsInBatch is right', () => {
  const logits = randn([B, T, V], new RNG(12), 2);
  const labels = ints(labelsArr, [B, T]);
  const full = causalLMLoss(logits, labels);
  full.backward();
  const gFull = logits.grad!.dataSync().slice();
  const micro = [0, 1].map((b) => ({
    logits: tensor(logits.dataSync().subarray(b * T * V, (b + 1) * T * V), [1, T, V], 'float64').requireGrad(),
    labels: ints(labelsArr.slice(b * T, (b + 1) * T), [1, T]),
  }));
  // Tutorial: mean per micro-batch, averaged over micro-batches.
  const tutorial = micro.map((m) => causalLMLoss(m.logits, m.labels).dataSync()[0]! / 2).reduce((a, b) => a + b);
  assert.ok(Math.abs(tutorial - full.dataSync()[0]!) > 1e-3, 'per-micro-batch mean differs when valid counts differ (4 vs 2)');
  // Ours: each micro-batch divided by the step's valid-target count.
  const numItemsInBatch = countCausalTargets(labels);
  assert.equal(numItemsInBatch, 6);
  let total = 0;
  micro.forEach((m) => { const l = causalLMLoss(m.logits, m.labels, { numItemsInBatch }); total += l.dataSync()[0]!; l.backward(); });
  close(total, full.dataSync()[0]!);
  const gAcc = [...micro[0]!.logits.grad!.dataSync(), ...micro[1]!.logits.grad!.dataSync()];
  gAcc.forEach((g, i) => close(g, gFull[i]!, 1e-12));
  void mean;
});
