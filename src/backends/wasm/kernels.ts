// Kernels of the `wasm` backend. Storage is the same as `ref` (Float32Array / Int32Array on the JS heap), so a
// kernel not listed here is the ref kernel with no conversion, and float64 calls go to ref (this backend is f32).
//
// Each kernel copies its operands into the arena of the shared memory, runs the wasm code (threaded when the
// work is big enough) and copies the result out into a fresh array. The copies are O(inputs + outputs) against
// O(M·N·K) compute for GEMM; removing them (tensors living in the wasm memory) is the next step (issue 6 §3).

import type { KernelTable } from '../../core/backend.js';
import { type Shape, broadcastStrides, sizeOf } from '../../core/dtype.js';
import { refKernels } from '../ref/kernels.js';
import type { WasmRuntime } from './runtime.js';

/** Below this many flops a kernel runs on the caller alone: a dispatch costs ~6–17 µs (notes/cpu-kernels.md). */
const PAR_MIN_FLOP = 4e6;
let parMinFlop = PAR_MIN_FLOP;

/** Tests: 0 sends every kernel call through the pool (exercises the thread split on tiny shapes). */
export function setParallelThreshold(flops: number | null): void {
  parMinFlop = flops ?? PAR_MIN_FLOP;
}

/** Time spent copying operands in and results out, for the bench's profile (ms). */
export const copyStats = { ms: 0, bytes: 0 };

type Kernels = Partial<KernelTable>;

export function wasmKernels(rt: WasmRuntime): Kernels {
  const threadsFor = (flops: number) => (flops >= parMinFlop ? rt.threads : 1);

  const matmul: KernelTable['matmul'] = (a, aShape, b, bShape, transA, transB, outShape, dtype) => {
    if (dtype !== 'float32') return refKernels.matmul(a, aShape, b, bShape, transA, transB, outShape, dtype);
    const x = a as Float32Array, y = b as Float32Array;
    const r = outShape.length;
    const M = outShape[r - 2]!, N = outShape[r - 1]!;
    const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
    const batchShape = outShape.slice(0, -2);
    const nBatch = sizeOf(batchShape);
    if (M * N === 0 || nBatch === 0) return new Float32Array(sizeOf(outShape));
    rt.reset();
    const t0 = performance.now();
    const pa = rt.put(x), pb = rt.put(y);
    const pc = rt.alloc(nBatch * M * N * 4); // [..., M, N]
    const t1 = performance.now();
    const sa = broadcastStrides(aShape.slice(0, -2), batchShape);
    const sb = broadcastStrides(bShape.slice(0, -2), batchShape);
    const lda = transA ? M : K, ldb = transB ? K : N;
    if (!transA && sb.every((s) => s === 0) && sa.length > 0 && isContiguousBatch(aShape.slice(0, -2), batchShape)) {
      // A [..., M, K] times one shared B: a single GEMM with M' = batch·M (one packing of B, better threading)
      const Mb = nBatch * M;
      rt.run('gemm', threadsFor(2 * Mb * N * K), [0, transB ? 1 : 0, Mb, N, K, pa, lda, pb, ldb, pc, N, rt.gemmScratch]);
    } else {
      const nth = threadsFor(2 * M * N * K);
      forEachBatch(batchShape, sa, sb, (o, ia, ib) => {
        rt.run('gemm', nth, [transA ? 1 : 0, transB ? 1 : 0, M, N, K, pa + ia * M * K * 4, lda, pb + ib * K * N * 4, ldb,
          pc + o * M * N * 4, N, rt.gemmScratch]);
      });
    }
    const t2 = performance.now();
    const out = rt.takeF32(pc, nBatch * M * N);
    copyStats.ms += t1 - t0 + (performance.now() - t2);
    copyStats.bytes += (x.length + y.length + out.length) * 4;
    return out;
  };

  return { matmul };
}

/** True when A's batch dims equal the output's (no broadcast of A), so its batches are contiguous. */
function isContiguousBatch(aBatch: Shape, outBatch: Shape): boolean {
  return sizeOf(aBatch) === sizeOf(outBatch);
}

/** Calls fn(outBatch, aBatch, bBatch) for every batch index (batch offsets in units of whole matrices). */
function forEachBatch(batchShape: Shape, sa: number[], sb: number[], fn: (o: number, ia: number, ib: number) => void): void {
  const n = sizeOf(batchShape);
  const rank = batchShape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let ia = 0, ib = 0;
    for (let d = 0; d < rank; d++) { ia += idx[d]! * sa[d]!; ib += idx[d]! * sb[d]!; }
    fn(o, ia, ib);
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < batchShape[d]!) break;
      idx[d] = 0;
    }
  }
}
