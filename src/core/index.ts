export * from './dtype.js';
export * from './backend.js';
export * from './tensor.js';
export * from './scope.js';
export * from './ops.js';
export * from './checkpoint.js';
export { RNG } from './rng.js';
export * from './errors.js';
