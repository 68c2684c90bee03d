export * from './batch.js';
export * from './evaluate.js';
export * from './trainer.js';
export type { TrainableModel } from './model.js';
export { toBatch, batchesOf } from './packed.js';
