// What only the wasm backend has: its kernel table and ref fallbacks, NaN and denormal behaviour of its kernels,
// float64 on ref, and its thread pool's start and exit. Ops, parity and training against ref are in the
// conformance suite (test/conformance), run at 1 and 2 threads and with every call through the pool.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  type Backend, RNG, crossEntropyRows, linearCrossEntropy, matmul, refBackend, sum, tensor,
} from '../../src/index.js';
import {
  fallbackKernels, registerWasmBackend, setParallelThreshold, shutdownWasmBackend, wasmAvailable, wasmKernelNames,
} from '../../src/backends/wasm/index.js';
import { refKernels } from '../../src/backends/ref/kernels.js';
import { CTL_BYTES, workerSource } from '../../src/backends/wasm/pool.js';

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

describe('wasm backend vs ref', () => {
  test('the kernel table: wasm kernels and the explicit ref fallback cover every kernel', () => {
    const own = wasmKernelNames(), fb = fallbackKernels();
    assert.ok(own.includes('matmul'));
    assert.deepEqual([...own, ...fb].sort(), Object.keys(refKernels).sort());
    for (const k of own) assert.ok(!fb.includes(k), `${k} is both ported and a fallback`);
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
    import { ARGS_BYTE, CTL_BYTES, FN, GEN, LAYOUT, initialGeneration, workerLoop } from ${JSON.stringify(new URL('../../src/backends/wasm/pool.js', import.meta.url).href)};
    const ctl = new SharedArrayBuffer(CTL_BYTES);
    const init = { module: null, memory: null, ctl, tid: 1, names: [] };
    const gen0 = initialGeneration(init, LAYOUT);
    const c = new Int32Array(ctl, 0, ARGS_BYTE / 4);
    Atomics.store(c, FN, -1);
    Atomics.add(c, GEN, 1);
    workerLoop(init, {}, gen0, LAYOUT);
    console.log('returned');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.error, undefined, `the worker loop missed the job: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'returned');
});

test('the worker code is self-contained: its source runs after a minifier renames every module-level name', () => {
  // Bundlers rename module-level names; the worker's source (Function.prototype.toString of pool.ts's worker
  // functions) must use only its parameters and globals. Evaluate it with none of pool.ts's names in scope.
  const src = workerSource('browser');
  const posted: unknown[] = [];
  const handlers: ((e: { data: unknown }) => void)[] = [];
  const self = { addEventListener: (_t: string, f: (e: { data: unknown }) => void) => { handlers.push(f); }, postMessage: (m: unknown) => posted.push(m) };
  new Function('self', 'GEN', 'LAYOUT', 'workerLoop', 'initialGeneration', src)(self, undefined, undefined, undefined, undefined);
  assert.equal(handlers.length, 1, 'the worker listens for its init message');
  handlers[0]!({ data: { module: null, memory: null, ctl: new SharedArrayBuffer(CTL_BYTES), tid: 1, names: [] } });
  assert.equal(posted.length, 1);
  assert.match(JSON.stringify(posted[0]), /"error"/, 'a bad init message is reported, not thrown');
  assert.match(workerSource('node'), /require\("node:worker_threads"\)/);
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

