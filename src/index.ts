// llamatrain: train LLaMA-architecture language models in TypeScript.
import './backends/ref/index.js'; // registers the `ref` backend (the default until a faster one is selected)

export * from './core/index.js';
export * from './loss/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './train/index.js';
export * from './data/index.js';
export * from './tokenizer/index.js';
export * from './peft/index.js';
export { parseSafetensors, serializeSafetensors, type RawTensor } from './io/safetensors.js';
export { refBackend } from './backends/ref/index.js';
// The WebAssembly SIMD + threads backend: `await registerWasmBackend(); setBackend('wasm')` (nothing registers on import).
export { registerWasmBackend, setWasmThreads, shutdownWasmBackend, wasmAvailable, wasmThreads } from './backends/wasm/index.js';
// The WebGPU backend (browsers: navigator.gpu; Node: the optional `webgpu` package): `await registerWebGPUBackend()`.
export { registerWebGPUBackend, probeWebGPU, webgpuInfo, describeWebGPU, webgpuMemory, webgpuSync, webgpuStartProfile, webgpuStopProfile, WebGPUUnavailableError,
  type WebGPUBackendOptions, type WebGPUInfo } from './backends/webgpu/index.js';
