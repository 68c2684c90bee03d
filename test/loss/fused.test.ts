// The fused LM head + cross-entropy equals the unfused path (matmul → [N, V] logits → crossEntropy) in loss and in
// both gradients, for every option and reduction; and passes a finite-difference check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type CrossEntropyOptions, LlamaForCausalLM, RNG, type Tensor, crossEntropy, div, linearCrossEntropy, matmul, mul, sum, tanh,
  tensor,
} from '../../src/index.js';
import { gradcheck, randn } from '../gradcheck.js';
import { relErr } from '../helpers.js';

const rng = new RNG(21);
const ints = (a: number[]) => tensor(Int32Array.from(a), [a.length], 'int32');

interface Opts extends CrossEntropyOptions { numItemsInBatch?: number; softcap?: number; chunkSize?: number }

function unfused(h: Tensor, w: Tensor, t: Tensor, o: Opts): Tensor {
  let z = matmul(h, w, { transB: true });
  if (o.softcap) z = mul(tanh(div(z, o.softcap)), o.softcap);
  const ce = { ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing, zLoss: o.zLoss };
  if (o.numItemsInBatch !== undefined) return div(crossEntropy(z, t, { ...ce, reduction: 'sum' }), o.numItemsInBatch);
  return crossEntropy(z, t, { ...ce, reduction: o.reduction });
}


/** Loss and both gradients of fused vs unfused; with reduction 'none' through a random upstream gradient. */
function compare(dtype: 'float32' | 'float64', N: number, C: number, V: number, targets: number[], o: Opts, tol: number, label: string): void {
  const mk = (shape: number[], scale: number) => {
    const a = dtype === 'float64' ? new Float64Array(shape[0]! * shape[1]!) : new Float32Array(shape[0]! * shape[1]!);
    for (let i = 0; i < a.length; i++) a[i] = rng.normal() * scale;
    return a;
  };
  const hData = mk([N, C], 1), wData = mk([V, C], 0.5);
  const up = Float64Array.from({ length: N }, () => rng.normal());
  const t = ints(targets);
  const results = [linearCrossEntropy, unfused].map((f) => {
    const h = tensor(hData, [N, C], dtype).requireGrad(), w = tensor(wData, [V, C], dtype).requireGrad();
    const loss = f(h, w, t, o);
    const upstream = tensor(dtype === 'float64' ? up : Float32Array.from(up), [N], dtype);
    const scalar = o.reduction === 'none' && o.numItemsInBatch === undefined ? sum(mul(loss, upstream)) : loss;
    scalar.backward();
    return { loss: loss.dataSync(), dh: h.grad!.dataSync(), dw: w.grad!.dataSync() };
  });
  const [f, u] = results as [typeof results[0], typeof results[0]];
  assert.ok(relErr(f.loss, u.loss) <= tol, `${label}: loss ${f.loss[0]} vs ${u.loss[0]} (rel ${relErr(f.loss, u.loss)})`);
  assert.ok(relErr(f.dh, u.dh) <= tol, `${label}: dHidden rel ${relErr(f.dh, u.dh)}`);
  assert.ok(relErr(f.dw, u.dw) <= tol, `${label}: dWeight rel ${relErr(f.dw, u.dw)}`);
}

const N = 13, C = 6, V = 11; // N not a multiple of the chunk, V not a multiple of 4 (SIMD width)
const targets = [3, -100, 0, 10, 5, 5, -100, 2, 7, 1, 9, -100, 4];
const optionSets: [string, Opts][] = [
  ['mean', {}], ['sum', { reduction: 'sum' }], ['none', { reduction: 'none' }],
  ['label smoothing', { labelSmoothing: 0.1 }], ['z-loss', { zLoss: 0.01 }], ['softcap', { softcap: 2 }],
  ['all options, sum', { reduction: 'sum', labelSmoothing: 0.2, zLoss: 0.05, softcap: 3 }],
  ['numItemsInBatch', { numItemsInBatch: 40 }], ['ignoreIndex 5', { ignoreIndex: 5 }],
  ['none with options', { reduction: 'none', labelSmoothing: 0.1, zLoss: 0.02, softcap: 2.5 }],
];

test('fused = unfused in float64 (≤ 1e-10) for every option and reduction, any chunk size', () => {
  for (const [name, o] of optionSets) for (const chunkSize of [1, 4, 5, 13, 64]) {
    const tg = o.ignoreIndex === 5 ? targets.map((x) => (x === -100 ? 5 : x)) : targets;
    compare('float64', N, C, V, tg, { ...o, chunkSize }, 1e-10, `${name}, chunk ${chunkSize}`);
  }
});

test('fused = unfused in float32 (≤ 1e-5)', () => {
  for (const [name, o] of optionSets) {
    const ignore = o.ignoreIndex ?? -100;
    const tg = Array.from({ length: 37 }, (_, i) => (i % 7 === 3 ? ignore : (i * 13) % 50));
    compare('float32', 37, 16, 50, tg, { ...o, chunkSize: 8 }, 1e-5, name);
  }
});

test('all-ignored chunks and an all-ignored batch: zero loss contribution, zero gradient, no NaN', () => {
  // rows 0..3 (chunk 0) all ignored
  compare('float64', 8, 4, 7, [-100, -100, -100, -100, 1, 2, 3, 4], { chunkSize: 4 }, 1e-10, 'first chunk ignored');
  const h = randn([4, 3], rng), w = randn([5, 3], rng);
  const l = linearCrossEntropy(h, w, ints([-100, -100, -100, -100]));
  assert.equal(l.dataSync()[0], 0);
  l.backward();
  assert.ok(h.grad!.dataSync().every((x) => x === 0) && w.grad!.dataSync().every((x) => x === 0));
});

test('fused loss: finite-difference gradient check (float64) for hidden and weight', () => {
  const h = randn([5, 4], rng), w = randn([7, 4], rng, 0.7);
  const t = ints([1, 6, -100, 0, 3]);
  for (const o of [{}, { reduction: 'none' as const }, { labelSmoothing: 0.1, zLoss: 0.02, softcap: 2, chunkSize: 2 }]) {
    gradcheck(`linearCrossEntropy ${JSON.stringify(o)}`, (a, b) => linearCrossEntropy(a, b, t, o), [h, w]);
  }
});

test('model.forward({ fusedLoss }) equals the unfused loss and every parameter gradient, tied and untied heads', () => {
  for (const tie of [true, false]) {
    const cfg = { vocabSize: 37, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
      tieWordEmbeddings: tie, initializerRange: 0.2 };
    const ids = tensor(Int32Array.from([1, 5, 9, 2, 30, 7, 7, 0, 3, 4]), [2, 5], 'int32');
    const labels = tensor(Int32Array.from([1, 5, 9, 2, 30, 7, 7, 0, -100, -100]), [2, 5], 'int32');
    const grads = [false, true].map((fusedLoss) => {
      const m = new LlamaForCausalLM(cfg, { seed: 3, dtype: 'float64' });
      const out = m.forward(ids, { labels, fusedLoss, numItemsInBatch: 9 });
      if (fusedLoss) assert.equal(out.logits, null);
      out.loss!.backward();
      return { loss: out.loss!.dataSync()[0]!, g: [...m.namedParameters()].map(([n, p]) => [n, p.grad!.dataSync()] as const) };
    });
    assert.ok(Math.abs(grads[0]!.loss - grads[1]!.loss) < 1e-12);
    grads[0]!.g.forEach(([n, g], i) => assert.ok(relErr(grads[1]!.g[i]![1], g) < 1e-10, `${tie ? 'tied' : 'untied'}: ${n}`));
  }
  const m = new LlamaForCausalLM({ vocabSize: 10, hiddenSize: 8, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2 });
  assert.throws(() => m.forward(tensor(Int32Array.from([1, 2]), [1, 2], 'int32'), { fusedLoss: true } as never), /fusedLoss needs labels/);
});
