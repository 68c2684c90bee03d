// Entry point of the wasm backend's kernels (built by tools/build-wasm.mjs into src/backends/wasm/kernels.wasm.ts).
// Every export works on f32/i32 buffers at byte addresses in the one shared memory; JS owns allocation.
// Parallel kernels take (tid, nth) first: thread tid of nth computes its share.

export { gemm, gemmScratchBytes } from './gemm';
export { attention, attentionBackward, attentionBlockBytes } from './attention';
export { adamStep, binary, crossEntropy, crossEntropyBackward, crossEntropyChunk, rmsNorm, rope, square, sumAll, rmsNormBackward, silu, siluBackward, swiglu, swigluBackward, gatherRows } from './rows';

/** First free byte after the module's static data (JS places its arena above it). */
export function heapBase(): usize {
  return __heap_base;
}
