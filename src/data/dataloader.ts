// DataLoader: batches of a Dataset, in a seeded per-epoch order, resumable mid-epoch.
//
// Order: epoch e visits the dataset in `epochPermutation(length, seed, e)` when `shuffle` is on (identity
// otherwise). The permutation is a pure function of (seed, epoch), so the whole iteration state is
// { epoch, position, seed }: `position` counts the batches of the current epoch already handed out. A loader built
// on the same dataset and options that calls `loadState(saved)` yields exactly the batches the saved one would have
// yielded next, including every later epoch.
import type { Dataset } from './dataset.js';
import { epochPermutation } from './rng.js';

export interface DataLoaderOptions<T, B> {
  dataset: Dataset<T>;
  batchSize: number;
  /** Visit examples in a new seeded random order each epoch (default false: dataset order). */
  shuffle?: boolean;
  /** Seed of the shuffle (default 0). Same seed + same dataset length → same order, on any machine. */
  seed?: number;
  /** Drop the last batch of an epoch when it has fewer than `batchSize` examples (default false). */
  dropLast?: boolean;
  /** Turns the examples of one batch into the batch (default: the array of examples itself). */
  collate?: (items: T[]) => B;
}

/** Where a loader stands: `position` batches of `epoch` have been handed out. Plain JSON, for checkpoints. */
export interface DataLoaderState {
  epoch: number;
  position: number;
  seed: number;
}

export class DataLoader<T, B = T[]> implements Iterable<B> {
  readonly dataset: Dataset<T>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private readonly collate: (items: T[]) => B;
  private epoch = 0;
  private position = 0;
  private perm: Int32Array | null = null; // order of the current epoch (null: dataset order)
  private permEpoch = -1;

  constructor(options: DataLoaderOptions<T, B>) {
    const { dataset, batchSize, shuffle = false, seed = 0, dropLast = false } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`DataLoader: seed must be a non-negative integer, got ${seed}`);
    const source = dataset.name ?? 'the dataset given to DataLoader';
    if (dataset.length === 0) {
      throw new Error(`dataset is empty: expected at least one example, found 0 in ${source}; check the data path, the field/column name and any filters`);
    }
    if (dropLast && dataset.length < batchSize) {
      throw new Error(`DataLoader: ${source} has ${dataset.length} examples, fewer than batchSize ${batchSize}, and dropLast is on, so an epoch has no batch; lower batchSize or turn dropLast off`);
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.seed = seed;
    this.dropLast = dropLast;
    this.collate = options.collate ?? ((items: T[]) => items as unknown as B);
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  state(): DataLoaderState {
    return { epoch: this.epoch, position: this.position, seed: this.seed };
  }

  /** Continues from a saved state. The seed must match this loader's (the order depends on it). */
  loadState(state: DataLoaderState): void {
    const { epoch, position, seed } = state;
    if (seed !== this.seed) throw new Error(`DataLoader.loadState: saved seed ${seed} differs from this loader's seed ${this.seed}; build the loader with seed ${seed} to resume that run`);
    if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`DataLoader.loadState: epoch must be a non-negative integer, got ${epoch}`);
    if (!Number.isInteger(position) || position < 0 || position > this.length) {
      throw new Error(`DataLoader.loadState: position ${position} is outside [0, ${this.length}] (batches per epoch); was the dataset or batchSize changed since the state was saved?`);
    }
    this.epoch = epoch;
    this.position = position;
    if (this.position === this.length) this.rollOver();
  }

  /** The next batch, moving on to the next epoch (and its new order) after the last batch of one. */
  nextBatch(): B {
    if (this.position >= this.length) this.rollOver();
    const n = this.dataset.length;
    const start = this.position * this.batchSize;
    const end = Math.min(start + this.batchSize, n);
    const order = this.order();
    const items: T[] = new Array(end - start);
    for (let i = start; i < end; i++) items[i - start] = this.dataset.get(order ? order[i]! : i);
    this.position++;
    if (this.position === this.length) this.rollOver();
    return this.collate(items);
  }

  /** Iterates the rest of the current epoch (all of it at an epoch start). Breaking out keeps the position. */
  *[Symbol.iterator](): Iterator<B> {
    const remaining = this.length - this.position;
    for (let k = 0; k < remaining; k++) yield this.nextBatch();
  }

  /** Dataset indices of the examples of each remaining batch of the current epoch, without consuming them. */
  peekIndices(): number[][] {
    const order = this.order();
    const out: number[][] = [];
    for (let b = this.position; b < this.length; b++) {
      const start = b * this.batchSize;
      const end = Math.min(start + this.batchSize, this.dataset.length);
      const idx: number[] = [];
      for (let i = start; i < end; i++) idx.push(order ? order[i]! : i);
      out.push(idx);
    }
    return out;
  }

  private rollOver(): void {
    this.epoch++;
    this.position = 0;
  }

  private order(): Int32Array | null {
    if (!this.shuffle) return null;
    if (this.permEpoch !== this.epoch) {
      this.perm = epochPermutation(this.dataset.length, this.seed, this.epoch);
      this.permEpoch = this.epoch;
    }
    return this.perm;
  }
}
