// Entry point of the wasm backend's kernels (built by tools/build-wasm.mjs into src/backends/wasm/kernels.wasm.ts).
// Every export works on f32/i32 buffers at byte addresses in the one shared memory; JS owns allocation.
// Parallel kernels take (tid, nth) first: thread tid of nth computes its share. Every export is described once,
// by name, parameters and kind, in src/backends/wasm/exports.ts (a test checks the two agree).

export { gemm, gemmScratchBytes } from './gemm';
export { attention, attentionBackward, attentionBlockBytes } from './attention';
export {
  binary, clamp, clampBackward, crossEntropy, crossEntropyBackward, crossEntropyChunk, gatherRows, rmsNorm, rmsNormBackward, rope,
  scatterAddRows, silu, siluBackward, square, sumAll, swiglu, swigluBackward,
} from './rows';
export { adamStep, clipByNorm, globalNorm, sgdStep } from './multi';
export { gatherRowsHalf, halfToF32 } from './half';

/** First free byte after the module's static data (JS places its arena above it). */
export function heapBase(): usize {
  return __heap_base;
}
