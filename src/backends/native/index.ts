// The `native` backend (Node only): the wasm backend — its memory, kernels, scopes and worker pool — with its GEMMs
// (matmul; the fused loss's chunks; attention's blocks on the calling thread) sent to the system BLAS (OpenBLAS,
// BLIS, MKL, Accelerate) through koffi. Operands are never copied: cblas_sgemm gets addresses into the shared
// WebAssembly.Memory (its base address plus the byte offsets the wasm kernels use).
//
//   import { registerNativeBackend } from 'llamatrain/node';
//   const backend = await registerNativeBackend();   // registers 'native'; throws NativeUnavailableError with why
//
// Before registering it checks the library: a small GEMM in every transpose layout (and accumulating) against the
// wasm kernel; a library that gets it wrong is refused.

import { type Backend, type KernelTable, registerBackend } from '../../core/backend.js';
import { refKernels } from '../ref/kernels.js';
import { getRuntime, makeBackend } from '../wasm/index.js';
import { type GemmHook, wasmKernels } from '../wasm/kernels.js';
import { bRowBlock } from '../wasm/kernels/context.js';
import { defaultThreads, type HostGemm, wasmAvailable, type WasmRuntime } from '../wasm/runtime.js';
import { type Blas, type FindBlasOptions, findBlas } from './blas.js';

export { blasCandidates, findBlas, type Blas, type BlasLoad, type Sgemm } from './blas.js';

export interface NativeBackendOptions extends FindBlasOptions {
  /** Threads of the wasm worker pool (elementwise, rows, attention, optimizer kernels). Default: the cores. */
  threads?: number;
  /**
   * Threads the BLAS uses for a GEMM (set through its API). Default: the pool's thread count — the two never run
   * at once (a GEMM is one call on the main thread while the pool waits), so they take turns on the same cores.
   */
  blasThreads?: number;
  /**
   * GEMMs of fewer flops run on one BLAS thread (waking the BLAS's threads costs more than they save on small
   * products, and they would compete with the pool's). Default 1e8 (measured: bench/RESULTS.md, 2026-12-02).
   */
  blasParallelMinFlop?: number;
  /**
   * The share of attention's (batch, head) items the calling thread runs with BLAS GEMMs (one BLAS thread) while the
   * pool's workers run the rest with the wasm kernel. Default 0.7 (measured: bench/RESULTS.md, 2026-12-02); 0: all wasm.
   */
  attentionHostShare?: number;
  /** Registry name. Default 'native'. */
  name?: string;
  /** A BLAS to use instead of finding one (a custom binding; tests inject a wrong one to see the check refuse it). */
  blas?: Blas;
}

/** Why the native backend cannot start (no koffi, no BLAS, or a BLAS that failed the self-check). */
export class NativeUnavailableError extends Error {
  override name = 'NativeUnavailableError';
}

export interface NativeInfo {
  kind: string;
  path: string;
  info: string;
  /** BLAS threads for large GEMMs (small ones run on one); null when the library has no thread API. */
  blasThreads: number | null;
  notes: string[];
}

const registered = new Map<string, { backend: Backend; blas: Blas }>();
let current: NativeInfo | null = null;

/** The BLAS the last registerNativeBackend() uses (null before). */
export function nativeInfo(): NativeInfo | null {
  return current;
}

/** A short line naming the library, its build, and its threads. */
export function describeNative(i: NativeInfo): string {
  return `${i.kind} (${i.path}${i.info ? `: ${i.info}` : ''})${i.blasThreads != null ? `, ${i.blasThreads} BLAS thread(s) for large GEMMs` : ''}`;
}

/** The thread count last set on each library (one per library, whichever registration's hooks set it). */
const blasThreadCount = new WeakMap<Blas, number>();

/** Sets the library's thread count through its API, skipping the call when it already has it (GEMMs call this each time). */
function setBlasThreads(blas: Blas, n: number): void {
  if (!blas.setThreads || blasThreadCount.get(blas) === n) return;
  blas.setThreads(n);
  blasThreadCount.set(blas, n);
}

const BLAS_PAR_MIN_FLOP = 1e8;

/** Floats of the f32 scratch a half B operand is converted into, one block of its rows at a time (4 MiB). */
const HALF_BLOCK_FLOATS = 1 << 20;
const ATTENTION_HOST_SHARE = 0.7;

/**
 * The GEMMs through the BLAS: the wasm kernels' GEMM arguments (byte offsets) become addresses for cblas_sgemm.
 * `hook` (matmul, the fused loss): large GEMMs run on `blasThreads` BLAS threads with the pool's idle workers sent
 * to sleep first, small ones on one. `host` (attention's blocks, called from inside a wasm kernel on the caller's
 * thread while the workers run the rest): always one BLAS thread.
 */
function blasGemms(rt: WasmRuntime, blas: Blas, blasThreads: number, parMinFlop: number): { hook: GemmHook; host: HostGemm } {
  let buf: ArrayBufferLike | null = null, base = 0;
  const baseAddress = () => {
    const f32 = rt.blocks.f32;
    if (f32.buffer !== buf) { buf = f32.buffer; base = blas.address(f32); } // a shared memory does not move when it grows
    return base;
  };
  const hook: GemmHook = (g, nth) => {
    if (g.M === 0 || g.N === 0 || g.K === 0) {
      rt.run('gemm', nth, g); // degenerate shapes (K = 0 writes zeros): BLAS would reject the leading dimensions
      return;
    }
    if (g.bHalf) { halfGemm(g, nth); return; }
    const want = blasThreads > 1 && nth > 1 && 2 * g.M * g.N * g.K >= parMinFlop ? blasThreads : 1;
    setBlasThreads(blas, want);
    if (want > 1) rt.parkWorkers();
    const p = baseAddress();
    blas.sgemm(g.transA !== 0, g.transB !== 0, g.M, g.N, g.K, 1, p + g.a, g.lda, p + g.b, g.ldb, g.acc ? 1 : 0, p + g.c, g.ldc);
  };
  // B in a half dtype (a frozen weight, ldb in elements): blocks of B's stored rows are converted into a small f32
  // scratch (wasm SIMD on the calling thread: 2^20 elements took 2.7 ms on one thread and 6-7 ms on two, waking the
  // pool between BLAS calls on a loaded 2-core machine), then one sgemm per block. Bᵀ stored [N, K]: a block of rows is a block
  // of C's columns; B stored [K, N]: a block of depths, added into C.
  const halfGemm = (g: Parameters<GemmHook>[0], nth: number) => {
    const rowLen = g.transB ? g.K : g.N, rowsAll = g.transB ? g.N : g.K;
    const nb = Math.max(1, Math.min(rowsAll, Math.floor(HALF_BLOCK_FLOATS / rowLen)));
    const scratch = rt.blocks.alloc(nb * rowLen * 4); // [nb, rowLen] f32
    try {
      for (let r0 = 0; r0 < rowsAll; r0 += nb) {
        const rows = Math.min(nb, rowsAll - r0);
        rt.run('halfToF32', 1,
          { src: g.b + r0 * g.ldb * 2, srcStride: g.ldb, dst: scratch, rows, cols: rowLen, kind: g.bHalf });
        hook({ ...g, ...bRowBlock(g, r0, rows), b: scratch, ldb: rowLen, bHalf: 0 }, nth);
      }
    } finally {
      rt.blocks.free(scratch);
    }
  };
  const host: HostGemm = (transA, transB, M, N, K, a, lda, b, ldb, c, ldc, acc) => {
    setBlasThreads(blas, 1);
    const p = baseAddress();
    // a, b, c arrive as wasm i32s: offsets past 2 GiB read as negative numbers (>>> 0 makes them unsigned again)
    blas.sgemm(transA !== 0, transB !== 0, M, N, K, 1, p + (a >>> 0), lda, p + (b >>> 0), ldb, acc ? 1 : 0, p + (c >>> 0), ldc);
  };
  return { hook, host };
}

/**
 * Runs small GEMMs (every transpose layout, padded leading dimensions, C = and C +=) through `hook` and through the
 * wasm kernel; returns null when they agree, else what went wrong.
 */
export function selfCheck(rt: WasmRuntime, hook: GemmHook): string | null {
  const cases: [number, number, number, boolean, boolean, boolean][] = [];
  for (const [M, N, K] of [[33, 47, 65], [1, 70, 129], [64, 8, 3]] as const) {
    for (const tA of [false, true]) for (const tB of [false, true]) cases.push([M, N, K, tA, tB, tA && !tB]);
  }
  const heap = rt.blocks;
  for (const [M, N, K, tA, tB, acc] of cases) {
    const lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 1, ldc = N + 2;
    const aN = (tA ? K : M) * lda, bN = (tB ? N : K) * ldb, cN = M * ldc;
    const pa = heap.alloc(aN * 4), pb = heap.alloc(bN * 4), pc1 = heap.alloc(cN * 4), pc2 = heap.alloc(cN * 4);
    try {
      const f = heap.f32;
      let s = M * 7919 + N * 104729 + K;
      const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      for (let i = 0; i < aN; i++) f[(pa >> 2) + i] = rnd();
      for (let i = 0; i < bN; i++) f[(pb >> 2) + i] = rnd();
      for (let i = 0; i < cN; i++) f[(pc1 >> 2) + i] = f[(pc2 >> 2) + i] = acc ? rnd() : NaN; // a no-op leaves NaN
      const g = { transA: tA ? 1 : 0, transB: tB ? 1 : 0, M, N, K, lda, ldb, ldc, scratch: rt.gemmScratch, acc: acc ? 1 : 0, bHalf: 0 };
      rt.run('gemm', 1, { ...g, a: pa, b: pb, c: pc1 });
      hook({ ...g, a: pa, b: pb, c: pc2 }, 1);
      const r = heap.f32;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          const want = r[(pc1 >> 2) + i * ldc + j]!, got = r[(pc2 >> 2) + i * ldc + j]!;
          const err = Math.abs(got - want) / (1 + Math.abs(want));
          if (!(err <= 1e-4)) {
            return `C${acc ? ' +' : ' '}= ${tA ? 'Aᵀ' : 'A'}·${tB ? 'Bᵀ' : 'B'} (${M}×${N}×${K}) gives ${got} at [${i}, ${j}], expected ${want}`;
          }
        }
      }
    } finally {
      for (const p of [pa, pb, pc1, pc2]) heap.free(p);
    }
  }
  return null;
}

/**
 * Finds a BLAS (or takes `opts.blas`), checks it against the wasm GEMM, starts the wasm runtime and registers the
 * backend under `name` ('native'). Throws NativeUnavailableError with a one-line reason when koffi or a BLAS is
 * missing or the check fails; the caller can then use the wasm backend (`--backend auto` does).
 */
export async function registerNativeBackend(opts: NativeBackendOptions = {}): Promise<Backend> {
  const name = opts.name ?? 'native';
  if (!wasmAvailable()) throw new NativeUnavailableError('native backend: needs WebAssembly SIMD, threads and SharedArrayBuffer (it runs on the wasm backend\'s memory)');
  const threads = opts.threads ?? (await defaultThreads());
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`registerNativeBackend: threads must be an integer ≥ 1, got ${threads}`);
  const blasThreads = opts.blasThreads ?? threads;
  if (!Number.isInteger(blasThreads) || blasThreads < 1) throw new RangeError(`registerNativeBackend: blasThreads must be an integer ≥ 1, got ${blasThreads}`);
  let blas = opts.blas;
  if (!blas) {
    const prev = registered.get(name);
    if (prev && !opts.library) blas = prev.blas;
    else {
      const found = await findBlas(opts);
      if (!found.blas) throw new NativeUnavailableError(`native backend: ${found.reason}`);
      blas = found.blas;
    }
  }
  const rt = await getRuntime(threads);
  setBlasThreads(blas, blasThreads);
  const { hook, host } = blasGemms(rt, blas, blasThreads, opts.blasParallelMinFlop ?? BLAS_PAR_MIN_FLOP);
  let bad: string | null;
  try {
    bad = selfCheck(rt, hook);
  } catch (e) {
    bad = `threw ${(e as Error).message}`;
  }
  if (bad) throw new NativeUnavailableError(`native backend: ${blas.kind} at ${blas.path} failed the self-check against the wasm GEMM: ${bad}; not using it`);
  current = { kind: blas.kind, path: blas.path, info: blas.info, blasThreads: blas.setThreads ? blasThreads : null, notes: blas.notes };
  const prev = registered.get(name);
  if (prev && prev.blas === blas) return prev.backend;
  const backend = prev?.backend ?? makeBackend(name, rt);
  rt.setHostGemm(host);
  const table: KernelTable = { ...refKernels, ...wasmKernels(rt, { gemm: hook, attentionHostShare: opts.attentionHostShare ?? ATTENTION_HOST_SHARE }) };
  registerBackend(backend, table);
  registered.set(name, { backend, blas });
  return backend;
}
