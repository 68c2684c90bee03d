// Node-only entry point (`llamatrain/node`): file system helpers for checkpoints and safetensors files.
// The main entry stays browser-safe.
export * from './index.js';
export * from './io/files.js';
export * from './io/pretrained.js';
export * from './io/checkpoint.js';
export * from './data/node.js';
export * from './tokenizer/node.js';
