// Tensors resident in the wasm memory: step scopes free what a step made and keep parameters, gradients and
// optimizer state; a released tensor is an error to use; memory is reused from step to step; and training on the
// wasm backend (resident tensors, no copies) gives the ref backend's numbers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW, type Backend, LlamaForCausalLM, type LlamaConfigInput, RNG, SGD, type Tensor, add, keep, matmul, mul, openScope, refBackend, rmsNorm,
  sum, tensor, withScope,
} from '../../src/index.js';
import { registerWasmBackend, setWasmThreads, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { BlockHeap } from '../../src/backends/wasm/runtime.js';
import { ListSource, makeTrainer, randomBatches } from '../train/util.js';

let wasm: Backend;
let heap: BlockHeap;
before(async () => {
  wasm = await registerWasmBackend({ threads: 2 });
  heap = wasm.memory as BlockHeap;
});
after(async () => {
  await shutdownWasmBackend();
});

const big = (n: number, v = 1) => tensor(new Float32Array(n).fill(v), [n], 'float32', wasm);

test('inside a scope kernel outputs are resident; outside they are JS arrays', () => {
  const a = big(4096, 2);
  assert.ok(heap.isResident(a.storage), 'uploads live in the wasm memory');
  const outside = add(a, a);
  assert.ok(!heap.isResident(outside.storage), 'outside every scope a result is a GC-managed copy');
  const scope = openScope(wasm);
  const inside = add(a, a);
  assert.ok(heap.isResident(inside.storage), 'inside a scope the result is the block itself');
  assert.equal(inside.dataSync()[4095], 4);
  scope.close();
  assert.equal(outside.dataSync()[0], 4);
});

test('closing a scope releases what it made: using such a tensor is a clear error; kept and returned tensors live', () => {
  const a = big(4096, 1.5);
  let temp!: Tensor, kept!: Tensor, returned!: Tensor;
  const scope = openScope(wasm);
  try {
    temp = mul(a, a);
    kept = keep(add(a, a));
    returned = add(a, 1);
  } finally {
    scope.close(returned);
  }
  assert.throws(() => temp.dataSync(), /was released \(by the step scope it was made in/);
  assert.throws(() => add(temp, a), /was released/);
  assert.equal(kept.dataSync()[7], 3);
  assert.equal(returned.dataSync()[7], 2.5);
  // withScope returns what fn returns, the rest is freed
  const [x, y] = withScope(wasm, () => [add(a, a), mul(a, 2)]);
  assert.equal(x!.dataSync()[0], 3);
  assert.equal(y!.dataSync()[0], 3);
  // nested: a tensor returned from the inner scope belongs to the outer one, and dies with it
  const outer = openScope(wasm);
  const fromInner = withScope(wasm, () => add(a, a));
  assert.equal(fromInner.dataSync()[0], 3);
  outer.close();
  assert.throws(() => fromInner.dataSync(), /was released/);
});

test('dispose() frees at once; zeroGrad frees gradients backward() allocated; the freed block is reused', () => {
  const scope = openScope(wasm);
  try {
    const t = big(8192, 1);
    const addr = (t.storage as Float32Array).byteOffset;
    t.dispose();
    assert.throws(() => t.dataSync(), /was released/);
    const u = big(8192, 2);
    assert.equal((u.storage as Float32Array).byteOffset, addr, 'same size class: the block is reused');
    assert.equal(t.size, 8192, 'shape information stays readable');

    const w = big(4096, 0.5).requireGrad();
    keep(w);
    sum(mul(w, w)).backward();
    const g = w.grad!;
    assert.ok(heap.isResident(g.storage), 'a gradient made inside a scope is resident');
    const opt = new AdamW([w], { lr: 0.1, weightDecay: 0 });
    opt.step();
    opt.zeroGrad();
    assert.equal(w.grad, null);
    assert.throws(() => g.dataSync(), /was released/, 'zeroGrad freed the engine-made gradient');
    assert.ok(Math.abs(w.dataSync()[0]! - 0.4) < 1e-6, 'the AdamW update landed in the resident parameter');
  } finally {
    scope.close();
  }
});

test('a persistent tensor keeps a storage assigned inside a scope (clipGradValue-style replacement)', () => {
  const p = keep(big(2048, 1));
  withScope(wasm, () => { p.storage = wasm.upload(new Float32Array(2048).fill(7)); });
  assert.equal(p.dataSync()[100], 7);
});

const memCfg: LlamaConfigInput = {
  vocabSize: 300, hiddenSize: 64, intermediateSize: 160, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
  initializerRange: 0.05, tieWordEmbeddings: true,
};

async function trainLosses(be: Backend, steps: number, onStep?: (step: number) => void): Promise<{ losses: number[]; norms: number[] }> {
  const model = new LlamaForCausalLM(memCfg, { backend: be, seed: 3 });
  const batches = randomBatches(6, 4, 40, memCfg.vocabSize!, 9);
  const trainer = makeTrainer(model, new ListSource(batches), { maxSteps: steps, gradAccumSteps: 2 });
  const losses: number[] = [], norms: number[] = [];
  trainer.on('step', (m) => { losses.push(m.loss); norms.push(m.gradNorm); onStep?.(m.step); });
  await trainer.train();
  return { losses, norms };
}

for (const threads of [1, 2]) {
  test(`the Trainer on wasm (resident tensors, ${threads} thread(s)) matches ref step by step; memory stops growing after step 1`, async () => {
    await setWasmThreads(threads);
    const ref = await trainLosses(refBackend, 8);
    const highWater: number[] = [];
    const ours = await trainLosses(wasm, 8, () => highWater.push(heap.highWater));
    for (let i = 0; i < 8; i++) {
      const e = Math.abs(ours.losses[i]! - ref.losses[i]!) / Math.abs(ref.losses[i]!);
      assert.ok(e <= 1e-4, `step ${i + 1}: loss ${ours.losses[i]} vs ref ${ref.losses[i]} (rel ${e.toExponential(2)})`);
      const en = Math.abs(ours.norms[i]! - ref.norms[i]!) / Math.abs(ref.norms[i]!);
      assert.ok(en <= 1e-3, `step ${i + 1}: grad norm ${ours.norms[i]} vs ref ${ref.norms[i]}`);
    }
    assert.ok(ours.losses[7]! < ours.losses[0]!, 'the loss falls');
    // Step 1 allocates the optimizer state and every size class; later steps reuse freed blocks.
    assert.deepEqual(highWater.slice(2), new Array(highWater.length - 2).fill(highWater[1]),
      `wasm heap high-water mark per step: ${highWater.join(', ')}`);
  });
}

test('a GEMM inside a scope reads resident operands in place (no copies) and matches ref', () => {
  const M = 70, N = 90, K = 130;
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i));
  const expect = matmul(tensor(a, [M, K], 'float32', refBackend), tensor(b, [K, N], 'float32', refBackend)).dataSync();
  const got = withScope(wasm, () => {
    const c = matmul(tensor(a, [M, K], 'float32', wasm), tensor(b, [K, N], 'float32', wasm));
    assert.ok(heap.isResident(c.storage));
    return c.dataSync();
  });
  let err = 0;
  for (let i = 0; i < M * N; i++) err = Math.max(err, Math.abs(got[i]! - expect[i]!));
  assert.ok(err < 1e-4, `max abs err ${err}`);
});

test('the block heap: no two live blocks overlap, freed neighbours merge, best fit reuses freed space', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const h = new BlockHeap(memory, 64);
  const rng = new RNG(5);
  const live = new Map<number, number>(); // addr → requested bytes
  for (let i = 0; i < 4000; i++) {
    if (live.size > 0 && rng.uniform() < 0.45) {
      const addrs = [...live.keys()];
      const a = addrs[rng.int(addrs.length)]!;
      h.free(a);
      live.delete(a);
    } else {
      const bytes = 1 + rng.int(rng.uniform() < 0.1 ? 3_000_000 : 20_000);
      const a = h.alloc(bytes);
      assert.equal(a % 64, 0, 'blocks are 64-byte aligned');
      live.set(a, bytes);
    }
    if (i % 97 === 0) {
      const spans = [...live].map(([a, n]) => [a, a + n] as const).sort((p, q) => p[0] - q[0]);
      for (let k = 1; k < spans.length; k++) assert.ok(spans[k]![0] >= spans[k - 1]![1], `blocks overlap at step ${i}`);
      assert.ok(memory.buffer.byteLength >= h.highWater, 'the memory covers every block');
    }
  }
  for (const a of live.keys()) h.free(a);
  assert.equal(h.inUse, 0);
  // everything merged back: one allocation as large as the whole peak fits without growing the memory
  const peak = h.highWater;
  const big = h.alloc(Math.floor((peak - 64) / 2)); // (size classes round up by ≤ 12.5%)
  assert.equal(big, 64, 'the bump pointer is back at the base');
  assert.equal(h.highWater, peak, 'no growth: the freed space was merged into one region');
  h.free(big);
  assert.throws(() => h.free(big), /freed twice/);
});

test('withScope with an async fn: the scope stays open across await, then frees all but the resolved tensors', async () => {
  const a = big(4096, 2);
  let temp!: Tensor;
  const kept = await withScope(wasm, async () => {
    temp = mul(a, a);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal((await temp.data())[0], 4, 'still alive after an await inside the scope');
    return add(temp, 1);
  });
  assert.throws(() => temp.dataSync(), /was released/);
  assert.equal((await kept.data())[0], 5);
  await assert.rejects(withScope(wasm, async () => { mul(a, a); await Promise.resolve(); throw new Error('boom'); }), /boom/);
});

test('backward frees a gradient once it is added to another: a residual chain\'s backward peak does not grow with its depth', () => {
  // h ← h + rmsNorm(h) L times: every h gets two gradients (the residual's and rmsNorm's); the engine adds one into
  // the other and frees the spent one, so backward holds a few [N] buffers at a time whatever L is. (Before: every
  // rmsNorm gradient and every sum lived until the step ended, 2 buffers per layer.)
  const N = 64 * 1024, bytes = N * 4;
  const backwardGrowth = (L: number): number => {
    const scope = openScope(wasm);
    try {
      const x = tensor(Float32Array.from({ length: N }, (_, i) => Math.sin(i)), [64, 1024], 'float32', wasm);
      x.requiresGrad = true;
      const w = tensor(new Float32Array(1024).fill(1), [1024], 'float32', wasm);
      let h = x;
      for (let l = 0; l < L; l++) h = add(h, rmsNorm(h, w, 1e-6));
      const loss = sum(h);
      const start = heap.inUse;
      let peak = start;
      const alloc = heap.alloc.bind(heap);
      heap.alloc = (n: number) => { const p = alloc(n); peak = Math.max(peak, heap.inUse); return p; };
      try {
        loss.backward();
      } finally {
        heap.alloc = alloc;
      }
      assert.ok(x.grad, 'x has its gradient');
      return (peak - start) / bytes;
    } finally {
      scope.close();
    }
  };
  const shallow = backwardGrowth(2), deep = backwardGrowth(12);
  assert.ok(deep <= shallow + 0.5, `backward's extra memory: ${shallow.toFixed(1)} buffers at depth 2, ${deep.toFixed(1)} at depth 12`);
  assert.ok(deep < 6, `backward held ${deep.toFixed(1)} [N] buffers at once`);
});

test('optimizer state is allocated with the optimizer (below any step\'s activations); the state dict stays empty until a step', async () => {
  const p = keep(tensor(new Float32Array(64 * 1024).fill(1), [64, 1024], 'float32', wasm));
  p.requiresGrad = true;
  const frozen = keep(tensor(new Float32Array(64 * 1024).fill(1), [64, 1024], 'float32', wasm)); // no gradient: no state
  const before = heap.inUse;
  const opt = new AdamW([p, frozen], { lr: 0.1 });
  assert.equal(heap.inUse - before, 2 * 64 * 1024 * 4, 'exp_avg and exp_avg_sq of p, made now');
  assert.deepEqual((await opt.stateDict()).state, {}, 'no state before a step (as torch)');
  const top = heap.highWater;
  withScope(wasm, () => {
    mul(p, 2); // a step's activations
    p.grad = keep(tensor(new Float32Array(64 * 1024).fill(0.5), [64, 1024], 'float32', wasm));
    opt.step();
  });
  assert.ok(heap.highWater <= top + 2 * 64 * 1024 * 4 + 4096, 'the step allocated no state of its own');
  const sd = await opt.stateDict();
  assert.deepEqual(Object.keys(sd.state), ['0']);
  assert.equal(sd.state[0]!['step'], 1);
  // loading a state dict frees the buffers that were made for it and never used
  const opt2 = new SGD([p], { lr: 0.1, momentum: 0.9 });
  const withReserve = heap.inUse;
  opt2.loadStateDict({ state: {}, paramGroups: [{ params: [0], lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0 }] });
  assert.equal(withReserve - heap.inUse, 64 * 1024 * 4, 'the momentum buffer made with SGD is freed');
  p.grad = null;
});
