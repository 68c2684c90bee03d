// What every wasm kernel family shares: the runtime, the thread decision, and one kernel call's operands
// (resident storages by address, others copied into temporary blocks), outputs and temporaries.

import type { KernelTable } from '../../../core/backend.js';
import type { DType } from '../../../core/dtype.js';
import type { WasmRuntime } from '../runtime.js';
import type { ArgsOf } from '../exports.js';

export type Kernels = Partial<KernelTable>;

/** The kernels' code for a storage dtype: 0 float32, 1 bfloat16, 2 float16 (assembly/half.ts). */
export function halfKind(dtype: DType | undefined): number {
  return dtype === 'bfloat16' ? 1 : dtype === 'float16' ? 2 : 0;
}

/** Below this many flops a kernel runs on the caller alone: a dispatch costs ~6–17 µs. */
const PAR_MIN_FLOP = 4e6;
let parMinFlop = PAR_MIN_FLOP;

/** Tests: 0 sends every kernel call through the pool (exercises the thread split on tiny shapes). */
export function setParallelThreshold(flops: number | null): void {
  parMinFlop = flops ?? PAR_MIN_FLOP;
}

/** Elementwise ops are memory-bound: weigh an element like this many flops when deciding to thread. */
export const ELEMENTWISE_FLOP = 4;

/**
 * Runs one GEMM instead of the wasm `gemm` export (the native backend sends them to a system BLAS). Addresses are
 * byte offsets into the wasm memory; `acc` = 1 adds into C. `nth` is the thread count the wasm kernel would use.
 */
export type GemmHook = (args: ArgsOf<'gemm'>, nth: number) => void;

/** Time spent copying operands in and results out (ms, bytes), and in GEMM compute alone, for the bench's profile. */
export const copyStats = { ms: 0, inMs: 0, bytes: 0, gemmMs: 0, gemmFlop: 0 };

export interface KernelContext {
  readonly rt: WasmRuntime;
  /** The threads for a call of this many flops (1 below the parallel threshold). */
  threadsFor(flops: number): number;
  /** One kernel call: its temporaries (operand copies, scratch) are freed when it returns or throws. */
  call<T>(body: () => T): T;
  /** The address of an operand's data (resident: in place; else a temporary copy; a Uint16Array holds half bits). */
  at(s: object): number;
  /** Space for an output of n f32 elements (see WasmRuntime.output). */
  out(n: number): number;
  /** The storage of an output made by out(). */
  take(p: number): Float32Array;
  /**
   * After an in-place kernel: an operand that was copied in (not resident, or not at `ptr`) gets the n values at
   * `ptr` back.
   */
  writeBack(s: object, ptr: number, n: number): void;
  /**
   * A C = op(A)·op(B) GEMM, timed for the bench's profile. `hostB`: B is a frozen half weight outside the wasm
   * memory (args.b is then an element offset into it): blocks of its stored rows are copied in one at a time.
   */
  gemm(nth: number, args: ArgsOf<'gemm'>, flop: number, hostB?: Uint16Array | null): void;
  /** A half weight kept outside the wasm memory (see `gemm`'s hostB), or null for an operand `at()` places. */
  hostHalf(s: object): Uint16Array | null;
}

export function kernelContext(rt: WasmRuntime, gemmHook?: GemmHook): KernelContext {
  return {
    rt,
    threadsFor: (flops) => (flops >= parMinFlop ? rt.threads : 1),
    call<T>(body: () => T): T {
      const bytes0 = rt.copiedBytes, ms0 = rt.copyMs, in0 = rt.copyInMs;
      try {
        return body();
      } finally {
        rt.endCall();
        copyStats.bytes += rt.copiedBytes - bytes0;
        copyStats.ms += rt.copyMs - ms0;
        copyStats.inMs += rt.copyInMs - in0;
      }
    },
    at: (s) => rt.input(s as Float32Array | Int32Array | Uint16Array),
    out: (n) => rt.output(n),
    take: (p) => rt.result(p),
    writeBack(s, ptr, n) {
      const arr = s as Float32Array;
      if (arr.byteOffset === ptr && rt.blocks.isResident(arr)) return;
      const t0 = performance.now();
      arr.set(rt.blocks.f32.subarray(ptr >>> 2, (ptr >>> 2) + n));
      rt.copiedBytes += n * 4;
      rt.copyMs += performance.now() - t0;
    },
    gemm(nth, args, flop, hostB) {
      const t0 = performance.now();
      const run = (g: ArgsOf<'gemm'>) => { if (gemmHook) gemmHook(g, nth); else rt.run('gemm', nth, g); };
      if (hostB) gemmHostB(rt, args, hostB, run);
      else run(args);
      copyStats.gemmMs += performance.now() - t0;
      copyStats.gemmFlop += flop;
    },
    hostHalf: (s) => (s instanceof Uint16Array && !rt.blocks.isResident(s) ? s : null),
  };
}

/**
 * The GEMM over stored rows [r0, r0 + rows) of B alone: Bᵀ stored [N, K] gives a block of C's columns; B stored
 * [K, N] a block of depths, added into C after the first. (Set `b`/`ldb` to where the block is.)
 */
export function bRowBlock(g: ArgsOf<'gemm'>, r0: number, rows: number): Partial<ArgsOf<'gemm'>> {
  return g.transB
    ? { N: rows, c: g.c + r0 * 4, acc: g.acc }
    : { K: rows, a: g.a + (g.transA ? r0 * g.lda : r0) * 4, acc: r0 > 0 ? 1 : g.acc };
}

/** Elements of a host half B copied into the wasm memory at a time (8 MiB). */
const HOST_B_BLOCK = 1 << 22;
let hostBBlock = HOST_B_BLOCK;

/** Tests: a small block makes every host-half GEMM run in several blocks (null restores 2^22 elements). */
export function setHostHalfBlock(elements: number | null): void {
  hostBBlock = elements ?? HOST_B_BLOCK;
}

/**
 * C = op(A)·op(B) with B a half weight outside the wasm memory (`args.b` an element offset into `hostB`, `ldb` its
 * row length): blocks of B's stored rows are copied into one temporary block and multiplied there (the GEMM converts
 * them to float32 as it packs them), so the wasm memory never holds the whole weight — a 128256 × 2048 head takes
 * 8 MiB at a time, not 525 MB. Bᵀ stored [N, K]: a block of rows is a block of C's columns; B stored [K, N]: a block
 * of depths, added into C.
 */
function gemmHostB(rt: WasmRuntime, g: ArgsOf<'gemm'>, hostB: Uint16Array, run: (g: ArgsOf<'gemm'>) => void): void {
  const rowsAll = g.transB ? g.N : g.K;
  if (rowsAll === 0 || g.M === 0 || (g.transB ? g.K : g.N) === 0) { run({ ...g, b: 0 }); return; } // degenerate: no B read
  const nb = Math.max(1, Math.min(rowsAll, Math.floor(hostBBlock / g.ldb)));
  const tmp = rt.blocks.alloc(nb * g.ldb * 2); // [nb, ldb] half bits
  try {
    for (let r0 = 0; r0 < rowsAll; r0 += nb) {
      const rows = Math.min(nb, rowsAll - r0);
      const from = g.b + r0 * g.ldb;
      new Uint16Array(rt.memory.buffer, tmp, rows * g.ldb).set(hostB.subarray(from, from + rows * g.ldb));
      run({ ...g, ...bRowBlock(g, r0, rows), b: tmp });
    }
  } finally {
    rt.blocks.free(tmp);
  }
}
