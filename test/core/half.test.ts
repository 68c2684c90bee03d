// Half storage (bfloat16 / float16) of frozen weights on the host and on ref: the bit conversions against values
// worked out from the formats' definitions (IEEE 754 binary16; bfloat16 = the top 16 bits of a binary32), the three
// ops that accept a half weight, and the refusals everywhere else. Kernels of the other backends: test/backends/half.test.ts;
// whole models: the conformance suite ("half weights").
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW, InputError, ModelTooLargeError, Trainer, checkModelMemory, llamaConfig, LlamaForCausalLM, RNG, add, bf16BitsToNumber, cast, embedding, f16BitsToNumber, float32ToHalf, full, getPeftModel,
  halfTensor, halfToFloat32, linearCrossEntropy, matmul, numberToBf16Bits, numberToF16Bits, refBackend, rmsNorm, softmax, sum, tensor,
  transpose, widenHalf,
} from '../../src/index.js';
import { loadPretrained } from '../../src/node.js';
import { halfCheckpoint } from '../conformance/half.js';
import { fixturePath } from '../helpers.js';
import { ListSource, randomBatches } from '../train/util.js';

// [bits, value] from the definitions: binary16 = (−1)^s · 2^(e−15) · 1.m (e = 0: 2^−14 · 0.m); bfloat16 = binary32's top half
const F16: [number, number][] = [
  [0x0000, 0], [0x8000, -0], [0x0001, 2 ** -24], [0x8001, -(2 ** -24)], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14],
  [0x7bff, 65504], [0xfbff, -65504], [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity],
  [0x7e00, NaN], [0xfe01, NaN], [0x7c01, NaN],
];
const BF16: [number, number][] = [
  [0x0000, 0], [0x8000, -0], [0x0001, 2 ** -133], [0x807f, -127 * 2 ** -133], [0x0080, 2 ** -126], [0x7f7f, (2 - 2 ** -7) * 2 ** 127],
  [0xff7f, -(2 - 2 ** -7) * 2 ** 127], [0x3f80, 1], [0xc000, -2], [0x3eab, 0.333984375], [0x7f80, Infinity], [0xff80, -Infinity],
  [0x7fc0, NaN], [0xffc1, NaN], [0x7f81, NaN],
];

const same = (a: number, b: number) => (Number.isNaN(b) ? Number.isNaN(a) : Object.is(a, b));

describe('half bit conversions (host)', () => {
  test('special values: ±0, subnormals, min/max normal, ±Inf, NaN (float16 and bfloat16)', () => {
    for (const [bits, v] of F16) {
      assert.ok(same(f16BitsToNumber(bits), v), `f16 0x${bits.toString(16)} → ${f16BitsToNumber(bits)}, expected ${v}`);
      assert.ok(same(halfToFloat32(new Uint16Array([bits]), 'float16')[0]!, v), `f16 table 0x${bits.toString(16)}`);
    }
    for (const [bits, v] of BF16) {
      assert.ok(same(bf16BitsToNumber(bits), v), `bf16 0x${bits.toString(16)} → ${bf16BitsToNumber(bits)}, expected ${v}`);
      assert.ok(same(halfToFloat32(new Uint16Array([bits]), 'bfloat16')[0]!, v), `bf16 bulk 0x${bits.toString(16)}`);
    }
  });

  test('every non-NaN pattern survives bits → value → bits exactly (both dtypes)', () => {
    for (let b = 0; b < 65536; b++) {
      const fExp = (b >> 10) & 0x1f, bExp = (b >> 7) & 0xff;
      if (!(fExp === 0x1f && (b & 0x3ff))) assert.equal(numberToF16Bits(f16BitsToNumber(b)), b, `f16 0x${b.toString(16)}`);
      if (!(bExp === 0xff && (b & 0x7f))) assert.equal(numberToBf16Bits(bf16BitsToNumber(b)), b, `bf16 0x${b.toString(16)}`);
    }
  });

  test('rounding to half: nearest, ties to even, overflow to Inf, underflow through the subnormals', () => {
    const f16: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01], [65519, 0x7bff], [65520, 0x7c00],
      [-1e6, 0xfc00], [2 ** -25, 0x0000], [3 * 2 ** -26, 0x0001], [2 ** -25 + 2 ** -40, 0x0001], [-(2 ** -26), 0x8000],
      [2 ** -14 - 2 ** -25, 0x0400], [NaN, 0x7e00],
    ];
    for (const [v, bits] of f16) assert.equal(numberToF16Bits(v), bits, `f16 of ${v}`);
    const bf16: [number, number][] = [
      [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [3.4e38, 0x7f80], [-(2 ** -134), 0x8000], [3 * 2 ** -135, 0x0001],
    ];
    for (const [v, bits] of bf16) assert.equal(numberToBf16Bits(v), bits, `bf16 of ${v}`);
    assert.deepEqual([...float32ToHalf([1, -2, 0.5], 'float16')], [0x3c00, 0xc000, 0x3800]);
  });
});

describe('half tensors on ref', () => {
  const rng = new RNG(4);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

  test('data() reads a half tensor back as its float32 values; it never requires grad', async () => {
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const bits = new Uint16Array((dtype === 'float16' ? F16 : BF16).map(([b]) => b));
      const t = halfTensor(bits, [bits.length], dtype, refBackend);
      assert.equal(t.dtype, dtype);
      assert.equal(t.requiresGrad, false);
      const got = await t.data();
      assert.ok(got instanceof Float32Array);
      (dtype === 'float16' ? F16 : BF16).forEach(([, v], i) => assert.ok(same(got[i]!, v), `${dtype} element ${i}`));
      assert.throws(() => t.requireGrad(true), (e: Error) => e instanceof InputError && /cannot require grad/.test(e.message) && /getPeftModel/.test(e.message));
    }
  });

  test('matmul (B half, x·Wᵀ and dy·W), embedding and linearCrossEntropy equal the same ops on the widened weight', async () => {
    for (const dtype of ['bfloat16', 'float16'] as const) {
      const W = float32ToHalf(rand(13 * 9), dtype); // [13, 9]
      const wh = halfTensor(W, [13, 9], dtype, refBackend);
      const wf = tensor(halfToFloat32(W, dtype), [13, 9], 'float32', refBackend);
      const x = tensor(rand(5 * 9), [5, 9], 'float32', refBackend).requireGrad();
      for (const transB of [true, false]) {
        const xin = transB ? x : tensor(rand(5 * 13), [5, 13], 'float32', refBackend).requireGrad();
        const yh = matmul(xin, wh, { transB }), yf = matmul(xin, wf, { transB });
        assert.deepEqual([...await yh.data()], [...await yf.data()], `${dtype} matmul transB=${transB}`);
        sum(yh).backward();
        const gh = [...await xin.grad!.data()];
        xin.grad = null;
        sum(yf).backward();
        assert.deepEqual(gh, [...await xin.grad!.data()], `${dtype} matmul transB=${transB}: dx`);
        xin.grad = null;
      }
      const ids = tensor(new Int32Array([3, 0, 12, 3]), [2, 2], 'int32', refBackend);
      const eh = embedding(wh, ids);
      assert.equal(eh.dtype, 'float32');
      assert.deepEqual([...await eh.data()], [...await embedding(wf, ids).data()], `${dtype} embedding`);
      const h = tensor(rand(6 * 9), [6, 9], 'float32', refBackend).requireGrad();
      const tg = tensor(new Int32Array([1, 12, -100, 0, 7, 7]), [6], 'int32', refBackend);
      const lh = linearCrossEntropy(h, wh, tg, { chunkSize: 4 });
      lh.backward();
      const dh = [...await h.grad!.data()];
      h.grad = null;
      const lf = linearCrossEntropy(h, wf, tg, { chunkSize: 4 });
      lf.backward();
      assert.equal(await lh.item(), await lf.item(), `${dtype} linearCrossEntropy loss`);
      assert.deepEqual(dh, [...await h.grad!.data()], `${dtype} linearCrossEntropy dH`);
      assert.deepEqual([...await widenHalf(wh).data()], [...await wf.data()], `${dtype} widenHalf`);
    }
  });

  test('every other op refuses a half tensor, naming the op, the dtype and what to do', () => {
    const wh = halfTensor(float32ToHalf(rand(12), 'bfloat16'), [3, 4], 'bfloat16', refBackend);
    const x = tensor(rand(12), [3, 4], 'float32', refBackend);
    const refused = (f: () => unknown, op: string) => assert.throws(f, (e: Error) =>
      e instanceof InputError && e.message.startsWith(`${op}:`) && /bfloat16/.test(e.message) && /widenHalf/.test(e.message), op);
    refused(() => add(x, wh), 'add');
    refused(() => add(wh, x), 'add');
    refused(() => softmax(wh), 'softmax');
    refused(() => sum(wh), 'sum');
    refused(() => transpose(wh), 'permute');
    refused(() => rmsNorm(x, halfTensor(float32ToHalf(rand(4), 'bfloat16'), [4], 'bfloat16', refBackend), 1e-5), 'rmsNorm');
    refused(() => cast(wh, 'float32'), 'cast');
    refused(() => linearCrossEntropy(wh, wh, tensor(new Int32Array([0, 1, 2]), [3], 'int32', refBackend)), 'linearCrossEntropy');
    // a half A operand, or a half B with transA
    assert.throws(() => matmul(wh, x, { transB: true }), (e: Error) => e instanceof InputError && /^matmul:/.test(e.message));
    assert.throws(() => matmul(x, wh, { transA: true }), (e: Error) => e instanceof InputError && /transA/.test(e.message));
    // half tensors are made only from bits
    assert.throws(() => tensor([1, 2], [2], 'bfloat16', refBackend), (e: Error) => e instanceof InputError && /halfTensor/.test(e.message));
    assert.throws(() => full([2], 0, 'float16', refBackend), (e: Error) => e instanceof InputError && /frozen weights/.test(e.message));
  });

  test('a half model: LoRA trains (float32 adapters), full fine-tuning is refused, merging gives float32 weights', async () => {
    const cfg = { vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1 };
    const model = new LlamaForCausalLM(cfg, { backend: refBackend, frozenDtype: 'bfloat16' });
    const q = model.model.layers[0]!.selfAttn.qProj.weight;
    assert.equal(q.dtype, 'bfloat16');
    assert.equal(model.model.norm.weight.dtype, 'float32');
    assert.throws(() => new AdamW(model.parameters(), { lr: 1e-3 }),
      (e: Error) => e instanceof InputError && /full fine-tuning needs float32 weights/.test(e.message) && /getPeftModel/.test(e.message));
    // give q_proj values, then LoRA on it
    const qv = float32ToHalf(rand(q.size), 'bfloat16');
    model.loadStateDict({ 'model.layers.0.self_attn.q_proj.weight': { shape: q.shape, dtype: 'bfloat16', data: qv } }, { strict: false });
    assert.equal(q.dtype, 'bfloat16');
    assert.deepEqual([...await q.data()], [...halfToFloat32(qv, 'bfloat16')]);
    const peft = getPeftModel(model, { r: 2, targetModules: ['q_proj'] });
    const [[, a]] = [...peft.namedParameters()];
    assert.equal(a!.dtype, 'float32');
    const ids = tensor(new Int32Array([1, 5, 9, 2]), [1, 4], 'int32', refBackend);
    const { loss } = peft.forward(ids, { labels: ids });
    loss!.backward();
    assert.ok([...peft.parameters()].every((p) => p.grad !== null), 'every adapter tensor has a gradient');
    const merged = peft.mergeAndUnload();
    assert.equal(q.dtype, 'float32', 'the merged q_proj is float32');
    assert.ok(q.requiresGrad);
    assert.equal(merged.model.embedTokens.weight.dtype, 'bfloat16', 'unadapted half weights stay half (frozen)');
    assert.deepEqual([...await q.data()], [...halfToFloat32(qv, 'bfloat16')], 'B = 0: merging adds nothing, values kept exactly');
  });

  test('a Trainer runs LoRA on a BF16 checkpoint kept as stored: the same losses and norms as on the widened float32 model', async () => {
    const dir = halfCheckpoint(fixturePath('hf-llama-tiny'), 'bfloat16');
    const run = async (weights: 'as-stored' | 'float32') => {
      const model = await loadPretrained(dir, { backend: refBackend, weights });
      const peft = getPeftModel(model, { r: 4, targetModules: 'all-linear', seed: 1 });
      const trainer = new Trainer({ model: peft, optimizer: new AdamW(peft.parameters(), { lr: 1e-2 }), train: new ListSource(randomBatches(4, 2, 12, 256, 9)),
        gradAccumSteps: 2, maxSteps: 2, clipGradNorm: 1.0 });
      const out: number[] = [];
      for (let i = 0; i < 2; i++) { const m = (await trainer.trainStep())!; out.push(m.loss, m.gradNorm); }
      return { out, dtype: model.model.layers[0]!.mlp.upProj.weight.dtype };
    };
    const half = await run('as-stored'), wide = await run('float32');
    assert.equal(half.dtype, 'bfloat16');
    assert.equal(wide.dtype, 'float32');
    assert.ok(half.out.every(Number.isFinite) && half.out[3]! > 0);
    assert.deepEqual(half.out, wide.out);
  });

  test('memory accounting: half weight matrices count 2 bytes (norms 4) against the backend limit', () => {
    const cfg = llamaConfig({ vocabSize: 1000, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
    const matrices = 2 * 1000 * 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128), vectors = 5 * 64; // untied head
    const limit = (bytes: number) => ({ ...refBackend, name: 'limited', memoryLimit: () => ({ bytes, what: 'a test limit' }) });
    const f32 = (matrices + vectors) * 4, half = matrices * 2 + vectors * 4;
    assert.equal(checkModelMemory(cfg, { backend: refBackend }), f32);
    assert.equal(checkModelMemory(cfg, { backend: refBackend, frozenDtype: 'bfloat16' }), half);
    assert.throws(() => checkModelMemory(cfg, { backend: limit(half + 16) }), ModelTooLargeError);
    assert.equal(checkModelMemory(cfg, { backend: limit(half + 16), frozenDtype: 'float16' }), half);
    assert.throws(() => checkModelMemory(cfg, { backend: limit(half - 16), frozenDtype: 'float16' }),
      (e: Error) => e instanceof ModelTooLargeError && /float16 \(weight matrices\) and float32/.test(e.message));
  });
});
