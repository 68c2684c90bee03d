// DataLoader: seeded order, resumption mid-epoch, dropLast, errors. The PRNG is checked against the reference C
// implementation of xoshiro128** (outputs below were printed by that C code, seeded with the same splitmix32).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArrayDataset, DataLoader, TensorDataset, epochPermutation, type Dataset } from '../../src/data/index.js';
import { Xoshiro128 } from '../../src/data/rng.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const take = <B>(l: DataLoader<number, B>, k: number): B[] => Array.from({ length: k }, () => l.nextBatch());

test('xoshiro128** matches the reference C implementation', () => {
  const outs = (seed: number) => { const r = new Xoshiro128(seed); return range(6).map(() => r.nextU32()); };
  assert.deepEqual(outs(0), [3809008728, 1133695204, 53579671, 2891528803, 139681546, 2203266335]);
  assert.deepEqual(outs(42), [2837322924, 544945897, 479756282, 3500138142, 339756180, 113173290]);
});

test('same seed → same order; different seed or epoch → different order; every epoch is a permutation', () => {
  const ds = new ArrayDataset(range(50));
  const run = (seed: number) => take(new DataLoader({ dataset: ds, batchSize: 7, shuffle: true, seed }), 16).flat();
  const a = run(7), b = run(7), c = run(8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const e0 = a.slice(0, 50), e1 = a.slice(50, 100);
  assert.deepEqual([...e0].sort((x, y) => x - y), range(50));
  assert.deepEqual([...e1].sort((x, y) => x - y), range(50));
  assert.notDeepEqual(e0, e1);
  assert.notDeepEqual(e0, range(50));
  // without shuffle: dataset order, every epoch
  const plain = take(new DataLoader({ dataset: ds, batchSize: 7 }), 16).flat();
  assert.deepEqual(plain.slice(0, 50), range(50));
  assert.deepEqual(plain.slice(50, 100), range(50));
  assert.deepEqual(Array.from(epochPermutation(50, 7, 0)), e0);
});

test('batch sizes and dropLast', () => {
  const ds = new ArrayDataset(range(10));
  const sizes = (dropLast: boolean) => [...new DataLoader({ dataset: ds, batchSize: 3, dropLast })].map((b) => b.length);
  assert.deepEqual(sizes(false), [3, 3, 3, 1]);
  assert.deepEqual(sizes(true), [3, 3, 3]);
  assert.equal(new DataLoader({ dataset: ds, batchSize: 3, dropLast: true }).length, 3);
  // with shuffling, the dropped example differs between epochs
  const l = new DataLoader({ dataset: ds, batchSize: 3, dropLast: true, shuffle: true, seed: 1 });
  const missing = (batches: number[][]) => range(10).filter((i) => !batches.flat().includes(i));
  const m0 = missing([...l]), m1 = missing([...l]), m2 = missing([...l]);
  assert.equal(m0.length, 1);
  assert.ok(m0[0] !== m1[0] || m1[0] !== m2[0], 'the dropped example should change across epochs');
});

test('resumed mid-epoch: state → new loader → loadState yields exactly the remaining batches, and later epochs', () => {
  const ds = new ArrayDataset(range(23));
  const opts = { dataset: ds, batchSize: 4, shuffle: true, seed: 99, collate: (xs: number[]) => xs.join(',') };
  const full = take(new DataLoader(opts), 6 * 3); // 6 batches per epoch, three epochs
  for (const k of [0, 1, 5, 6, 7, 11, 13]) {
    const first = new DataLoader(opts);
    const before = take(first, k);
    const saved = JSON.parse(JSON.stringify(first.state()));
    assert.deepEqual(saved, { epoch: Math.floor(k / 6), position: k % 6, seed: 99 });
    const resumed = new DataLoader(opts);
    resumed.loadState(saved);
    const after = take(resumed, 18 - k);
    assert.deepEqual([...before, ...after], full, `resume after ${k} batches`);
  }
  // iterating a resumed loader yields the rest of that epoch only
  const l = new DataLoader(opts);
  l.loadState({ epoch: 1, position: 4, seed: 99 });
  assert.deepEqual([...l], full.slice(10, 12));
  assert.deepEqual(l.state(), { epoch: 2, position: 0, seed: 99 });
  // breaking out of a for-of keeps the position
  const m = new DataLoader(opts);
  for (const _ of m) if (m.state().position === 2) break;
  assert.deepEqual(m.state(), { epoch: 0, position: 2, seed: 99 });
  assert.deepEqual(m.nextBatch(), full[2]);
});

test('errors: empty dataset, seed mismatch, bad position, bad batch size', () => {
  const empty: Dataset<number> = { length: 0, get: () => 0, name: 'train.jsonl' };
  assert.throws(() => new DataLoader({ dataset: empty, batchSize: 2 }), /dataset is empty: expected at least one example, found 0 in train\.jsonl; /);
  assert.throws(() => new DataLoader({ dataset: new ArrayDataset([]), batchSize: 2 }), /dataset is empty: expected at least one example, found 0 in an in-memory array/);
  assert.throws(() => new DataLoader({ dataset: new ArrayDataset([1, 2]), batchSize: 3, dropLast: true }), /fewer than batchSize 3, and dropLast is on/);
  const l = new DataLoader({ dataset: new ArrayDataset(range(10)), batchSize: 3, seed: 1 });
  assert.throws(() => l.loadState({ epoch: 0, position: 1, seed: 2 }), /saved seed 2 differs from this loader's seed 1/);
  assert.throws(() => l.loadState({ epoch: 0, position: 9, seed: 1 }), /position 9 is outside \[0, 4\]/);
  assert.throws(() => new DataLoader({ dataset: new ArrayDataset(range(10)), batchSize: 0 }), /batchSize must be a positive integer/);
});

test('TensorDataset zips columns; out-of-range index names the dataset', () => {
  const ds = new TensorDataset([Int32Array.from([1, 2]), Int32Array.from([3])], [0, 1]);
  assert.equal(ds.length, 2);
  const [ids, label] = ds.get(1);
  assert.deepEqual(Array.from(ids), [3]);
  assert.equal(label, 1);
  assert.throws(() => new TensorDataset([1, 2, 3], [1]), /column 1 has 1 entries, column 0 has 3/);
  assert.throws(() => new ArrayDataset([1], 'docs').get(3), /index 3 is out of range for docs of 1 examples/);
});
