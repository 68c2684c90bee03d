export * from './config.js';
export * from './module.js';
export * from './layers.js';
export * from './llama.js';
export * from './generate.js';
export * from './memory.js';
