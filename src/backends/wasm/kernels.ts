// Kernels of the `wasm` backend. Storages are Float32Array / Int32Array views: resident ones are views of the
// shared WebAssembly.Memory (made by this backend's kernels inside step scopes, by upload and fill), others are
// plain JS arrays (made by ref kernels, or outside every scope). A kernel not listed here is the ref kernel,
// which reads and writes both kinds; float64 calls go to ref (this backend is f32).
//
// A kernel passes resident operands to wasm by address and copies the others into temporary blocks; inside a
// step scope its outputs are new resident blocks (no copy at all), outside every scope they are copied out into
// JS arrays the GC manages (see runtime.ts). Kernels do no work on tensor data in JS: ids, targets, gates and
// norms are read by the wasm kernels, and reductions across threads are finished there.
//
// The kernels come in families (kernels/*.ts), each a function of the runtime returning its part of the table.

import type { KernelTable } from '../../core/backend.js';
import type { WasmRuntime } from './runtime.js';
import { type GemmHook, kernelContext } from './kernels/context.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { linearKernels } from './kernels/linear.js';
import { lossKernels } from './kernels/loss.js';
import { multiTensorKernels } from './kernels/multi.js';
import { rowKernels } from './kernels/rows.js';

export { copyStats, setParallelThreshold, type GemmHook } from './kernels/context.js';

export interface WasmKernelOptions {
  /** Runs the kernels' GEMMs (matmul, the fused loss's chunks; not attention's blocks: see attentionHostShare) in place of the wasm export. */
  gemm?: GemmHook;
  /**
   * The share (0 … 1) of attention's (batch, head) items the caller's thread takes, running their block GEMMs through
   * the runtime's host GEMM (rt.setHostGemm) while the workers split the rest with the wasm kernel. Default 0: none.
   */
  attentionHostShare?: number;
}

/** The wasm kernels on runtime `rt` (the table is built without touching `rt`: only calls use it). */
export function wasmKernels(rt: WasmRuntime, opts: WasmKernelOptions = {}): Partial<KernelTable> {
  const ctx = kernelContext(rt, opts.gemm);
  return {
    ...linearKernels(ctx, opts.attentionHostShare ?? 0),
    ...elementwiseKernels(ctx),
    ...rowKernels(ctx),
    ...lossKernels(ctx),
    ...multiTensorKernels(ctx),
  };
}
