// checkpoint(fn, inputs): recomputation in backward. Finite differences on a composite fn (float64, ref), the same
// numbers as the plain graph (parameters found as fn runs, frozen ones untouched, inputs that need no gradient,
// gradients passed straight through, accumulation, nesting), random draws replayed, misuse refused, and on the wasm
// backend the memory: fn's intermediates are freed when the forward returns and the recomputed ones after backward.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Backend, InputError, RNG, type Tensor, add, checkpoint, isGradEnabled, matmul, mul, noGrad, openScope, recordRandomState,
  reshape, rmsNorm, silu, sum, swiglu, tensor,
} from '../../src/index.js';
import { registerWasmBackend, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import type { BlockHeap } from '../../src/backends/wasm/runtime.js';
import { gradcheck, randn } from '../gradcheck.js';

const rng = new RNG(3);

/** A residual block like a decoder layer's MLP half: x + (swiglu(n·W1, n·W2) · W3) with n = rmsNorm(x, g). */
function block(x: Tensor, g: Tensor, w1: Tensor, w2: Tensor, w3: Tensor): Tensor {
  const n = rmsNorm(x, g, 1e-6);
  return add(x, matmul(swiglu(matmul(n, w1), matmul(n, w2)), w3));
}

test('checkpoint: gradients of inputs and of the parameters fn closes over match finite differences (float64)', () => {
  const x = randn([3, 4], rng), y = randn([3, 4], rng);
  const g = randn([4], rng), w1 = randn([4, 6], rng, 0.5), w2 = randn([4, 6], rng, 0.5), w3 = randn([6, 4], rng, 0.5);
  // parameters are not inputs of checkpoint: it finds them as fn runs
  gradcheck('checkpoint(block)', (a, b, gg, p1, p2, p3) => mul(checkpoint((u) => block(u, gg!, p1!, p2!, p3!), [a!]), b!), [x, y, g, w1, w2, w3]);
  // two inputs, one used twice, and a checkpoint inside a checkpoint
  gradcheck('nested checkpoints', (a, b, p1, p3) => checkpoint((u, v) => {
    const inner = checkpoint((z) => silu(matmul(z, p1!)), [u]);
    return add(mul(matmul(inner, p3!), v), u);
  }, [a!, b!]), [x, y, w1, w3]);
});

/** Values of `fn(x)` and every gradient after backward of Σ fn(x)·W, plain or checkpointed (float32, ref). */
function run(ckpt: boolean, fn: (x: Tensor) => Tensor, x: Tensor, params: Tensor[], W: Tensor, times = 1) {
  for (const t of [x, ...params]) t.grad = null;
  let out!: Float32Array;
  for (let i = 0; i < times; i++) {
    const y = ckpt ? checkpoint(fn, [x]) : fn(x);
    assert.equal(y.node?.name === 'checkpoint', ckpt && y.requiresGrad);
    out = y.dataSync() as Float32Array;
    sum(mul(y, W)).backward();
  }
  return { out: Array.from(out), grads: [x, ...params].map((t) => (t.grad ? Array.from(t.grad.dataSync()) : null)) };
}

const f32 = (shape: number[], scale = 1) => tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale), shape, 'float32');

test('checkpoint: the same output and gradients as the plain graph, bit for bit; frozen parameters get none', () => {
  const x = f32([5, 8]).requireGrad(), W = f32([5, 8]);
  const g = f32([8]).requireGrad(), w1 = f32([8, 12], 0.3).requireGrad(), w2 = f32([8, 12], 0.3), w3 = f32([12, 8], 0.3).requireGrad();
  const fn = (u: Tensor) => block(u, g, w1, w2, w3); // w2 frozen
  for (const times of [1, 2]) { // 2: the second backward accumulates into .grad
    const plain = run(false, fn, x, [g, w1, w2, w3], W, times), ck = run(true, fn, x, [g, w1, w2, w3], W, times);
    assert.deepEqual(ck, plain);
    assert.equal(ck.grads[3], null, 'a frozen parameter gets no gradient');
    assert.ok(ck.grads.filter((a) => a !== null).length === 4);
  }
  // the input's gradient is the incoming gradient itself (add passes it on), or a view of it (reshape): the caller
  // still gets a buffer of its own
  const other = f32([5, 8]), V = f32([8, 5]);
  const pass = (u: Tensor) => add(u, other), view = (u: Tensor) => reshape(u, [8, 5]);
  assert.deepEqual(run(true, pass, x, [], W), run(false, pass, x, [], W));
  assert.deepEqual(run(true, view, x, [], V), run(false, view, x, [], V));
});

test('checkpoint: an input that needs no gradient with trainable parameters still records a node (LoRA on a frozen embedding)', () => {
  const x = f32([4, 6]), W = f32([4, 6]); // x: no grad (the embedding of a frozen base)
  const a = f32([6, 6], 0.4).requireGrad(), frozen = f32([6, 6], 0.4);
  const fn = (u: Tensor) => add(matmul(u, frozen), matmul(silu(matmul(u, a)), frozen));
  const plain = run(false, fn, x, [a, frozen], W), ck = run(true, fn, x, [a, frozen], W);
  assert.deepEqual(ck, plain);
  assert.equal(ck.grads[0], null);
  assert.ok(ck.grads[1] && ck.grads[1].some((v) => v !== 0), 'the parameter got its gradient');
  // nothing requires grad: plain fn, no node
  const y = checkpoint((u) => matmul(u, frozen), [x]);
  assert.equal(y.node, null);
  assert.equal(y.requiresGrad, false);
});

test('checkpoint: random draws (dropout) replay in the recomputation, and the source ends where the plain run leaves it', () => {
  const x = f32([6, 10]).requireGrad(), W = f32([6, 10]), w = f32([10, 10], 0.3).requireGrad();
  const dropout = (src: RNG) => (u: Tensor) => {
    recordRandomState(src);
    const m = Float32Array.from({ length: u.size }, () => (src.uniform() < 0.4 ? 0 : 1 / 0.6));
    return mul(u, tensor(m, [...u.shape], 'float32'));
  };
  const results = [false, true].map((ckpt) => {
    const src = new RNG(11);
    const d = dropout(src);
    const fn = (u: Tensor) => add(u, matmul(d(silu(matmul(d(u), w))), w)); // two draws per call
    x.grad = null; w.grad = null;
    // and a draw after the checkpoint (the next layer's dropout): backward's recomputation must not rewind it
    const y = d(ckpt ? checkpoint(fn, [x]) : fn(x));
    sum(mul(y, W)).backward();
    return { out: Array.from(y.dataSync()), grads: [x, w].map((t) => Array.from(t.grad!.dataSync())), state: src.getState() };
  });
  assert.deepEqual(results[1], results[0]);
  assert.notDeepEqual(results[0]!.state, new RNG(11).getState(), 'the masks were drawn');
});

test('checkpoint: misuse is refused; under noGrad it is fn itself', () => {
  const x = f32([2, 3]).requireGrad(), w = f32([3, 3]).requireGrad();
  const h = matmul(x, w); // computed with grad outside fn
  assert.throws(() => checkpoint((u) => add(u, h), [x]),
    (e: unknown) => e instanceof InputError && /fn reads Tensor\(\[2, 3\], float32, requiresGrad\), which an op outside fn computed with grad; pass it in inputs/.test((e as Error).message));
  assert.throws(() => checkpoint(() => x, []), (e: unknown) => e instanceof InputError && /no input tensors were given/.test((e as Error).message));
  assert.throws(() => checkpoint(((u: Tensor) => [u]) as unknown as (u: Tensor) => Tensor, [x]), /fn must return a Tensor synchronously/);
  const y = noGrad(() => checkpoint((u) => matmul(u, w), [x]));
  assert.equal(y.node, null);
  assert.ok(isGradEnabled());
});

let wasm: Backend;
before(async () => { wasm = await registerWasmBackend({ threads: 2 }); });
after(async () => { await shutdownWasmBackend(); });

test('checkpoint (wasm): fn\'s intermediates are freed when the forward returns, the recomputed ones after backward', () => {
  const heap = wasm.memory as BlockHeap;
  const T = (shape: number[], scale = 1) => tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * scale), shape, 'float32', wasm);
  const x = T([64, 64]).requireGrad(), W = T([64, 64]);
  const g = T([64]).requireGrad(), w1 = T([64, 128], 0.1).requireGrad(), w2 = T([64, 128], 0.1).requireGrad(), w3 = T([128, 64], 0.1).requireGrad();
  const made: Tensor[] = [];
  const fn = (u: Tensor) => {
    const n = rmsNorm(u, g, 1e-6);
    const a = matmul(n, w1), b = matmul(n, w2), s = swiglu(a, b);
    made.push(n, a, b, s);
    return add(u, matmul(s, w3));
  };
  const scope = openScope(wasm);
  try {
    const base = heap.inUse;
    const plain = fn(x);
    const plainHeld = heap.inUse - base; // the plain graph keeps every intermediate for backward
    made.length = 0;
    const mid = heap.inUse;
    const y = checkpoint(fn, [x]);
    assert.equal(made.length, 4);
    for (const t of made) assert.throws(() => t.dataSync(), /was released/, 'forward intermediates are freed at once');
    const held = heap.inUse - mid;
    assert.equal(held, 64 * 64 * 4, 'a checkpoint holds only its output');
    assert.ok(held < plainHeld / 4, `checkpoint holds ${held} bytes, the plain graph ${plainHeld}`);
    made.length = 0;
    const before = heap.inUse;
    sum(mul(y, W)).backward();
    assert.equal(made.length, 4, 'backward recomputed fn');
    for (const t of made) assert.throws(() => t.dataSync(), /was released/, 'recomputed activations are freed after backward');
    const left = heap.inUse - before;
    // what backward left: the gradients of x and of the four parameters, and what Σ y·W and its backward leave in
    // the scope — measured on a leaf in y's place, whose gradient (one [64, 64] block) the checkpoint does not keep
    const leaf = T([64, 64]).requireGrad();
    const leafBefore = heap.inUse;
    sum(mul(leaf, W)).backward();
    const lossLeft = heap.inUse - leafBefore - 64 * 64 * 4;
    const grads = [x, g, w1, w2, w3].reduce((n, t) => n + t.size * 4, 0);
    assert.equal(left, grads + lossLeft, `after backward ${left} bytes more in use; gradients ${grads}, the loss's temporaries ${lossLeft}`);
    const ckGrads = [x, g, w1, w2, w3].map((t) => Array.from(t.grad!.dataSync()));
    for (const t of [x, g, w1, w2, w3]) t.grad = null;
    sum(mul(plain, W)).backward();
    assert.deepEqual(ckGrads, [x, g, w1, w2, w3].map((t) => Array.from(t.grad!.dataSync())), 'the same gradients as the plain graph on wasm');
  } finally {
    scope.close();
  }
});
