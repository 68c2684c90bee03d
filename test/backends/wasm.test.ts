// The wasm backend against the ref backend (the oracle): every op forward and backward in float32 on random
// inputs, with awkward shapes, at 1 and 2 threads (and with every call forced through the pool); then the HF
// parity fixture trained through the wasm backend.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import {
  type Backend, LlamaForCausalLM, RNG, type Tensor, add, attention, crossEntropyRows, embedding, logSoftmax, logsumexp,
  div, kernel, linearCrossEntropy, matmul, mul, parseSafetensors, sub, type RawTensor, refBackend, reshape, rmsNorm, rope, silu, softmax, square, sum, swiglu, tensor, withScope,
} from '../../src/index.js';
import { loadPretrained } from '../../src/node.js';
import {
  fallbackKernels, registerWasmBackend, setParallelThreshold, setWasmThreads, shutdownWasmBackend, wasmAvailable,
  wasmKernelNames, wasmThreads,
} from '../../src/backends/wasm/index.js';
import { refKernels } from '../../src/backends/ref/kernels.js';
import { fixturePath } from '../helpers.js';

const rng = new RNG(11);
let wasm: Backend;

before(async () => {
  assert.ok(wasmAvailable(), 'Node 20 has WebAssembly SIMD, threads and SharedArrayBuffer');
  wasm = await registerWasmBackend({ threads: 2 });
});
after(async () => {
  setParallelThreshold(null);
  await shutdownWasmBackend();
});

/** An op input: float data gets a gradient; int data (ids, targets, masks) does not. */
type Input = { data: Float32Array | Int32Array; shape: number[] };
const randf = (shape: number[], scale = 1): Input => {
  const n = shape.reduce((p, d) => p * d, 1);
  return { data: Float32Array.from({ length: n }, () => rng.normal() * scale), shape };
};
const ints = (shape: number[], f: (i: number) => number): Input => {
  const n = shape.reduce((p, d) => p * d, 1);
  return { data: Int32Array.from({ length: n }, (_, i) => f(i)), shape };
};

/** max |a − b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / Math.max(den, 1e-30);
}

/** Output and input gradients of sum(f(xs) · W) on one backend (W: fixed random weights). */
function runOn(be: Backend, f: (...xs: Tensor[]) => Tensor, inputs: Input[], w: Float32Array): { out: Float32Array; grads: (Float32Array | null)[] } {
  const xs = inputs.map((x) => {
    const t = tensor(x.data.slice(), x.shape, x.data instanceof Float32Array ? 'float32' : 'int32', be);
    return x.data instanceof Float32Array ? t.requireGrad() : t;
  });
  const y = f(...xs);
  assert.equal(y.backend, be, 'the op stays on its backend');
  const W = tensor(w, [...y.shape], 'float32', be);
  sum(mul(y, W)).backward();
  return { out: y.dataSync() as Float32Array, grads: xs.map((x) => (x.requiresGrad ? (x.grad!.dataSync() as Float32Array) : null)) };
}

/** Compares op f on wasm with ref: forward and every input gradient within tol (relative to the largest entry). */
function check(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Input[], tol = 2e-5): void {
  const probe = f(...inputs.map((x) => tensor(x.data, x.shape, x.data instanceof Float32Array ? 'float32' : 'int32', refBackend)));
  const w = Float32Array.from({ length: probe.size }, () => rng.normal());
  const r = runOn(refBackend, f, inputs, w);
  // outside a scope (results copied out to JS arrays) and inside one (resident results, operands by address)
  for (const [how, o] of [['', runOn(wasm, f, inputs, w)], [' (in a scope)', withScope(wasm, () => runOn(wasm, f, inputs, w))]] as const) {
    const e = relErr(o.out, r.out);
    assert.ok(e <= tol, `${name}${how}: forward rel err ${e.toExponential(2)} > ${tol}`);
    r.grads.forEach((g, i) => {
      if (!g) return;
      const eg = relErr(o.grads[i]!, g);
      assert.ok(eg <= tol, `${name}${how}: gradient of input ${i} rel err ${eg.toExponential(2)} > ${tol}`);
    });
  }
}

function matmulCases(): void {
  // M, N, K: not multiples of the 3×12 tile, 1, K = 0 (zeros), large K (several K blocks), and K split unevenly
  const sizes: [number, number, number][] = [[1, 1, 1], [1, 7, 5], [5, 1, 3], [3, 5, 0], [3, 12, 4], [4, 13, 9], [37, 29, 600], [50, 70, 1100], [200, 25, 33]];
  for (const [M, N, K] of sizes) {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const a = randf(tA ? [K, M] : [M, K]), b = randf(tB ? [N, K] : [K, N]);
      check(`matmul ${M}x${N}x${K} tA=${tA} tB=${tB}`, (x, y) => matmul(x, y, { transA: tA, transB: tB }), [a, b]);
    }
  }
  // batched, and broadcast batch dims (a shared 2-D B; a broadcast A; both broadcast)
  check('matmul batched', (x, y) => matmul(x, y), [randf([3, 7, 9]), randf([3, 9, 14])]);
  check('matmul batched tA tB', (x, y) => matmul(x, y, { transA: true, transB: true }), [randf([2, 3, 9, 7]), randf([2, 3, 14, 9])]);
  check('matmul broadcast 2-D B', (x, y) => matmul(x, y, { transB: true }), [randf([2, 3, 5, 8]), randf([13, 8])]);
  check('matmul broadcast 2-D B, tA', (x, y) => matmul(x, y, { transA: true }), [randf([4, 8, 5]), randf([8, 13])]);
  check('matmul broadcast A', (x, y) => matmul(x, y), [randf([6, 11]), randf([4, 11, 10])]);
  check('matmul broadcast both', (x, y) => matmul(x, y), [randf([2, 1, 6, 11]), randf([1, 3, 11, 10])]);
}

function modelOpCases(): void {
  const B = 2, T = 7, C = 24, NH = 4, NKV = 2, HD = 6, V = 19;
  check('rmsNorm', (x, w) => rmsNorm(x, w, 1e-5), [randf([B, T, C]), randf([C])]);
  const invFreq = Float32Array.from({ length: HD / 2 }, (_, j) => 1 / 10000 ** ((2 * j) / HD));
  const positions = ints([B, T], (i) => (i % T) + (i >= T ? 3 : 0));
  check('rope', (x, p) => rope(x, p, { invFreq, attentionScaling: 1 }), [randf([B, T, NH, HD]), positions]);
  // ≥ 1024 elements (the wasm path), HD = 16, scaled cos/sin, packed-style positions
  const invFreq16 = Float32Array.from({ length: 8 }, (_, j) => 1 / 500000 ** ((2 * j) / 16));
  check('rope HD 16, scaling 1.2', (x, p) => rope(x, p, { invFreq: invFreq16, attentionScaling: 1.2 }),
    [randf([2, 9, 5, 16]), ints([2, 9], (i) => (i * 7) % 11)]);
  const q = randf([B, T, NH, HD]), k = randf([B, T, NKV, HD]), v = randf([B, T, NKV, HD]);
  check('attention causal GQA', (a, b, c) => attention(a, b, c), [q, k, v]);
  check('attention key mask', (a, b, c, m) => attention(a, b, c, { keyMask: m }), [q, k, v, ints([B, T], (i) => (i % T < 2 && i >= T ? 0 : 1))]);
  check('attention documents', (a, b, c, d) => attention(a, b, c, { documentIds: d }), [q, k, v, ints([B, T], (i) => ((i % T) < 3 ? 0 : 1))]);
  check('attention non-causal', (a, b, c) => attention(a, b, c, { causal: false }), [q, k, v]);
  const tgt = ints([B * T], (i) => (i % 5 === 0 ? -100 : (i * 7) % V));
  check('crossEntropy', (z, t) => crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }), [randf([B * T, V], 3), tgt]);
  check('crossEntropy smoothing + z-loss', (z, t) => crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0.1, zLoss: 1e-3 }), [randf([B * T, V], 3), tgt]);
  check('embedding (repeated ids)', (w, i) => embedding(w, i), [randf([V, C]), ints([B, T], (i) => (i * 5) % 4)]);
  check('softmax', (x) => softmax(x), [randf([B * T, V], 2)]);
  check('logSoftmax', (x) => logSoftmax(x), [randf([B * T, V], 2)]);
  check('logsumexp', (x) => logsumexp(x), [randf([B * T, V], 2)]);
  check('attention KV-cache offset (T < S)', (a, b, c) => attention(a, b, c), [randf([B, 3, NH, HD]), k, v]);
  check('attention HD = 16, T = 37', (a, b, c) => attention(a, b, c), [randf([2, 37, 4, 16]), randf([2, 37, 1, 16]), randf([2, 37, 1, 16])]);
  // T ≥ 16 runs the blocked kernel (32-row query blocks through the GEMM): T = 150 spans 5 blocks, HD = 12 is no
  // multiple of the 8-wide tile; masks, documents, non-causal, a KV-cache offset and GQA in that path too
  {
    const TL = 150, qL = randf([2, TL, 4, 12]), kL = randf([2, TL, 2, 12]), vL = randf([2, TL, 2, 12]);
    check('attention blocked, causal GQA', (a, b, c) => attention(a, b, c), [qL, kL, vL]);
    check('attention blocked, key mask (left padding: first rows see no key)', (a, b, c, m) => attention(a, b, c, { keyMask: m }),
      [qL, kL, vL, ints([2, TL], (i) => (i >= TL && i % TL < 70 ? 0 : 1))]);
    check('attention blocked, documents', (a, b, c, d) => attention(a, b, c, { documentIds: d }), [qL, kL, vL, ints([2, TL], (i) => Math.floor((i % TL) / 41))]);
    check('attention blocked, non-causal', (a, b, c) => attention(a, b, c, { causal: false }), [qL, kL, vL]);
    check('attention blocked, KV offset (T = 20 < S = 150)', (a, b, c) => attention(a, b, c), [randf([2, 20, 4, 12]), kL, vL]);
    // the scale is applied inside the exp pass when positive; a negative or zero one reorders the scores
    const pad = ints([2, TL], (i) => (i >= TL && i % TL < 30 ? 0 : 1));
    check('attention blocked, key mask, scale −0.3', (a, b, c, m) => attention(a, b, c, { keyMask: m, scale: -0.3 }), [qL, kL, vL, pad]);
    check('attention blocked, key mask, scale 0', (a, b, c, m) => attention(a, b, c, { keyMask: m, scale: 0 }), [qL, kL, vL, pad]);
  }
  // elementwise: sizes ≥ 1024 (smaller ones stay on ref) and not multiples of 4
  const big = [3, 7, 53];
  check('SwiGLU silu(a)·b', (a, b) => mul(silu(a), b), [randf(big), randf(big)]);
  check('swiglu (fused op)', (a, b) => swiglu(a, b), [randf(big, 3), randf(big)]);
  check('embedding large (gather in wasm)', (w, i) => embedding(w, i), [randf([301, 40]), ints([3, 57], (i) => (i * 37) % 301)]);
  for (const [name, f] of [['add', add], ['sub', sub], ['mul', mul], ['div', div]] as const) {
    check(`${name} same shape`, (a, b) => f(a, b), [randf(big), name === 'div' ? { data: Float32Array.from({ length: 1113 }, () => 0.5 + rng.uniform()), shape: big } : randf(big)]);
    check(`${name} scalar`, (a) => f(a, 1.7), [randf(big)]);
  }
  // fused LM head + cross-entropy: uneven chunks, ignored rows, smoothing + z-loss, per-row ('none') gradients
  const lceT = ints([33], (i) => (i % 4 === 0 ? -100 : (i * 13) % 301));
  const lceIn = () => [randf([33, 40]), randf([301, 40], 0.3), lceT];
  check('linearCrossEntropy mean, chunk 5', (h, w, t) => linearCrossEntropy(h, w, t, { chunkSize: 5 }), lceIn());
  check('linearCrossEntropy sum, smoothing + z-loss, chunk 64', (h, w, t) => linearCrossEntropy(h, w, t, { reduction: 'sum', labelSmoothing: 0.1, zLoss: 1e-3, chunkSize: 64 }), lceIn());
  check('linearCrossEntropy none, chunk 7', (h, w, t) => linearCrossEntropy(h, w, t, { reduction: 'none', chunkSize: 7 }), lceIn());
  check('linearCrossEntropy softcap (ref fallback)', (h, w, t) => linearCrossEntropy(h, w, t, { softcap: 5 }), lceIn());
  check('sum of squares (gradient norm)', (x) => sum(square(x)), [randf([37, 211])]);
  check('sum all of a 4-D tensor', (x) => sum(x), [randf([3, 5, 7, 41])]);
  check('rmsNorm large rows', (x, w) => rmsNorm(x, w, 1e-6), [randf([67, 288]), randf([288])]);
  check('crossEntropy V = 1001', (z, t) => crossEntropyRows(z, t, { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }), [randf([33, 1001], 4), ints([33], (i) => (i * 37) % 1001)]);
  check('add broadcast', (a, b) => add(a, b), [randf([B, T, C]), randf([C])]);
  check('linear x·Wᵀ', (x, w) => reshape(matmul(reshape(x, [B * T, C]), w, { transB: true }), [B, T, 2 * C]), [randf([B, T, C]), randf([2 * C, C])]);
}

describe('wasm backend vs ref', () => {
  test('the kernel table: wasm kernels and the explicit ref fallback cover every kernel', () => {
    const own = wasmKernelNames(), fb = fallbackKernels();
    assert.ok(own.includes('matmul'));
    assert.deepEqual([...own, ...fb].sort(), Object.keys(refKernels).sort());
    for (const k of own) assert.ok(!fb.includes(k), `${k} is both ported and a fallback`);
  });

  for (const threads of [1, 2]) {
    test(`ops forward and backward, ${threads} thread(s)`, async () => {
      await setWasmThreads(threads);
      assert.equal(wasmThreads(), threads);
      matmulCases();
      modelOpCases();
    });
  }

  test('every call through the pool (2 threads, threshold 0): tiny shapes split across threads', async () => {
    await setWasmThreads(2);
    setParallelThreshold(0);
    try {
      matmulCases();
      modelOpCases();
    } finally {
      setParallelThreshold(null);
    }
  });

  test('a GEMM large enough to thread by default matches ref (all layouts)', async () => {
    await setWasmThreads(2);
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const M = 301, N = 203, K = 517;
      check(`matmul ${M}x${N}x${K} tA=${tA} tB=${tB}`, (x, y) => matmul(x, y, { transA: tA, transB: tB }),
        [randf(tA ? [K, M] : [M, K]), randf(tB ? [N, K] : [K, N])], 5e-5);
    }
  });

  test('adamStep (AdamW and Adam + L2) in place matches ref over several steps', () => {
    for (const decoupled of [true, false]) {
      const n = 5003;
      const init = () => ({ p: Float32Array.from({ length: n }, () => rng.normal()), m: new Float32Array(n), v: new Float32Array(n) });
      const a = init(), b = { p: a.p.slice(), m: a.m.slice(), v: a.v.slice() };
      for (let step = 1; step <= 3; step++) {
        const g = Float32Array.from({ length: n }, () => rng.normal());
        const args = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, decoupled, amsgrad: false };
        const group = (x: typeof a) => ({ params: [x.p], grads: [g], m: [x.m], v: [x.v], vMax: null, sizes: [n], steps: [step] });
        refKernels.adamStep(group(a), args, null, 'float32');
        kernel(wasm, 'adamStep')(group(b), args, null, 'float32');
      }
      for (const k of ['p', 'm', 'v'] as const) {
        const e = relErr(b[k], a[k]);
        assert.ok(e <= 1e-5, `adamStep decoupled=${decoupled}: ${k} rel err ${e}`);
      }
    }
  });

  test('a NaN logit or hidden state gives a NaN loss on the wasm kernels (never a silently finite one)', () => {
    const V = 1001, N = 6;
    const z = Float32Array.from({ length: N * V }, () => rng.normal());
    z[2 * V + 17] = NaN; // row 2, not the max position
    const t = Int32Array.from({ length: N }, (_, i) => (i * 31) % V);
    const rows = crossEntropyRows(tensor(z, [N, V], 'float32', wasm), tensor(t, [N], 'int32', wasm), { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 }).dataSync();
    assert.ok(Number.isNaN(rows[2]) && Number.isFinite(rows[1]), `row losses ${Array.from(rows)}`);
    const h = Float32Array.from({ length: 600 * 40 }, () => rng.normal()); h[5 * 40 + 3] = NaN;
    const w = Float32Array.from({ length: V * 40 }, () => rng.normal() * 0.1);
    const lce = linearCrossEntropy(tensor(h, [600, 40], 'float32', wasm), tensor(w, [V, 40], 'float32', wasm),
      tensor(Int32Array.from({ length: 600 }, (_, i) => i % V), [600], 'int32', wasm));
    assert.ok(Number.isNaN(lce.dataSync()[0]), 'fused loss with a NaN hidden state');
  });

  test('softmax weights below e^-69 are exactly 0 on wasm (no denormals: a GEMM over them would run ~145× slower)', () => {
    const V = 1001;
    const z = Float32Array.from({ length: 2 * V }, (_, i) => (i % V === 7 ? 0 : -80 - (i % 5))); // one logit 80+ above the rest
    const x = tensor(z, [2, V], 'float32', wasm).requireGrad();
    sum(crossEntropyRows(x, tensor(Int32Array.from([7, 7]), [2], 'int32', wasm), { ignoreIndex: -100, labelSmoothing: 0, zLoss: 0 })).backward();
    const g = x.grad!.dataSync();
    let denormal = 0, zeros = 0;
    for (let i = 0; i < g.length; i++) { if (g[i] === 0) zeros++; else if (Math.abs(g[i]!) < 1.1754944e-38) denormal++; }
    assert.equal(denormal, 0);
    assert.equal(zeros, 2 * V, 'p − onehot is 0 everywhere: p = 1 at the target (to f32), e^-80 → 0 elsewhere');
  });

  test('float64 runs on the ref kernels (bit-identical)', () => {
    const a = Float64Array.from({ length: 35 }, () => rng.normal()), b = Float64Array.from({ length: 56 }, () => rng.normal());
    const r = matmul(tensor(a, [5, 7], 'float64', refBackend), tensor(b, [7, 8], 'float64', refBackend)).dataSync();
    const o = matmul(tensor(a, [5, 7], 'float64', wasm), tensor(b, [7, 8], 'float64', wasm)).dataSync();
    assert.ok(o instanceof Float64Array);
    assert.deepEqual(Array.from(o), Array.from(r));
  });
});

test('a job dispatched before a worker enters its loop is not missed (the generation is read before \'ready\')', () => {
  // The caller may dispatch as soon as every worker said 'ready'; a worker whose loop read the job generation only
  // when it started would take that job for one already seen and sleep while the caller waits for it (a hang seen
  // ~1 start in 7 under load). Here the "job" is the exit job, dispatched between initialGeneration() and the loop:
  // the loop must run it and return. Run in a child: the bug would block it in Atomics.wait.
  const script = `
    import { ARGS_BYTE, CTL_BYTES, FN, GEN, initialGeneration, workerLoop } from ${JSON.stringify(new URL('../../src/backends/wasm/pool.js', import.meta.url).href)};
    const ctl = new SharedArrayBuffer(CTL_BYTES);
    const init = { module: null, memory: null, ctl, tid: 1, names: [] };
    const gen0 = initialGeneration(init);
    const c = new Int32Array(ctl, 0, ARGS_BYTE / 4);
    Atomics.store(c, FN, -1);
    Atomics.add(c, GEN, 1);
    workerLoop(init, {}, gen0);
    console.log('returned');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.error, undefined, `the worker loop missed the job: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'returned');
});

test('a process that used 2 threads exits by itself (workers are unref\'d, no shutdown call)', () => {
  const script = `
    import { tensor, matmul } from ${JSON.stringify(new URL('../../src/index.js', import.meta.url).href)};
    import { registerWasmBackend } from ${JSON.stringify(new URL('../../src/backends/wasm/index.js', import.meta.url).href)};
    const be = await registerWasmBackend({ threads: 2 });
    const a = tensor(new Float32Array(600 * 300).fill(1), [600, 300], 'float32', be);
    console.log(matmul(a, a, { transB: true }).dataSync()[0]);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.error, undefined, `the child did not exit in time: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '300');
});

// ---- HF parity through the wasm backend ------------------------------------------------------------------

function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0, d = 0;
  for (let i = 0; i < a.length; i++) { n += (a[i]! - b[i]!) ** 2; d += b[i]! ** 2; }
  return Math.sqrt(n / d);
}

for (const threads of [1, 2]) {
  test(`HF parity on the wasm backend (hf-llama-tiny, ${threads} thread(s)): loss, logits, every gradient`, async () => {
    await setWasmThreads(threads);
    const name = 'hf-llama-tiny';
    const ref = parseSafetensors(readFileSync(fixturePath(name, 'reference.safetensors')), name).tensors;
    const asT = (r: RawTensor) => tensor(r.data, r.shape, r.dtype, wasm);
    const model = await loadPretrained(fixturePath(name), { backend: wasm });
    assert.equal(model.backend, wasm);
    const ids = asT(ref.get('input_ids')!), mask = asT(ref.get('attention_mask')!), labels = asT(ref.get('labels')!);
    const { logits, loss } = model.forward(ids, { attentionMask: mask, labels });
    assert.equal(loss!.backend, wasm);
    const lossVal = await loss!.item(), refLoss = ref.get('loss')!.data[0]!;
    assert.ok(Math.abs(lossVal - refLoss) <= 1e-5, `loss ${lossVal} vs HF ${refLoss}`);
    const lg = await logits.data(), refLg = ref.get('logits')!.data, m = mask.dataSync();
    const [B, T] = ids.shape as [number, number], V = model.config.vocabSize;
    let maxAbs = 0;
    for (let i = 0; i < B * T; i++) {
      if (m[i] !== 1) continue;
      for (let v = 0; v < V; v++) maxAbs = Math.max(maxAbs, Math.abs(lg[i * V + v]! - refLg[i * V + v]!));
    }
    assert.ok(maxAbs <= 1e-4, `logits max-abs diff ${maxAbs}`);
    loss!.backward();
    let n = 0;
    for (const [pname, p] of model.namedParameters()) {
      const g = ref.get(`grad.${pname}`);
      assert.ok(g, `no reference gradient for ${pname}`);
      const err = relL2(await p.grad!.data(), g.data);
      assert.ok(err <= 1e-4, `gradient of ${pname}: rel L2 error ${err}`);
      n++;
    }
    assert.ok(n > 10, 'checked every parameter');

    // the fused LM head + loss (never holds the logits) on the wasm kernel: same loss and gradients
    model.zeroGrad();
    const fused = model.forward(ids, { attentionMask: mask, labels, fusedLoss: true });
    const fusedVal = await fused.loss.item();
    assert.ok(Math.abs(fusedVal - refLoss) <= 1e-5, `fused loss ${fusedVal} vs HF ${refLoss}`);
    fused.loss.backward();
    for (const [pname, p] of model.namedParameters()) {
      const err = relL2(await p.grad!.data(), ref.get(`grad.${pname}`)!.data);
      assert.ok(err <= 1e-4, `fused loss: gradient of ${pname}: rel L2 error ${err}`);
    }
  });
}
