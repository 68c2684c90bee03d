// The conformance suite: written once, run for every backend (one line per backend in test/conformance/*.test.ts).
//
//   ops        every op forward and backward against ref (awkward shapes, masks, documents, GQA, KV offsets, fused
//              loss options), outside and inside a step scope; on ref itself: float64 finite-difference checks
//   kernels    the multi-tensor kernels (global norm, clipping, Adam/SGD over a group, the non-finite gate) vs ref
//   hf         the Hugging Face parity fixtures: loss, logits, every gradient, fused loss, gradient accumulation, greedy tokens
//   trajectory 30 optimizer steps equal to PyTorch's (losses, grad norms, learning rates)
//   trainer    a Trainer step equals ref's; a full run (2 micro-batches, clipping, AdamW, schedule, evaluation,
//              checkpoint, resume) with the number of device reads per step counted where the backend counts them;
//              non-finite gradients stop or skip without touching the weights
//   checkpointing  gradient checkpointing gives the loss and every gradient of the plain graph, bit for bit (each family, fused
//              loss and not, accumulation, LoRA with dropout, a Trainer run)
//
// Everything here reads the device asynchronously (await t.data()): the strict backend has no synchronous read.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, Adam, Muon, muonParamGroups, type Backend, PeftModel, type TrainableModel, type LlamaConfigInput, countTargets, getPeftModel, kernel, toTensors, openScope, type Batch, LRScheduler, LlamaForCausalLM, NonFiniteError, RNG, SGD, type Tensor, Trainer, add, attention,
  clamp, clipGradNorm, clipGradValue, countCausalTargets, crossEntropy, crossEntropyRows, decayGroups, div, embedding, evaluate, globalNorm,
  keep, linearCrossEntropy, loraAdd, logSoftmax, logsumexp, matmul, mul, parseSafetensors, type RawTensor, refBackend, reshape, rmsNorm, rope,
  silu, softmax, square, sub, sum, swiglu, tensor, warmupCosine, withScope,
} from '../../src/index.js';
import { loadCheckpoint, loadPretrained, saveCheckpoint } from '../../src/node.js';
import { noGrad } from '../../src/index.js';
import { halfCheckpoint } from './half.js';
import { fixturePath, parityFixtures, relErr, relL2 } from '../helpers.js';
import { gradcheck } from '../gradcheck.js';
import { ListSource, cfg, makeTrainer, randomBatches } from '../train/util.js';

export interface ConformanceSpec {
  /** Shown in the test names. */
  name: string;
  /** Starts (and registers) the backend; called once before the suite's tests. */
  setup: () => Promise<Backend>;
  teardown?: () => Promise<void>;
  /** The oracle itself (ref): ops are checked by float64 finite differences instead of against ref. */
  oracle?: boolean;
  /** Sections to leave out (say why where you do). */
  skip?: readonly ('ops' | 'kernels' | 'hf' | 'trajectory' | 'trainer' | 'lora' | 'checkpointing')[];
  /**
   * The backend converts half weights a block at a time and runs its BLAS per block (native), so a half model's
   * numbers are ≤ 1e-5 from the widened model's instead of bit-identical.
   */
  halfBlocks?: boolean;
  /** A message skips the whole suite (node:test's skip), e.g. a backend that needs a library this machine lacks. */
  skipAll?: string | false;
}

// ---- ops ----------------------------------------------------------------------------------------------------

/** An op input: float data gets a gradient; int data (ids, targets, masks) does not. */
type Input = { data: Float32Array | Int32Array; shape: number[] };
interface OpCase { name: string; f: (...xs: Tensor[]) => Tensor; inputs: Input[]; tol?: number }

function opCases(rng: RNG): OpCase[] {
  const cases: OpCase[] = [];
  const add_ = (name: string, f: OpCase['f'], inputs: Input[], tol?: number) => cases.push({ name, f, inputs, tol });
  const randf = (shape: number[], scale = 1): Input => ({ data: Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => rng.normal() * scale), shape });
  const ints = (shape: number[], f: (i: number) => number): Input => ({ data: Int32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, (_, i) => f(i)), shape });

  // matmul: M, N, K not multiples of any tile, 1, K = 0 (zeros), large K, every transpose layout; batched and broadcast
  const sizes: [number, number, number][] = [[1, 1, 1], [1, 7, 5], [5, 1, 3], [3, 5, 0], [3, 12, 4], [4, 13, 9], [37, 29, 600], [50, 70, 1100], [200, 25, 33]];
  for (const [M, N, K] of sizes) {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      add_(`matmul ${M}x${N}x${K} tA=${tA} tB=${tB}`, (x, y) => matmul(x, y, { transA: tA, transB: tB }), [randf(tA ? [K, M] : [M, K]), randf(tB ? [N, K] : [K, N])]);
    }
  }
  for (const [tA, tB] of [[false, false], [true, true]] as const) {
    add_(`matmul 301x203x517 tA=${tA} tB=${tB} (threaded by default)`, (x, y) => matmul(x, y, { transA: tA, transB: tB }),
      [randf(tA ? [517, 301] : [301, 517]), randf(tB ? [203, 517] : [517, 203])], 5e-5);
  }
  add_('matmul batched', (x, y) => matmul(x, y), [randf([3, 7, 9]), randf([3, 9, 14])]);
  add_('matmul batched tA tB', (x, y) => matmul(x, y, { transA: true, transB: true }), [randf([2, 3, 9, 7]), randf([2, 3, 14, 9])]);
  add_('matmul broadcast 2-D B', (x, y) => matmul(x, y, { transB: true }), [randf([2, 3, 5, 8]), randf([13, 8])]);
  add_('matmul broadcast 2-D B, tA', (x, y) => matmul(x, y, { transA: true }), [randf([4, 8, 5]), randf([8, 13])]);
  add_('matmul broadcast A', (x, y) => matmul(x, y), [randf([6, 11]), randf([4, 11, 10])]);
  add_('matmul broadcast both', (x, y) => matmul(x, y), [randf([2, 1, 6, 11]), randf([1, 3, 11, 10])]);

  const B = 2, T = 7, C = 24, NH = 4, NKV = 2, HD = 6, V = 19;
  add_('rmsNorm', (x, w) => rmsNorm(x, w, 1e-5), [randf([B, T, C]), randf([C])]);
  add_('rmsNorm large rows', (x, w) => rmsNorm(x, w, 1e-6), [randf([67, 288]), randf([288])]);
  const invFreq = Float32Array.from({ length: HD / 2 }, (_, j) => 1 / 10000 ** ((2 * j) / HD));
  add_('rope', (x, p) => rope(x, p, { invFreq, attentionScaling: 1 }), [randf([B, T, NH, HD]), ints([B, T], (i) => (i % T) + (i >= T ? 3 : 0))]);
  const invFreq16 = Float32Array.from({ length: 8 }, (_, j) => 1 / 500000 ** ((2 * j) / 16));
  add_('rope HD 16, scaling 1.2, packed positions', (x, p) => rope(x, p, { invFreq: invFreq16, attentionScaling: 1.2 }),
    [randf([2, 9, 5, 16]), ints([2, 9], (i) => (i * 7) % 11)]);
  const q = randf([B, T, NH, HD]), k = randf([B, T, NKV, HD]), v = randf([B, T, NKV, HD]);
  add_('attention causal GQA', (a, b, c) => attention(a, b, c), [q, k, v]);
  add_('attention key mask', (a, b, c, m) => attention(a, b, c, { keyMask: m }), [q, k, v, ints([B, T], (i) => (i % T < 2 && i >= T ? 0 : 1))]);
  add_('attention documents', (a, b, c, d) => attention(a, b, c, { documentIds: d }), [q, k, v, ints([B, T], (i) => ((i % T) < 3 ? 0 : 1))]);
  add_('attention non-causal', (a, b, c) => attention(a, b, c, { causal: false }), [q, k, v]);
  add_('attention KV offset (T < S)', (a, b, c) => attention(a, b, c), [randf([B, 3, NH, HD]), k, v]);
  add_('attention sliding window 3, key mask', (a, b, c, m) => attention(a, b, c, { window: 3, keyMask: m }), [q, k, v, ints([B, T], (i) => (i % T < 2 && i >= T ? 0 : 1))]);
  add_('attention sliding window 2, KV offset (T < S)', (a, b, c) => attention(a, b, c, { window: 2 }), [randf([B, 3, NH, HD]), k, v]);
  add_('attention HD 16, T 37, NKV 1', (a, b, c) => attention(a, b, c), [randf([2, 37, 4, 16]), randf([2, 37, 1, 16]), randf([2, 37, 1, 16])]);
  {
    // long rows (blocked kernels): 5 query blocks of 32, HD 12; masks, documents, non-causal, KV offset, scales
    const TL = 150, qL = randf([2, TL, 4, 12]), kL = randf([2, TL, 2, 12]), vL = randf([2, TL, 2, 12]);
    const pad = ints([2, TL], (i) => (i >= TL && i % TL < 30 ? 0 : 1));
    add_('attention T 150, causal GQA', (a, b, c) => attention(a, b, c), [qL, kL, vL]);
    add_('attention T 150, left padding (first rows see no key)', (a, b, c, m) => attention(a, b, c, { keyMask: m }),
      [qL, kL, vL, ints([2, TL], (i) => (i >= TL && i % TL < 70 ? 0 : 1))]);
    add_('attention T 150, documents', (a, b, c, d) => attention(a, b, c, { documentIds: d }), [qL, kL, vL, ints([2, TL], (i) => Math.floor((i % TL) / 41))]);
    add_('attention T 150, non-causal', (a, b, c) => attention(a, b, c, { causal: false }), [qL, kL, vL]);
    add_('attention T 20 < S 150 (KV offset)', (a, b, c) => attention(a, b, c), [randf([2, 20, 4, 12]), kL, vL]);
    add_('attention T 150, sliding window 37, documents', (a, b, c, d) => attention(a, b, c, { window: 37, documentIds: d }),
      [qL, kL, vL, ints([2, TL], (i) => Math.floor((i % TL) / 61))]);
    add_('attention T 20 < S 150, sliding window 50', (a, b, c) => attention(a, b, c, { window: 50 }), [randf([2, 20, 4, 12]), kL, vL]);
    add_('attention T 150, key mask, scale −0.3', (a, b, c, m) => attention(a, b, c, { keyMask: m, scale: -0.3 }), [qL, kL, vL, pad]);
    add_('attention T 150, key mask, scale 0', (a, b, c, m) => attention(a, b, c, { keyMask: m, scale: 0 }), [qL, kL, vL, pad]);
  }
  const tgt = ints([B * T], (i) => (i % 5 === 0 ? -100 : (i * 7) % V));
  add_('crossEntropy rows', (z, t) => crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }), [randf([B * T, V], 3), tgt]);
  add_('crossEntropy rows, smoothing + z-loss', (z, t) => crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0.1, zLoss: 1e-3 }), [randf([B * T, V], 3), tgt]);
  add_('crossEntropy mean (torch semantics)', (z, t) => crossEntropy(z, t), [randf([B * T, V], 3), tgt]);
  add_('crossEntropy V 1001', (z, t) => crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }), [randf([33, 1001], 4), ints([33], (i) => (i * 37) % 1001)]);
  add_('embedding (repeated ids)', (w, i) => embedding(w, i), [randf([V, C]), ints([B, T], (i) => (i * 5) % 4)]);
  add_('embedding large', (w, i) => embedding(w, i), [randf([301, 40]), ints([3, 57], (i) => (i * 37) % 301)]);
  add_('softmax', (x) => softmax(x), [randf([B * T, V], 2)]);
  add_('logSoftmax', (x) => logSoftmax(x), [randf([B * T, V], 2)]);
  add_('logsumexp', (x) => logsumexp(x), [randf([B * T, V], 2)]);
  const big = [3, 7, 53]; // ≥ 1024 elements, not a multiple of 4
  add_('silu(a)·b', (a, b) => mul(silu(a), b), [randf(big), randf(big)]);
  add_('swiglu', (a, b) => swiglu(a, b), [randf(big, 3), randf(big)]);
  add_('clamp', (x) => clamp(x, -0.5, 0.8), [randf(big)]);
  add_('clamp small', (x) => clamp(x, -0.5, 0.8), [randf([4, 5])]);
  for (const [name, f] of [['add', add], ['sub', sub], ['mul', mul], ['div', div]] as const) {
    const second = name === 'div' ? { data: Float32Array.from({ length: 1113 }, () => 0.5 + rng.uniform()), shape: big } : randf(big);
    add_(`${name} same shape`, (a, b) => f(a, b), [randf(big), second]);
    add_(`${name} scalar`, (a) => f(a, 1.7), [randf(big)]);
  }
  add_('add broadcast', (a, b) => add(a, b), [randf([B, T, C]), randf([C])]);
  add_('sum of squares', (x) => sum(square(x)), [randf([37, 211])]);
  add_('sum of a 4-D tensor', (x) => sum(x), [randf([3, 5, 7, 41])]);
  add_('sum over axes', (x) => sum(x, [0, 2]), [randf([3, 5, 7])]);
  add_('loraAdd y + s·(xAᵀ)Bᵀ', (y, x, a, b) => loraAdd(y, x, a, b, 1.5), [randf([B * T, 2 * C]), randf([B * T, C]), randf([4, C]), randf([2 * C, 4])]);
  add_('linear x·Wᵀ', (x, w) => reshape(matmul(reshape(x, [B * T, C]), w, { transB: true }), [B, T, 2 * C]), [randf([B, T, C]), randf([2 * C, C])]);
  const lceT = ints([33], (i) => (i % 4 === 0 ? -100 : (i * 13) % 301));
  const lceIn = () => [randf([33, 40]), randf([301, 40], 0.3), lceT];
  add_('linearCrossEntropy mean, chunk 5', (h, w, t) => linearCrossEntropy(h, w, t, { chunkSize: 5 }), lceIn());
  add_('linearCrossEntropy sum, smoothing + z-loss', (h, w, t) => linearCrossEntropy(h, w, t, { reduction: 'sum', labelSmoothing: 0.1, zLoss: 1e-3, chunkSize: 64 }), lceIn());
  add_('linearCrossEntropy none, chunk 7', (h, w, t) => linearCrossEntropy(h, w, t, { reduction: 'none', chunkSize: 7 }), lceIn());
  add_('linearCrossEntropy softcap', (h, w, t) => linearCrossEntropy(h, w, t, { softcap: 5 }), lceIn());
  add_('linearCrossEntropy numItemsInBatch', (h, w, t) => linearCrossEntropy(h, w, t, { numItemsInBatch: 60 }), lceIn());
  return cases;
}

const isFloat = (x: Input) => x.data instanceof Float32Array;

/** Output and input gradients of sum(f(xs) · W) on one backend (W: fixed weights). Reads asynchronously. */
async function runOn(be: Backend, c: OpCase, w: Float32Array): Promise<{ out: Float32Array; grads: (Float32Array | null)[] }> {
  const xs = c.inputs.map((x) => {
    const t = tensor(x.data.slice(), x.shape, isFloat(x) ? 'float32' : 'int32', be);
    return isFloat(x) ? t.requireGrad() : t;
  });
  const y = c.f(...xs);
  assert.equal(y.backend, be, `${c.name}: the op stays on its backend`);
  sum(mul(y, tensor(w, [...y.shape], 'float32', be))).backward();
  const out = (await y.data()) as Float32Array;
  const grads = await Promise.all(xs.map(async (x) => (x.requiresGrad ? (await x.grad!.data()) as Float32Array : null)));
  return { out, grads };
}

async function checkOpAgainstRef(be: Backend, c: OpCase, rng: RNG): Promise<void> {
  const tol = c.tol ?? 2e-5;
  const probe = c.f(...c.inputs.map((x) => tensor(x.data, x.shape, isFloat(x) ? 'float32' : 'int32', refBackend)));
  const w = Float32Array.from({ length: probe.size }, () => rng.normal());
  const r = await runOn(refBackend, c, w);
  // outside a scope, and inside one (where a backend with its own memory keeps results resident)
  for (const [how, run] of [['', () => runOn(be, c, w)], [' (in a scope)', () => withScope(be, () => runOn(be, c, w))]] as const) {
    const o = await run();
    const e = relErr(o.out, r.out);
    assert.ok(e <= tol, `${c.name}${how}: forward rel err ${e.toExponential(2)} > ${tol}`);
    r.grads.forEach((g, i) => {
      if (!g) return;
      const eg = relErr(o.grads[i]!, g);
      assert.ok(eg <= tol, `${c.name}${how}: gradient of input ${i} rel err ${eg.toExponential(2)} > ${tol}`);
    });
  }
}

/** The oracle's own check: float64 finite differences (inputs small enough for them). */
function gradcheckOp(c: OpCase): boolean {
  const floats = c.inputs.filter(isFloat).reduce((n, x) => n + x.data.length, 0);
  if (floats > 700) return false;
  const xs = c.inputs.map((x) => (isFloat(x) ? tensor(Float64Array.from(x.data), x.shape, 'float64').requireGrad() : tensor(x.data, x.shape, 'int32')));
  gradcheck(c.name, c.f, xs, { tol: 1e-6 });
  return true;
}

// ---- multi-tensor kernels --------------------------------------------------------------------------------

function paramsOn(be: Backend, host: Float32Array[], shapes: number[][]): Tensor[] {
  return host.map((h, i) => keep(tensor(h, shapes[i]!, 'float32', be).requireGrad()));
}

async function values(ts: Tensor[]): Promise<number[]> {
  const out: number[] = [];
  for (const t of ts) out.push(...(await t.data()));
  return out;
}

async function kernelChecks(be: Backend, rng: RNG): Promise<void> {
  const shapes = [[5], [1500], [4097], [1], [31, 67]];
  const host = () => shapes.map((s) => Float32Array.from({ length: s.reduce((p, d) => p * d, 1) }, () => rng.normal()));
  const p0 = host(), g0 = host();

  // global norm (2, Infinity, 3) and clipping, against ref
  for (const normType of [2, Infinity, 3]) {
    const a = globalNorm(g0.map((g, i) => tensor(g, shapes[i]!, 'float32', be)), normType);
    const r = globalNorm(g0.map((g, i) => tensor(g, shapes[i]!, 'float32', refBackend)), normType);
    const e = relErr(await a.data(), await r.data());
    assert.ok(e <= 2e-6, `globalNorm p=${normType}: rel err ${e}`);
  }
  for (const maxNorm of [0.5, 1e6]) {
    const on = (b: Backend) => { const ps = paramsOn(b, p0, shapes); ps.forEach((p, i) => { p.grad = keep(tensor(g0[i]!, shapes[i]!, 'float32', b)); }); return ps; };
    const a = on(be), r = on(refBackend);
    const na = await clipGradNorm(a, maxNorm), nr = await clipGradNorm(r, maxNorm);
    assert.ok(Math.abs(na - nr) <= 2e-6 * nr, `clipGradNorm total ${na} vs ${nr}`);
    const e = relErr(await values(a.map((p) => p.grad!)), await values(r.map((p) => p.grad!)));
    assert.ok(e <= 2e-6, `clipGradNorm ${maxNorm}: clipped gradients rel err ${e}`);
    clipGradValue(a, 0.3); clipGradValue(r, 0.3);
    assert.deepEqual(await values(a.map((p) => p.grad!)), await values(r.map((p) => p.grad!)), 'clipGradValue');
  }
  {
    // a NaN gradient: the norm is NaN, clipping leaves every gradient as it was
    const gs = g0.map((g) => g.slice()); gs[2]![17] = NaN;
    const ps = paramsOn(be, p0, shapes); ps.forEach((p, i) => { p.grad = keep(tensor(gs[i]!, shapes[i]!, 'float32', be)); });
    assert.ok(Number.isNaN(await clipGradNorm(ps, 1)), 'NaN norm');
    const after = await values(ps.map((p) => p.grad!));
    assert.deepEqual(after.map((x) => (Number.isNaN(x) ? 'NaN' : x)), gs.flatMap((g) => Array.from(g)).map((x) => (Number.isNaN(x) ? 'NaN' : x)));
  }

  // optimizers over a whole group (sizes below and above any threading threshold), several steps, against ref
  const optimizers: [string, (ps: Tensor[]) => AdamW | Adam | SGD][] = [
    ['AdamW', (ps) => new AdamW([{ params: ps.slice(0, 3) }, { params: ps.slice(3), weightDecay: 0 }], { lr: 1e-2, betas: [0.9, 0.95], weightDecay: 0.1 })],
    ['Adam + L2', (ps) => new Adam(ps, { lr: 1e-2, weightDecay: 0.05 })],
    ['AdamW amsgrad', (ps) => new AdamW(ps, { lr: 1e-2, amsgrad: true })],
    ['SGD nesterov', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
    ['SGD dampening', (ps) => new SGD(ps, { lr: 0.1, momentum: 0.8, dampening: 0.3 })],
  ];
  for (const [name, make] of optimizers) {
    const a = paramsOn(be, p0, shapes), r = paramsOn(refBackend, p0, shapes);
    const oa = make(a), or = make(r);
    for (let step = 0; step < 3; step++) {
      const gs = host();
      a.forEach((p, i) => { p.grad = keep(tensor(gs[i]!, shapes[i]!, 'float32', be)); });
      r.forEach((p, i) => { p.grad = keep(tensor(gs[i]!, shapes[i]!, 'float32', refBackend)); });
      if (step === 1) {
        // a non-finite gate skips the whole update on the device; cancelStep() restores the step counts
        const before = await values(a);
        oa.step({ gate: tensor(NaN, [], 'float32', be) });
        oa.cancelStep();
        assert.deepEqual(await values(a), before, `${name}: a NaN gate leaves the parameters as they were`);
      }
      oa.step({ gate: tensor(0, [], 'float32', be) }); or.step();
    }
    const e = relErr(await values(a), await values(r));
    assert.ok(e <= 1e-5, `${name}: parameters after 3 steps rel err ${e}`);
    const sa = await oa.stateDict(), sr = await or.stateDict();
    assert.deepEqual(Object.keys(sa.state), Object.keys(sr.state));
    for (const [i, st] of Object.entries(sr.state)) {
      for (const [k, v] of Object.entries(st)) {
        const w = sa.state[Number(i)]![k]!;
        if (typeof v === 'number') assert.equal(w, v, `${name}: state ${i}.${k}`);
        else {
          const e = relErr((w as { data: Float32Array }).data, v.data);
          assert.ok(e <= 1e-5, `${name}: state ${i}.${k}: rel err ${e}`);
        }
      }
    }
  }
}

/** Muon (with AdamW groups) over matrices of several shapes (two of one shape: one stacked Newton–Schulz run), against ref. */
async function muonKernelChecks(be: Backend, rng: RNG): Promise<void> {
  const shapes = [[31, 67], [67, 31], [31, 67], [64, 64], [8, 200], [300]];
  const host = () => shapes.map((s) => Float32Array.from({ length: s.reduce((p, d) => p * d, 1) }, () => rng.normal()));
  const p0 = host();
  for (const nesterov of [true, false]) {
    const make = (ps: Tensor[]) => new Muon([{ params: ps.slice(0, 5) }, { params: ps.slice(5), useMuon: false, lr: 1e-2, weightDecay: 0 }],
      { lr: 0.02, nesterov, weightDecay: nesterov ? 0.1 : 0 });
    const a = paramsOn(be, p0, shapes), r = paramsOn(refBackend, p0, shapes);
    const oa = make(a), or = make(r);
    for (let step = 0; step < 3; step++) {
      const gs = host();
      a.forEach((p, i) => { p.grad = keep(tensor(gs[i]!, shapes[i]!, 'float32', be)); });
      r.forEach((p, i) => { p.grad = keep(tensor(gs[i]!, shapes[i]!, 'float32', refBackend)); });
      if (step === 1) {
        const before = await values(a);
        const bufsBefore = (await oa.stateDict()).state;
        oa.step({ gate: tensor(NaN, [], 'float32', be) });
        oa.cancelStep();
        assert.deepEqual(await values(a), before, `Muon: a NaN gate leaves the parameters as they were`);
        assert.deepEqual((await oa.stateDict()).state, bufsBefore, 'Muon: a NaN gate leaves momentum buffers and step counts as they were');
      }
      oa.step({ gate: tensor(0, [], 'float32', be) }); or.step();
    }
    const va = await values(a);
    assert.ok(va.every(Number.isFinite), 'Muon: every parameter is finite');
    const e = relErr(va, await values(r));
    assert.ok(e <= 1e-5, `Muon (nesterov ${nesterov}): parameters after 3 steps rel err ${e}`);
    const sa = await oa.stateDict(), sr = await or.stateDict();
    for (const [i, st] of Object.entries(sr.state)) {
      for (const [k, v] of Object.entries(st)) {
        const w = sa.state[Number(i)]![k]!;
        if (typeof v === 'number') assert.equal(w, v, `Muon: state ${i}.${k}`);
        else assert.ok(relErr((w as { data: Float32Array }).data, v.data) <= 1e-5, `Muon: state ${i}.${k}`);
      }
    }
  }
}

// ---- HF parity ------------------------------------------------------------------------------------------

/** HF parity on fixture `name`; float64 (ref) pins the loss to lossTol (the float64 references allow 1e-12). */
export async function checkHfParity(be: Backend, name: string, o: { fusedLoss?: boolean; dtype?: 'float32' | 'float64'; lossTol?: number } = {}): Promise<void> {
  const fusedLoss = o.fusedLoss ?? false;
  const ref = parseSafetensors(readFileSync(fixturePath(name, 'reference.safetensors')), name).tensors;
  const asT = (r: RawTensor) => tensor(r.data, r.shape, r.dtype, be);
  const model = await loadPretrained(fixturePath(name), { backend: be, dtype: o.dtype ?? 'float32' });
  const ids = asT(ref.get('input_ids')!), mask = asT(ref.get('attention_mask')!), labels = asT(ref.get('labels')!);
  const [B, T] = ids.shape as [number, number], V = model.config.vocabSize;
  const { logits } = model.forward(ids, { attentionMask: mask });
  const { loss } = model.forward(ids, { attentionMask: mask, labels, fusedLoss });
  assert.equal(loss!.backend, be);
  const lossVal = await loss!.item(), refLoss = ref.get('loss')!.data[0]!;
  assert.ok(Math.abs(lossVal - refLoss) <= (o.lossTol ?? 1e-5), `${name}: loss ${lossVal} vs HF ${refLoss}`);
  const lg = await logits.data(), refLg = ref.get('logits')!.data, m = ref.get('attention_mask')!.data;
  let maxAbs = 0;
  for (let i = 0; i < B * T; i++) {
    if (m[i] !== 1) continue;
    for (let v = 0; v < V; v++) maxAbs = Math.max(maxAbs, Math.abs(lg[i * V + v]! - refLg[i * V + v]!));
  }
  assert.ok(maxAbs <= 1e-4, `${name}: logits max-abs diff ${maxAbs}`);
  loss!.backward();
  const full = new Map<string, ArrayLike<number>>();
  for (const [pname, p] of model.namedParameters()) {
    const g = ref.get(`grad.${pname}`);
    assert.ok(g, `${name}: no reference gradient for ${pname}`);
    const got = await p.grad!.data();
    const err = relL2(got, g.data);
    assert.ok(err <= 1e-4, `${name}: gradient of ${pname}: rel L2 error ${err}`);
    full.set(pname, got);
  }
  // gradient accumulation: rows [0, 1) and [1, B), each normalised by the step's valid-target count
  model.zeroGrad();
  const nItems = countCausalTargets(labels);
  for (const [a, b] of [[0, 1], [1, B]] as const) {
    const host = (k: string) => { const x = ref.get(k)!; return tensor(x.data.slice(a * T, b * T), [b - a, T], 'int32', be); }; // rows [a, b)
    model.forward(host('input_ids'), { attentionMask: host('attention_mask'), labels: host('labels'), numItemsInBatch: nItems, fusedLoss }).loss!.backward();
  }
  for (const [pname, p] of model.namedParameters()) {
    const err = relL2(await p.grad!.data(), full.get(pname)!);
    assert.ok(err <= 1e-5, `${name}: accumulated gradient of ${pname} differs from the full batch: rel ${err}`);
  }
  const out = await model.generate(asT(ref.get('greedy_prompt')!), { maxNewTokens: 12, temperature: 0 });
  assert.deepEqual(Array.from(await out.data()), Array.from(ref.get('greedy_out')!.data), `${name}: greedy tokens`);
}

// ---- the 30-step PyTorch trajectory ----------------------------------------------------------------------

async function checkTrajectory(be: Backend): Promise<void> {
  const dir = fixturePath('train-parity');
  const hyper = JSON.parse(readFileSync(`${dir}/hyper.json`, 'utf8'));
  const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')).steps as { loss: number; grad_norm: number; lr: number; n_items: number }[];
  const raw = parseSafetensors(readFileSync(`${dir}/batches.safetensors`)).tensors;
  const batches: Batch[] = [];
  for (let s = 0; s < hyper.steps; s++) for (let m = 0; m < hyper.microBatches; m++) {
    const g = (k: string) => raw.get(`step${s}.micro${m}.${k}`)!.data as Int32Array;
    batches.push({ shape: [hyper.microBatchSize, hyper.seqLen], inputIds: g('input_ids'), attentionMask: g('attention_mask'), labels: g('labels') });
  }
  const model = await loadPretrained(dir, { backend: be });
  const optimizer = new AdamW(decayGroups(model.namedParameters(), hyper.weightDecay), { lr: hyper.lr, betas: hyper.betas, eps: hyper.eps });
  const { warmupSteps, totalSteps, minLrRatio } = hyper.schedule;
  const scheduler = new LRScheduler(optimizer, warmupCosine({ warmupSteps, totalSteps, minLrRatio }));
  const trainer = new Trainer({
    model, optimizer, scheduler, train: new ListSource(batches), gradAccumSteps: hyper.microBatches, maxSteps: hyper.steps,
    clipGradNorm: hyper.clipGradNorm,
  });
  trainer.on('step', (m) => {
    const e = expected[m.step - 1]!;
    assert.equal(m.targets, e.n_items, `step ${m.step}: valid targets`);
    const dl = Math.abs(m.loss - e.loss) / e.loss, dn = Math.abs(m.gradNorm - e.grad_norm) / e.grad_norm;
    assert.ok(dl <= 1e-4, `step ${m.step}: loss ${m.loss} vs PyTorch ${e.loss} (rel ${dl})`);
    assert.ok(dn <= 1e-4, `step ${m.step}: grad norm ${m.gradNorm} vs PyTorch ${e.grad_norm} (rel ${dn})`);
    // exact, but for the last bit of cos (V8's Math.cos vs glibc's)
    assert.ok(Math.abs(m.lr - e.lr) <= 2 ** -52 * e.lr, `step ${m.step}: lr ${m.lr} vs PyTorch ${e.lr}`);
  });
  await trainer.train();
  assert.equal(trainer.step, 30);
}

// ---- the Trainer -----------------------------------------------------------------------------------------

/** Counts the backend's reads where it counts them (the strict backend), else null. */
const readsOf = (be: Backend): number | null => ((be as { reads?: number }).reads ?? null);

async function trainerEqualsRef(be: Backend): Promise<void> {
  const batches = randomBatches(6, 2, 9, 48, 21);
  const run = async (b: Backend) => {
    const t = makeTrainer(new LlamaForCausalLM(cfg, { seed: 3, backend: b }), new ListSource(batches), { maxSteps: 3 });
    const ms: number[][] = [];
    t.on('step', (m) => ms.push([m.loss, m.gradNorm, m.lr]));
    await t.train();
    return { ms, weights: await values(t.model.parameters()) };
  };
  const a = await run(be), r = await run(refBackend);
  a.ms.forEach((m, i) => {
    assert.ok(relErr(m, r.ms[i]!) <= 1e-5, `step ${i + 1}: [loss, norm, lr] ${m} vs ref ${r.ms[i]}`);
  });
  const e = relErr(a.weights, r.weights);
  assert.ok(e <= 1e-5, `weights after 3 steps: rel err ${e}`);
}

async function fullRun(be: Backend): Promise<void> {
  const batches = randomBatches(5, 2, 9, 48, 11);
  const val = randomBatches(3, 2, 9, 48, 12).map((b) => ({ ...b, targetBytes: 40 }));
  const make = (model: LlamaForCausalLM) => makeTrainer(model, new ListSource(batches), {
    evalEvery: 4, evalData: () => val, checkpointWriter: saveCheckpoint,
  });
  const full = make(new LlamaForCausalLM(cfg, { seed: 4, backend: be }));
  const lossesFull: number[] = [];
  const reads: number[] = [];
  let evals = 0;
  full.on('step', (m) => lossesFull.push(m.loss)).on('eval', (r) => {
    evals++;
    assert.ok(Number.isFinite(r.loss) && r.bitsPerByte! > 0 && r.tokens > 0, `evaluation ${JSON.stringify(r)}`);
  });
  let before = readsOf(be);
  full.on('step', () => { const now = readsOf(be); if (now !== null) { reads.push(now - before!); before = now; } });
  await full.train();
  assert.equal(full.step, 8);
  assert.equal(evals, 2);
  assert.ok(lossesFull[7]! < lossesFull[0]!, `the loss falls: ${lossesFull}`);
  if (readsOf(be) !== null) {
    // one read per optimizer step ([losses, norm]); the evaluation after step 4 is one more, counted with step 5
    assert.deepEqual(reads, [1, 1, 1, 1, 2, 1, 1, 1], 'device reads per training step');
  }
  // checkpoint at step 3, resume on the same backend: bit-identical to the uninterrupted run
  const root = mkdtempSync(join(tmpdir(), 'llamatrain-conf-'));
  const first = make(new LlamaForCausalLM(cfg, { seed: 4, backend: be }));
  const lossesA: number[] = [];
  first.on('step', (m) => lossesA.push(m.loss));
  await first.train(3);
  await first.saveCheckpoint(root);
  const { model, state } = await loadCheckpoint(root, { backend: be });
  assert.equal(model.backend, be);
  const resumed = make(model);
  resumed.loadState(state);
  const lossesB: number[] = [];
  resumed.on('step', (m) => lossesB.push(m.loss));
  await resumed.train();
  assert.deepEqual([...lossesA, ...lossesB], lossesFull);
  // evaluate on its own: one read for the whole set
  const r0 = readsOf(be);
  const ev = await evaluate(model, val);
  if (r0 !== null) assert.equal(readsOf(be)! - r0, 1, 'evaluate reads once');
  assert.ok(ev.perplexity > 1);
}

/** A Trainer run with Muon for the hidden matrices (AdamW for the rest): finite, equal to ref, one read per step,
 *  and resumed from a checkpoint bit-identically. */
async function muonTrainer(be: Backend): Promise<void> {
  const batches = randomBatches(5, 2, 9, 48, 13);
  const make = (model: LlamaForCausalLM) => makeTrainer(model, new ListSource(batches), {
    optimizer: new Muon(muonParamGroups(model.namedParameters(), { muonLr: 0.02, muonWeightDecay: 0.01, adamLr: 1e-2, adamWeightDecay: 0.1 })),
  });
  const run = async (b: Backend, steps: number) => {
    const t = make(new LlamaForCausalLM(cfg, { seed: 6, backend: b }));
    const losses: number[] = [];
    const reads: number[] = [];
    let before = readsOf(b);
    t.on('step', (m) => {
      losses.push(m.loss, m.gradNorm);
      const now = readsOf(b);
      if (now !== null) { reads.push(now - before!); before = now; }
    });
    await t.train(steps);
    return { t, losses, reads };
  };
  const full = await run(be, 8);
  const weights = await values(full.t.model.parameters());
  assert.ok(full.losses.every(Number.isFinite) && weights.every(Number.isFinite), 'Muon run: losses, norms and weights are finite');
  assert.ok(full.losses[14]! < full.losses[0]!, `Muon run: the loss falls: ${full.losses.filter((_, i) => i % 2 === 0)}`);
  if (readsOf(be) !== null) assert.deepEqual(full.reads, new Array(8).fill(1), 'Muon: one device read per training step');
  // three steps equal ref's (as the AdamW Trainer step does)
  const first = await run(be, 3), r = await run(refBackend, 3);
  const e = relErr(await values(first.t.model.parameters()), await values(r.t.model.parameters()));
  assert.ok(e <= 1e-5, `Muon run: weights after 3 steps vs ref rel err ${e}`);
  assert.ok(relErr(first.losses, r.losses) <= 1e-5, `Muon run: losses and norms ${first.losses} vs ref ${r.losses}`);
  // checkpoint at step 3, resume on the same backend: bit-identical to the uninterrupted run
  const root = mkdtempSync(join(tmpdir(), 'llamatrain-muon-'));
  await first.t.saveCheckpoint(root);
  const { model, state } = await loadCheckpoint(root, { backend: be });
  const resumed = make(model);
  resumed.loadState(state);
  const rest: number[] = [];
  resumed.on('step', (m) => rest.push(m.loss, m.gradNorm));
  await resumed.train();
  assert.deepEqual([...first.losses, ...rest], full.losses, 'Muon: resumed losses and norms equal the uninterrupted run');
  assert.deepEqual(await values(resumed.model.parameters()), weights, 'Muon: resumed weights equal the uninterrupted run');
}

async function nonFinite(be: Backend): Promise<void> {
  const poison = (p: Tensor, value: number) => { p.grad = keep(mul(p.grad!, tensor(value, [], 'float32', be))); };
  // stop: names the step and the parameter, no update at that step
  const model = new LlamaForCausalLM(cfg, { seed: 5, backend: be });
  const trainer = makeTrainer(model, new ListSource(randomBatches(2, 2, 8, 48, 1)));
  trainer.on('afterBackward', ({ step, model: m }) => { if (step === 3) poison(m.model.layers[1]!.selfAttn.vProj.weight, NaN); });
  const twoSteps = makeTrainer(new LlamaForCausalLM(cfg, { seed: 5, backend: be }), new ListSource(randomBatches(2, 2, 8, 48, 1)));
  await twoSteps.train(2);
  const atPoison = await values(twoSteps.model.parameters());
  await assert.rejects(() => trainer.train(), (e: unknown) => {
    assert.ok(e instanceof NonFiniteError, String(e));
    assert.match(e.message, /step 3: the gradient norm is NaN; the first parameter with a non-finite gradient is model\.layers\.1\.self_attn\.v_proj\.weight/);
    return true;
  });
  assert.equal(trainer.step, 2, 'no update happened at the poisoned step');
  assert.deepEqual(await values(model.parameters()), atPoison, 'the weights are those of step 2');
  // skip: the update is dropped (weights, optimizer step counts and schedule as they were), training goes on
  const m2 = new LlamaForCausalLM(cfg, { seed: 5, backend: be });
  const t2 = makeTrainer(m2, new ListSource(randomBatches(2, 2, 8, 48, 1)), { onNonFinite: 'skip', maxSteps: 4 });
  t2.on('afterBackward', ({ step, model: m }) => { if (step === 3) poison(m.model.norm.weight, Infinity); });
  const seen: { skipped: boolean; lr: number }[] = [];
  t2.on('step', (m) => seen.push({ skipped: m.skipped, lr: m.lr }));
  await t2.train();
  assert.deepEqual(seen.map((s) => s.skipped), [false, false, true, false]);
  assert.equal(seen[3]!.lr, seen[2]!.lr, 'a skipped step does not advance the schedule');
  const sd = await t2.optimizer.stateDict();
  assert.equal(sd.state[0]!.step, 3, 'three updates happened: the skipped one is not counted');
  assert.ok((await values(m2.parameters())).every(Number.isFinite));
}

async function lossEdges(be: Backend): Promise<void> {
  // every target ignored: 0 with a zero gradient, fused and unfused
  const h = tensor(Float32Array.from({ length: 12 }, (_, i) => Math.sin(i)), [3, 4], 'float32', be).requireGrad();
  const w = tensor(Float32Array.from({ length: 20 }, (_, i) => Math.cos(i)), [5, 4], 'float32', be).requireGrad();
  const none = tensor(Int32Array.from([-100, -100, -100]), [3], 'int32', be);
  const l = linearCrossEntropy(h, w, none);
  l.backward();
  assert.equal(await l.item(), 0);
  assert.ok((await h.grad!.data()).every((x) => x === 0) && (await w.grad!.data()).every((x) => x === 0));
  const z = tensor(new Float32Array(12).fill(0.5), [3, 4], 'float32', be);
  assert.equal(await crossEntropy(z, none).item(), 0);
  // a target outside the vocabulary is a clear error before anything runs
  assert.throws(() => crossEntropy(z, tensor(Int32Array.from([1, 9, 2]), [3], 'int32', be)), /target 9 at row 1 is outside \[0, 4\)/);
  assert.throws(() => embedding(w, tensor(Int32Array.from([5]), [1], 'int32', be)), /token id 5 at position 0 is outside the vocabulary \[0, 5\)/);
}

// ---- LoRA --------------------------------------------------------------------------------------------------

/** PEFT-format adapters on llama-tied-gqa4 against the float64 PyTorch reference (fused and unfused loss). */
async function loraParity(be: Backend): Promise<void> {
  const base = fixturePath('llama-tied-gqa4'), dir = fixturePath('lora-tied-gqa4');
  const want = parseSafetensors(readFileSync(join(dir, 'reference.safetensors'))).tensors;
  const batch = parseSafetensors(readFileSync(join(base, 'reference.safetensors'))).tensors;
  const t = (k: string) => { const r = batch.get(k)!; return tensor(r.data, r.shape, 'int32', be); };
  const peft = await PeftModel.fromPretrained(await loadPretrained(base, { backend: be }), dir, { isTrainable: true }); // gradients: PEFT's is_trainable
  for (const fusedLoss of [false, true]) {
    peft.zeroGrad();
    const { loss } = peft.forward(t('input_ids'), { attentionMask: t('attention_mask'), labels: t('labels'), fusedLoss });
    const l = await loss!.item();
    assert.ok(Math.abs(l - want.get('loss')!.data[0]!) <= 1e-5, `LoRA loss ${l} vs PyTorch ${want.get('loss')!.data[0]}`);
    loss!.backward();
    for (const [name, p] of peft.namedParameters()) {
      const err = relL2(await p.grad!.data(), want.get(`grad.${name}`)!.data);
      assert.ok(err <= 1e-4, `LoRA gradient of ${name}: rel ${err}`);
    }
    for (const p of peft.model.parameters()) assert.equal(p.grad, null, 'the frozen base gets no gradient');
  }
}

// ---- half weights ------------------------------------------------------------------------------------------

/**
 * A model loaded from a BF16 / F16 checkpoint with weights: 'as-stored' (weight matrices kept in 2 bytes, frozen)
 * against the same checkpoint widened to float32 on the same backend (bit-identical, or ≤ 1e-5 where the backend
 * converts by blocks) and against ref (≤ 1e-5): logits, loss (plain and fused), and the gradients of LoRA adapters on
 * every projection (they need dx through every frozen half matmul, embedding and head). Tied (the head is the half
 * embedding table) and untied heads; Qwen2's q/k/v biases and Qwen3's q/k norms stay float32 beside half matrices.
 */
async function halfWeights(be: Backend, blocks: boolean): Promise<void> {
  for (const fixture of ['llama-tied-gqa4', 'hf-llama-tiny', 'qwen2-tied-bias', 'qwen3-qknorm-yarn']) {
    const batch = parseSafetensors(readFileSync(join(fixturePath(fixture), 'reference.safetensors'))).tensors;
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const dir = halfCheckpoint(fixturePath(fixture), dtype);
      const run = async (backend: Backend, weights: 'float32' | 'as-stored') => {
        const model = await loadPretrained(dir, { backend, weights });
        const t = (k: string) => { const r = batch.get(k)!; return tensor(r.data, r.shape, 'int32', backend); };
        const halfParams = [...model.namedParameters()].filter(([, p]) => p.dtype === dtype).map(([n]) => n);
        const logits = await model.forward(t('input_ids'), { attentionMask: t('attention_mask') }).logits!.data();
        const peft = getPeftModel(model, { r: 4, loraAlpha: 8, targetModules: 'all-linear', seed: 7 });
        // PEFT starts B at zero (A's gradient would be 0): give B values so that dx flows through every adapter
        const rng = new RNG(3);
        noGrad(() => {
          for (const [name, p] of peft.namedParameters()) {
            if (!name.endsWith('lora_B.weight')) continue;
            const v = tensor(Float32Array.from({ length: p.size }, () => rng.normal() * 0.05), [...p.shape], 'float32', backend);
            kernel(backend, 'addInPlace')(p.storage, v.storage, 'float32');
          }
        });
        const out: { name: string; v: ArrayLike<number> }[] = [{ name: 'logits', v: logits }];
        for (const fusedLoss of [false, true]) {
          peft.zeroGrad();
          const { loss } = peft.forward(t('input_ids'), { attentionMask: t('attention_mask'), labels: t('labels'), fusedLoss });
          out.push({ name: `loss (fused ${fusedLoss})`, v: await loss!.data() });
          loss!.backward();
          for (const [name, p] of peft.namedParameters()) out.push({ name: `grad ${name} (fused ${fusedLoss})`, v: await p.grad!.data() });
          for (const p of peft.model.parameters()) assert.equal(p.grad, null, 'the frozen base gets no gradient');
        }
        return { out, halfParams };
      };
      const half = await run(be, 'as-stored'), wide = await run(be, 'float32'), ref = await run(refBackend, 'float32');
      const where = `${fixture} ${dtype}`;
      assert.ok(half.halfParams.length >= 7 && half.halfParams.includes('model.embed_tokens.weight'),
        `${where}: the weight matrices are ${dtype} (${half.halfParams.join(', ')})`);
      assert.ok(half.halfParams.every((n) => !n.endsWith('norm.weight')), 'norms stay float32');
      assert.deepEqual(wide.halfParams, [], 'weights: float32 widens everything');
      for (let i = 0; i < half.out.length; i++) {
        const { name, v } = half.out[i]!;
        const w = wide.out[i]!.v, r = ref.out[i]!.v;
        if (blocks) assert.ok(relL2(v, w) <= 1e-5, `${where} ${name}: half vs float32 on this backend, rel ${relL2(v, w)}`);
        else assert.deepEqual(Array.from(v), Array.from(w), `${where} ${name}: half and widened float32 are bit-identical`);
        assert.ok(relL2(v, r) <= 1e-5, `${where} ${name}: vs ref, rel ${relL2(v, r)}`);
      }
    }
  }
}

// ---- gradient checkpointing ----------------------------------------------------------------------------------

/** The first index where two arrays differ (NaN equals NaN, -0 equals 0), or -1: "the same numbers". */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

/** How many tape nodes named `name` lie behind t (the checkpointed layers, before backward frees the tape). */
function nodesNamed(t: Tensor, name: string): number {
  const seen = new Set<Tensor>(), stack = [t];
  let n = 0;
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (seen.has(x) || !x.node) continue;
    seen.add(x);
    if (x.node.name === name) n++;
    stack.push(...x.node.inputs);
  }
  return n;
}

/**
 * Losses and every gradient of one accumulated step over `batches` (forward + backward each, in a step scope as
 * the Trainer runs them), and how many layers were checkpointed.
 */
async function stepGrads(model: TrainableModel, batches: Batch[], be: Backend, o: { fusedLoss: boolean; gradientCheckpointing: boolean }) {
  model.zeroGrad();
  const numItemsInBatch = batches.reduce((n, b) => n + countTargets(b), 0);
  const scope = openScope(be);
  try {
    const losses: Tensor[] = [];
    let checkpointed = 0;
    for (const b of batches) {
      const t = toTensors(b, be);
      const { loss } = model.forward(t.inputIds, {
        attentionMask: t.attentionMask, labels: t.labels, positionIds: t.positionIds, documentIds: t.documentIds, numItemsInBatch, ...o,
      });
      checkpointed += nodesNamed(loss!, 'checkpoint');
      loss!.backward();
      losses.push(loss!);
    }
    const grads = new Map<string, number[] | null>();
    for (const [name, p] of model.namedParameters()) grads.set(name, p.grad ? Array.from(await p.grad.data()) : null);
    return { losses: await Promise.all(losses.map((l) => l.item())), grads, checkpointed };
  } finally {
    scope.close();
  }
}

function assertSameStep(a: Awaited<ReturnType<typeof stepGrads>>, b: Awaited<ReturnType<typeof stepGrads>>, what: string): void {
  assert.equal(firstDifference(a.losses, b.losses), -1, `${what}: losses ${a.losses} with checkpointing, ${b.losses} without`);
  assert.equal(a.grads.size, b.grads.size);
  for (const [name, g] of a.grads) {
    const h = b.grads.get(name)!;
    assert.equal(g === null, h === null, `${what}: ${name} has a gradient in one run only`);
    if (!g || !h) continue;
    const i = firstDifference(g, h);
    assert.equal(i, -1, `${what}: gradient of ${name} differs at ${i}: ${g[i]} with checkpointing, ${h[i]} without (rel L2 ${relL2(g, h)})`);
  }
}

/** Packed rows (documents restarting positions) and padded rows: both masks reach the recomputed attention. */
function checkpointBatches(): Batch[] {
  const padded = randomBatches(2, 2, 12, 48, 31);
  const packed = randomBatches(1, 2, 12, 48, 32)[0]!;
  const documentIds = new Int32Array(24), positionIds = new Int32Array(24), labels = packed.inputIds.slice();
  for (let i = 0; i < 24; i++) {
    const t = i % 12;
    documentIds[i] = t < 5 ? 0 : 1;
    positionIds[i] = t < 5 ? t : t - 5;
    if (t === 0 || t === 5) labels[i] = -100; // a document's first token has no target inside its document
  }
  return [...padded, { shape: [2, 12], inputIds: packed.inputIds, labels, documentIds, positionIds }];
}

async function gradientCheckpointing(be: Backend): Promise<void> {
  const c3 = { ...cfg, numHiddenLayers: 3 };
  const batches = checkpointBatches();
  // every family's layer: biases, per-head norms and a sliding window (5 < T) are recomputed too
  const families: [string, LlamaConfigInput][] = [
    ['llama', c3], ['qwen2 (q/k/v biases)', { ...c3, modelType: 'qwen2' }], ['qwen3 (q/k norms, head_dim 8)', { ...c3, modelType: 'qwen3', headDim: 8 }],
    ['mistral (sliding window 5)', { ...c3, modelType: 'mistral', slidingWindow: 5 }],
  ];
  for (const [family, c] of families) {
    const model = new LlamaForCausalLM(c, { seed: 5, backend: be });
    for (const fusedLoss of [false, true]) {
      const plain = await stepGrads(model, batches, be, { fusedLoss, gradientCheckpointing: false });
      const ckpt = await stepGrads(model, batches, be, { fusedLoss, gradientCheckpointing: true });
      assert.equal(plain.checkpointed, 0);
      assert.equal(ckpt.checkpointed, 3 * batches.length, 'every layer of every micro-batch is checkpointed');
      assertSameStep(ckpt, plain, `${family}, ${fusedLoss ? 'fused' : 'unfused'} loss`);
    }
    model.zeroGrad();
  }

  // LoRA with dropout: frozen base (no gradient), adapters on every Linear, B made non-zero so A gets a gradient.
  // Two identical PeftModels draw the same dropout masks; the checkpointed one must replay them in its recomputation.
  const lora = async () => {
    const peft = getPeftModel(new LlamaForCausalLM(c3, { seed: 6, backend: be }), { r: 4, loraAlpha: 8, loraDropout: 0.3, targetModules: 'all-linear', seed: 7 });
    const rng = new RNG(8);
    for (const [name, p] of peft.namedParameters()) {
      if (!name.includes('lora_B')) continue;
      const r = tensor(Float32Array.from({ length: p.size }, () => rng.normal() * 0.1), [...p.shape], 'float32', be);
      kernel(be, 'addInPlace')(p.storage, r.storage, 'float32');
    }
    return peft;
  };
  for (const fusedLoss of [false, true]) {
    const a = await lora(), b = await lora();
    const ckpt = await stepGrads(a, batches, be, { fusedLoss, gradientCheckpointing: true });
    const plain = await stepGrads(b, batches, be, { fusedLoss, gradientCheckpointing: false });
    assert.equal(ckpt.checkpointed, 3 * batches.length);
    assertSameStep(ckpt, plain, `LoRA with dropout, ${fusedLoss ? 'fused' : 'unfused'} loss`);
    for (const p of a.model.parameters()) assert.equal(p.grad, null, 'the frozen base gets no gradient');
    // the recomputation put the dropout RNG back where the forward left it: the next masks are the same too
    const next = await stepGrads(a, batches, be, { fusedLoss, gradientCheckpointing: false });
    assertSameStep(next, await stepGrads(b, batches, be, { fusedLoss, gradientCheckpointing: false }), 'the step after');
    // and dropout is on: in eval mode (no masks) the loss differs
    a.eval();
    const evalLoss = await stepGrads(a, batches, be, { fusedLoss, gradientCheckpointing: true });
    assert.notEqual(evalLoss.losses[0], next.losses[0], 'dropout changes the loss (so its masks matter here)');
  }

  // the Trainer option: two steps of 2 micro-batches (clipping, AdamW, schedule) end on the same weights
  const run = async (gradientCheckpointing: boolean) => {
    const model = new LlamaForCausalLM(c3, { seed: 9, backend: be });
    const t = makeTrainer(model, new ListSource(batches), { maxSteps: 2, gradientCheckpointing });
    let checkpointed = 0; // the layers the Trainer's forwards checkpointed
    const forward = model.forward.bind(model) as (ids: Tensor, o: object) => { loss: Tensor | null };
    (model as { forward: unknown }).forward = (ids: Tensor, o: object) => {
      const r = forward(ids, o);
      checkpointed += nodesNamed(r.loss!, 'checkpoint');
      return r;
    };
    const ms: number[] = [];
    t.on('step', (m) => ms.push(m.loss, m.gradNorm));
    await t.train();
    return { ms, weights: await values(t.model.parameters()), checkpointed };
  };
  const x = await run(true), y = await run(false);
  assert.equal(x.checkpointed, 2 * 2 * 3, 'the Trainer checkpointed 3 layers in each of 2 × 2 micro-batches');
  assert.equal(y.checkpointed, 0);
  assert.equal(firstDifference(x.ms, y.ms), -1, `Trainer [loss, norm] per step: ${x.ms} with checkpointing, ${y.ms} without`);
  assert.equal(firstDifference(x.weights, y.weights), -1, 'Trainer: weights after 2 steps');
}

// ---- the suite -------------------------------------------------------------------------------------------

export function conformance(spec: ConformanceSpec): void {
  const skip = new Set(spec.skip ?? []);
  if (spec.skipAll) {
    test(`conformance: ${spec.name}`, { skip: spec.skipAll }, () => {});
    return;
  }
  describe(`conformance: ${spec.name}`, () => {
    let be!: Backend;
    const ready = spec.setup().then((b) => { be = b; });
    const t = (name: string, fn: () => Promise<void>) => test(name, async () => { await ready; await fn(); });

    if (!skip.has('ops')) {
      t('every op, forward and backward', async () => {
        const rng = new RNG(11);
        const cases = opCases(rng);
        if (spec.oracle) {
          const checked = cases.filter((c) => gradcheckOp(c)).length;
          assert.ok(checked >= 40, `float64 finite differences ran on ${checked} cases`);
        } else {
          for (const c of cases) await checkOpAgainstRef(be, c, rng);
        }
      });
      t('loss edge cases: all targets ignored, targets and ids out of range', () => lossEdges(be));
    }
    if (!skip.has('kernels')) t('multi-tensor kernels: global norm, clipping, optimizers over groups, the non-finite gate', () => kernelChecks(be, new RNG(5)));
    if (!skip.has('kernels')) t('Muon (Newton–Schulz on the device, AdamW groups) equals ref; a NaN gate changes nothing', () => muonKernelChecks(be, new RNG(6)));
    if (!skip.has('hf')) {
      const names = parityFixtures();
      // the fixtures this suite was written against must be among them (a renamed folder must not drop out silently)
      t('HF parity fixtures found in test/fixtures', async () => {
        for (const n of ['hf-llama-tiny', 'llama-tied-gqa4', 'llama-mha-bias-llama3', 'qwen2-tied-bias', 'qwen3-qknorm-yarn', 'mistral-window']) {
          assert.ok(names.includes(n), `fixture ${n} missing from ${names.join(', ')}`);
        }
      });
      for (const name of names) {
        t(`HF parity: ${name} (loss, logits, every gradient, accumulation, greedy tokens)`, () => checkHfParity(be, name));
        t(`HF parity: ${name}, fused loss`, () => checkHfParity(be, name, { fusedLoss: true }));
      }
    }
    if (!skip.has('trajectory')) t('30 training steps equal PyTorch (losses, grad norms, learning rates)', () => checkTrajectory(be));
    if (!skip.has('trainer')) {
      t('a Trainer step equals ref (2 micro-batches, clipping, AdamW, schedule)', () => trainerEqualsRef(be));
      t('a full Trainer run: evaluation, checkpoint, bit-identical resume, device reads per step', () => fullRun(be));
      t('non-finite gradients: stop names the parameter; skip leaves weights, step counts and schedule', () => nonFinite(be));
      t('a Trainer run with Muon: finite, equals ref, one read per step, resumes bit-identically from a checkpoint', () => muonTrainer(be));
    }
    if (!skip.has('lora')) t('LoRA (PEFT format) parity with PyTorch: loss and adapter gradients, frozen base', () => loraParity(be));
    if (!skip.has('lora')) {
      t('half weights (BF16, F16 kept as stored): logits, loss, LoRA gradients equal the float32-widened model and ref',
        () => halfWeights(be, spec.halfBlocks ?? false));
    }
    if (!skip.has('checkpointing')) {
      t('gradient checkpointing: the same losses and gradients, bit for bit (each family, fused and not, accumulation, LoRA dropout, Trainer)',
        () => gradientCheckpointing(be));
    }
    if (spec.teardown) test('teardown', async () => { await ready; await spec.teardown!(); });
  });
}
