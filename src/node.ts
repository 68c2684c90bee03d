// Node-only entry point (`llamatrain/node`): file system helpers for checkpoints and safetensors files.
// The main entry stays browser-safe.
export * from './index.js';
export * from './io/files.js';
export * from './io/pretrained.js';
export * from './io/checkpoint.js';
export * from './data/node.js';
export * from './tokenizer/node.js';
// The native backend (a system BLAS through the optional koffi package) is Node-only.
export { registerNativeBackend, nativeInfo, describeNative, NativeUnavailableError, findBlas, blasCandidates,
  type NativeBackendOptions, type NativeInfo, type Blas, type BlasLoad, type Sgemm } from './backends/native/index.js';
