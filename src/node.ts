// Node-only entry point (`llamatrain/node`): everything in `llamatrain`, plus file system helpers for checkpoints,
// safetensors files, pretrained models, adapters, data sources and tokenizers.
import './io/install-files.js';

export * from './index.js';
export * from './io/files.js';
export * from './io/pretrained.js';
export * from './io/checkpoint.js';
export * from './io/adapters.js';
export * from './io/hub.js';
export * from './data/node.js';
export * from './tokenizer/node.js';
// The native backend (a system BLAS through the optional koffi package) is Node-only.
export { registerNativeBackend, nativeInfo, describeNative, NativeUnavailableError, findBlas, blasCandidates,
  type NativeBackendOptions, type NativeInfo, type Blas, type BlasLoad, type Sgemm } from './backends/native/index.js';
