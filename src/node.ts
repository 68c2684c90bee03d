// Node-only entry point (`llamatrain/node`): file system helpers for checkpoints and safetensors files, and the
// file system that PeftModel.savePretrained / fromPretrained use. The main entry stays browser-safe.
import { mkdir } from 'node:fs/promises';
import { readBytesFile, writeFileAtomic } from './io/files.js';
import { useAdapterFiles } from './peft/index.js';
import './tokenizer/jinja.js'; // chat templates: the Jinja renderer

export * from './index.js';
export * from './io/files.js';
export * from './io/pretrained.js';
export * from './io/checkpoint.js';
export * from './io/adapters.js';
export * from './data/node.js';
export * from './tokenizer/node.js';

useAdapterFiles({
  writeFile: (path, data) => writeFileAtomic(path, data),
  readFile: readBytesFile,
  mkdir: async (path) => { await mkdir(path, { recursive: true }); },
});
