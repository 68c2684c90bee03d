export * from './cross-entropy.js';
