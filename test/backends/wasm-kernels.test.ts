// The wasm kernels called directly (below the ops, which validate ids and targets on the host): out-of-range ids
// and targets give NaN rows and losses (never a crash or an out-of-bounds read), the multi-tensor kernels
// (globalNorm, clipByNorm, adamStep, sgdStep) match ref on lists of many sizes and honour their gate, and the
// export table matches the compiled module. Expected values always come from the ref kernels.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type Backend, type KernelTable, RNG, type Storage, kernel, withScope } from '../../src/index.js';
import { registerWasmBackend, setParallelThreshold, setWasmThreads, shutdownWasmBackend } from '../../src/backends/wasm/index.js';
import { refKernels } from '../../src/backends/ref/kernels.js';
import { EXPORTS, type ExportName, PARALLEL_EXPORTS, arity } from '../../src/backends/wasm/exports.js';
import { kernelsWasmBase64 } from '../../src/backends/wasm/kernels.wasm.js';
import { type BlockHeap, WasmRuntime } from '../../src/backends/wasm/runtime.js';
import type { Exports } from '../../src/backends/wasm/pool.js';

const rng = new RNG(23);
let wasm: Backend;
let heap: BlockHeap;
before(async () => {
  wasm = await registerWasmBackend({ threads: 2 });
  heap = wasm.memory as BlockHeap;
});
after(async () => {
  setParallelThreshold(null);
  await shutdownWasmBackend();
});

const K = <N extends keyof KernelTable>(name: N) => kernel(wasm, name);
const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => rng.normal() * scale);

/** 1 thread; 2 threads (large calls split); 2 threads with every call through the pool. */
const CONFIGS = [
  { label: '1 thread', threads: 1, threshold: null },
  { label: '2 threads', threads: 2, threshold: null },
  { label: '2 threads, every call pooled', threads: 2, threshold: 0 },
] as const;

async function eachConfig(fn: (label: string) => void): Promise<void> {
  for (const c of CONFIGS) {
    await setWasmThreads(c.threads);
    setParallelThreshold(c.threshold);
    try {
      fn(c.label);
    } finally {
      setParallelThreshold(null);
    }
  }
}

/** Operands as the kernels see them: resident (uploaded to the wasm memory) or plain JS arrays. */
const place = (a: Float32Array | Int32Array, resident: boolean): Storage => (resident ? wasm.upload(a.slice()) : a.slice());

/** Bit-identical, NaN included. */
function assertSame(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) assert.fail(`${what}: [${i}] = ${got[i]}, ref ${want[i]}`);
  }
}

/** NaN exactly where ref has NaN; elsewhere max |a − b| / max |b| ≤ tol. */
function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!, b = want[i]!;
    if (Number.isNaN(b) || Number.isNaN(a)) {
      if (Number.isNaN(a) !== Number.isNaN(b)) assert.fail(`${what}: [${i}] = ${a}, ref ${b}`);
      continue;
    }
    if (!Number.isFinite(b) || !Number.isFinite(a)) { if (a !== b) assert.fail(`${what}: [${i}] = ${a}, ref ${b}`); continue; }
    num = Math.max(num, Math.abs(a - b));
    den = Math.max(den, Math.abs(b));
  }
  const e = num / Math.max(den, 1e-30);
  assert.ok(e <= tol, `${what}: rel err ${e.toExponential(2)} > ${tol}`);
}

const f32 = (s: Storage) => s as Float32Array;
const rowNaN = (a: Float32Array, row: number, C: number) => a.subarray(row * C, row * C + C).every(Number.isNaN);

describe('wasm kernels: ids and targets outside [0, V)', () => {
  const V = 301, C = 40, N = 57;
  const BAD = [-1, V, 2 ** 31 - 1, -(2 ** 31), 5 * V, -V];
  const ids = Int32Array.from({ length: N }, (_, n) => (n % 9 === 4 ? BAD[(n / 9) | 0]! : (n * 37) % V));

  test('embedding: NaN rows for bad ids, the right rows for the rest (resident or not, every thread split)', async () => {
    const w = randn(V * C);
    const want = f32(refKernels.embedding(w, V, C, ids, N, 'float32'));
    await eachConfig((label) => {
      for (const resident of [false, true]) {
        const got = f32(withScope(wasm, () => Float32Array.from(f32(K('embedding')(place(w, resident), V, C, place(ids, resident), N, 'float32')))));
        assertSame(got, want, `embedding, ${label}, resident ${resident}`);
        for (let n = 0; n < N; n++) assert.equal(rowNaN(got, n, C), n % 9 === 4, `row ${n}`);
      }
    });
  });

  test('embeddingBackward: bad ids are skipped as ref does, with and without an accumulator (resident or not)', async () => {
    const g = randn(N * C), acc = randn(V * C);
    const want = f32(refKernels.embeddingBackward(g, ids, N, V, C, 'float32'));
    const wantInto = f32(refKernels.embeddingBackward(g, ids, N, V, C, 'float32', acc.slice()));
    await eachConfig((label) => {
      for (const resident of [false, true]) {
        const fresh = f32(K('embeddingBackward')(place(g, resident), place(ids, resident), N, V, C, 'float32'));
        assertSame(fresh, want, `embeddingBackward, ${label}, resident ${resident}`);
        const into = place(acc, resident);
        const r = K('embeddingBackward')(place(g, resident), place(ids, resident), N, V, C, 'float32', into);
        assert.equal(r, into, 'with `into` the accumulator itself is returned');
        assertSame(f32(into), wantInto, `embeddingBackward into, ${label}, resident ${resident}`);
      }
    });
  });

  test('crossEntropy and its backward: NaN loss and NaN gradient row for a bad target; ignored rows 0', async () => {
    const NV = 1001, NN = 33, args = { N: NN, V: NV, ignoreIndex: -100, labelSmoothing: 0.1, zLoss: 1e-3 };
    const t = Int32Array.from({ length: NN }, (_, n) => (n % 5 === 0 ? -100 : n % 7 === 3 ? [-1, NV, 1 << 30, -5][n % 4]! : (n * 31) % NV));
    const z = randn(NN * NV, 3), g = randn(NN);
    const want = refKernels.crossEntropy(z, t, args, 'float32');
    const wantD = f32(refKernels.crossEntropyBackward(z, want.lse, t, g, args, 'float32'));
    await eachConfig((label) => {
      for (const resident of [false, true]) {
        const got = K('crossEntropy')(place(z, resident), place(t, resident), args, 'float32');
        assertClose(f32(got.loss), f32(want.loss), 2e-5, `loss, ${label}`);
        assertClose(f32(got.lse), f32(want.lse), 2e-5, `lse, ${label}`);
        const d = f32(K('crossEntropyBackward')(place(z, resident), got.lse, place(t, resident), place(g, resident), args, 'float32'));
        assertClose(d, wantD, 2e-5, `dlogits, ${label}`);
        for (let n = 0; n < NN; n++) {
          const bad = n % 5 !== 0 && n % 7 === 3;
          assert.equal(Number.isNaN(f32(got.loss)[n]), bad, `loss row ${n}`);
          assert.equal(rowNaN(d, n, NV), bad, `gradient row ${n}`);
        }
      }
    });
  });

  test('linearCrossEntropy: a bad target gives a NaN loss row and NaN gradients (as ref), without a crash', async () => {
    const NN = 40, CC = 24, NV = 301;
    const h = randn(NN * CC), w = randn(NV * CC, 0.3), rows = randn(NN);
    const t = Int32Array.from({ length: NN }, (_, n) => (n === 3 ? NV : n === 17 ? -2 : n % 6 === 0 ? -100 : (n * 13) % NV));
    const args = { N: NN, C: CC, V: NV, ignoreIndex: -100, labelSmoothing: 0, zLoss: 0, softcap: 0, chunkSize: 5, weightGrad: true };
    for (const grad of [null, { scale: 0.5 }, { rows }] as const) {
      const want = refKernels.linearCrossEntropy(h, w, t, args, grad, 'float32');
      await eachConfig((label) => {
        const got = K('linearCrossEntropy')(wasm.upload(h.slice()), wasm.upload(w.slice()), wasm.upload(t.slice()), args,
          grad && 'rows' in grad ? { rows: rows.slice() } : grad, 'float32');
        const what = `${label}, grad ${grad ? Object.keys(grad)[0] : 'none'}`;
        assertClose(f32(got.loss), f32(want.loss), 2e-5, `loss, ${what}`);
        assert.ok(Number.isNaN(f32(got.loss)[3]) && Number.isNaN(f32(got.loss)[17]) && Number.isFinite(f32(got.loss)[1]));
        if (grad) {
          assertClose(f32(got.dHidden!), f32(want.dHidden!), 2e-5, `dHidden, ${what}`);
          assertClose(f32(got.dWeight!), f32(want.dWeight!), 2e-5, `dWeight, ${what}`);
          assert.ok(rowNaN(f32(got.dHidden!), 3, CC) && !rowNaN(f32(got.dHidden!), 2, CC));
        }
      });
    }
  });
});

// ---- multi-tensor kernels ----------------------------------------------------------------------------------

/** Tensor sizes of a list: small ones (one quad, odd tails) and, with `large`, one big enough to thread by default. */
const sizesOf = (large: boolean) => [1, 3, 7, 64, 1000, 4099, 17, ...(large ? [1_000_003] : [])];

describe('wasm kernels: global norm and clipping', () => {
  const listOf = (sizes: number[], poison?: number) => sizes.map((n, k) => {
    const a = randn(n, 0.01 * (k + 1));
    if (poison !== undefined && k === sizes.length - 2) a[Math.min(5, n - 1)] = poison;
    return a;
  });

  test('globalNorm (2 and Infinity in wasm, other orders on ref) matches ref, with NaN and Inf gradients', async () => {
    for (const large of [false, true]) {
      for (const poison of [undefined, NaN, Infinity, -Infinity]) {
        const sizes = sizesOf(large), list = listOf(sizes, poison);
        for (const p of large ? [2, Infinity] : [2, Infinity, 1, 3]) {
          const want = f32(refKernels.globalNorm(list, sizes, p, 'float32'))[0]!;
          await eachConfig((label) => {
            for (const resident of [false, true]) {
              const got = f32(K('globalNorm')(list.map((a) => place(a, resident)), sizes, p, 'float32'))[0]!;
              const what = `norm ${p}, ${large ? 'large' : 'small'} list, poison ${poison}, ${label}, resident ${resident}`;
              if (!Number.isFinite(want)) assert.ok(Object.is(got, want), `${what}: ${got} vs ref ${want}`);
              else assert.ok(Math.abs(got - want) <= 1e-6 * want, `${what}: ${got} vs ref ${want}`);
            }
          });
        }
      }
    }
  });

  test('clipByNorm: the coefficient is computed from the norm storage, bit for bit as ref; a non-finite norm changes nothing', async () => {
    for (const large of [false, true]) {
      for (const poison of [undefined, NaN, Infinity]) {
        const sizes = sizesOf(large), list = listOf(sizes, poison);
        const norm = refKernels.globalNorm(list, sizes, 2, 'float32');
        const n = f32(norm)[0]!;
        for (const maxNorm of [Number.isFinite(n) ? n / 3 : 0.5, 1e9]) {
          const want = list.map((a) => a.slice());
          refKernels.clipByNorm(want, sizes, norm, maxNorm, 'float32');
          if (!Number.isFinite(n) || maxNorm === 1e9) want.forEach((a, k) => assertSame(a, list[k]!, 'ref leaves these unchanged'));
          await eachConfig((label) => {
            for (const resident of [false, true]) {
              const got = list.map((a) => place(a, resident));
              K('clipByNorm')(got, sizes, place(norm as Float32Array, resident), maxNorm, 'float32');
              got.forEach((a, k) => assertSame(f32(a), want[k]!, `clip max ${maxNorm}, poison ${poison}, ${label}, resident ${resident}, tensor ${k}`));
            }
          });
        }
      }
    }
  });
});

describe('wasm kernels: optimizer groups in one call', () => {
  type Params = { p: Float32Array[]; g: Float32Array[]; m: Float32Array[]; v: Float32Array[] };
  const initAdam = (sizes: number[]): Params => ({
    p: sizes.map((n) => randn(n)), g: sizes.map((n) => randn(n)), m: sizes.map((n) => randn(n, 0.1)),
    v: sizes.map((n) => Float32Array.from(randn(n, 0.1), (x) => x * x)),
  });
  const copy = (x: Params, resident: boolean) => ({ p: x.p.map((a) => place(a, resident)), g: x.g.map((a) => place(a, resident)),
    m: x.m.map((a) => place(a, resident)), v: x.v.map((a) => place(a, resident)) });
  const adamGroup = (x: { p: Storage[]; g: Storage[]; m: Storage[]; v: Storage[] }, sizes: number[], steps: number[]) =>
    ({ params: x.p, grads: x.g, m: x.m, v: x.v, vMax: null, sizes, steps });

  test('adamStep over a group of many sizes (AdamW, Adam + L2; per-parameter step counts) matches ref', async () => {
    for (const large of [false, true]) {
      const sizes = sizesOf(large), steps = sizes.map((_, k) => 1 + (k % 4) * 7);
      const init = initAdam(sizes);
      for (const decoupled of [true, false]) {
        const args = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, decoupled, amsgrad: false };
        const want = copy(init, false);
        refKernels.adamStep(adamGroup(want, sizes, steps), args, null, 'float32');
        await eachConfig((label) => {
          for (const resident of [false, true]) {
            const got = copy(init, resident);
            K('adamStep')(adamGroup(got, sizes, steps), args, resident ? wasm.upload(Float32Array.of(2.5)) : Float32Array.of(2.5), 'float32');
            for (const key of ['p', 'm', 'v'] as const) {
              got[key].forEach((a, k) => assertClose(f32(a), f32(want[key][k]!), 1e-5,
                `adam ${key}[${k}] (${sizes[k]}), decoupled ${decoupled}, ${large ? 'large' : 'small'}, ${label}, resident ${resident}`));
            }
          }
        });
      }
    }
  });

  test('adamStep and sgdStep with a non-finite gate leave parameters and state unchanged (gate read in wasm)', async () => {
    const sizes = sizesOf(true), steps = sizes.map(() => 3);
    const init = initAdam(sizes);
    const adamArgs = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true, amsgrad: false };
    const sgdArgs = { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, weightDecay: 0.01 };
    await eachConfig((label) => {
      for (const gateValue of [NaN, Infinity, -Infinity]) {
        for (const resident of [false, true]) {
          const gate = place(Float32Array.of(gateValue), resident);
          const got = copy(init, resident);
          K('adamStep')(adamGroup(got, sizes, steps), adamArgs, gate, 'float32');
          K('sgdStep')({ params: got.p, grads: got.g, bufs: got.m, sizes, firstStep: sizes.map(() => false) }, sgdArgs, gate, 'float32');
          for (const key of ['p', 'g', 'm', 'v'] as const) {
            got[key].forEach((a, k) => assertSame(f32(a), init[key][k]!, `gate ${gateValue}: ${key}[${k}] changed, ${label}, resident ${resident}`));
          }
        }
      }
    });
  });

  test('sgdStep over a group (momentum, dampening, Nesterov, weight decay, first steps, no momentum) matches ref', async () => {
    const variants = [
      { lr: 0.05, momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 0.01 },
      { lr: 0.05, momentum: 0.8, dampening: 0, nesterov: true, weightDecay: 0 },
      { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.02 },
    ];
    for (const large of [false, true]) {
      const sizes = sizesOf(large), firstStep = sizes.map((_, k) => k % 2 === 0);
      const init = initAdam(sizes);
      for (const args of variants) {
        const withBufs = args.momentum > 0;
        const want = copy(init, false);
        refKernels.sgdStep({ params: want.p, grads: want.g, bufs: withBufs ? want.m : null, sizes, firstStep }, args, null, 'float32');
        await eachConfig((label) => {
          for (const resident of [false, true]) {
            const got = copy(init, resident);
            K('sgdStep')({ params: got.p, grads: got.g, bufs: withBufs ? got.m : null, sizes, firstStep }, args, null, 'float32');
            const what = `sgd ${JSON.stringify(args)}, ${large ? 'large' : 'small'}, ${label}, resident ${resident}`;
            got.p.forEach((a, k) => assertClose(f32(a), f32(want.p[k]!), 1e-5, `${what}: p[${k}]`));
            got.m.forEach((a, k) => assertClose(f32(a), f32(want.m[k]!), 1e-5, `${what}: buf[${k}]`));
          }
        });
      }
    }
  });
});

test('clamp and clampBackward match ref bit for bit (bounds that are no f32, NaN, ±Infinity, −0)', async () => {
  const n = 2053;
  const x = Float32Array.from({ length: n }, (_, i) => (i % 11 === 0 ? [NaN, Infinity, -Infinity, -0, 0.1, -0.1][i % 6]! : rng.normal() * 0.2));
  // f32 neighbours of the bounds: ref compares in f64, so Math.fround(0.1) > 0.1 must count as above
  x[1] = Math.fround(0.1); x[2] = Math.fround(-0.1); x[3] = Math.fround(0.5);
  const g = randn(n);
  for (const [lo, hi] of [[-0.1, 0.1], [-Infinity, 0.5], [0, 0], [-1e39, 1e39]] as const) {
    const want = f32(refKernels.clamp(x, lo, hi, 'float32')), wantB = f32(refKernels.clampBackward(x, g, lo, hi, 'float32'));
    await eachConfig((label) => {
      for (const resident of [false, true]) {
        assertSame(f32(K('clamp')(place(x, resident), lo, hi, 'float32')), want, `clamp [${lo}, ${hi}], ${label}`);
        assertSame(f32(K('clampBackward')(place(x, resident), place(g, resident), lo, hi, 'float32')), wantB, `clampBackward [${lo}, ${hi}], ${label}`);
      }
    });
  }
});

test('rmsNormBackward and sum finish their cross-thread reductions in wasm (match ref on every split)', async () => {
  const rows = 67, C = 288;
  const x = randn(rows * C), w = randn(C), g = randn(rows * C);
  const { rstd } = refKernels.rmsNorm(x, w, rows, C, 1e-6, 'float32');
  const want = refKernels.rmsNormBackward(x, w, rstd, g, rows, C, 'float32');
  const big = randn(300_001);
  const wantSum = f32(refKernels.sum(big, [300_001], [0], 'float32'))[0]!;
  await eachConfig((label) => {
    for (const resident of [false, true]) {
      const got = K('rmsNormBackward')(place(x, resident), place(w, resident), place(rstd as Float32Array, resident), place(g, resident), rows, C, 'float32');
      assertClose(f32(got.dx), f32(want.dx), 2e-5, `dx, ${label}`);
      assertClose(f32(got.dw), f32(want.dw), 2e-5, `dw, ${label}`);
      const s = f32(K('sum')(place(big, resident), [300_001], [0], 'float32'))[0]!;
      assert.ok(Math.abs(s - wantSum) <= 1e-6 * Math.abs(wantSum), `sum ${s} vs ref ${wantSum}, ${label}`);
    }
  });
});

test('the export table describes the compiled module: every function, its parameter count, and nothing else; its imports', () => {
  const module = new WebAssembly.Module(Uint8Array.from(atob(kernelsWasmBase64), (c) => c.charCodeAt(0)));
  const fns = WebAssembly.Module.exports(module).filter((e) => e.kind === 'function').map((e) => e.name);
  assert.deepEqual([...fns].sort(), Object.keys(EXPORTS).sort());
  // the imports: the shared memory and the host GEMM attention's caller thread may use (nothing else)
  assert.deepEqual(WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}:${i.kind}`).sort(), ['env.hostGemm:function', 'env.memory:memory']);
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const exports = new WebAssembly.Instance(module, { env: { memory, hostGemm: () => { throw new Error('not here'); } } }).exports as unknown as Exports;
  for (const name of Object.keys(EXPORTS) as ExportName[]) assert.equal(exports[name]!.length, arity(name), `${name}: parameters`);
  assert.ok(PARALLEL_EXPORTS.every((n) => EXPORTS[n].parallel) && PARALLEL_EXPORTS.includes('adamStep') && !(PARALLEL_EXPORTS as string[]).includes('heapBase'));
  WasmRuntime.checkExports(exports);
  assert.throws(() => WasmRuntime.checkExports({ ...exports, gemm: (a: number) => a }), /'gemm' takes 1 parameters, the table says 16/);
  const { sgdStep: _, ...missing } = exports;
  assert.throws(() => WasmRuntime.checkExports(missing), /'sgdStep' is missing/);
  assert.ok(heap.isResident(wasm.upload(new Float32Array(4))), 'the backend is up');
});
