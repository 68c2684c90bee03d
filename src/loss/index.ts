export * from './cross-entropy.js';
export * from './fused.js';
