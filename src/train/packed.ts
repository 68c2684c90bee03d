// Packed rows (src/data/packing.ts) as the Trainer's batches: what the CLI and the playground feed it.
import { ArrayDataset, DataLoader, type PackedBatch, type PackedRow, packedCollate } from '../data/index.js';
import type { Batch } from './batch.js';

/** A batch for the Trainer, with the UTF-8 byte count of its targets (bits per byte); `bytesOf[id]` = bytes of a token. */
export function toBatch(b: PackedBatch, bytesOf: Int32Array): Batch {
  const [B, T] = b.shape;
  let bytes = 0;
  // The targets are the labels shifted by one: position t of a row predicts label t, for t ≥ 1.
  for (let r = 0; r < B; r++) for (let t = 1; t < T; t++) {
    const y = b.labels[r * T + t]!;
    if (y !== -100) bytes += bytesOf[y] ?? 0;
  }
  return { ...b, shape: [B, T], targetBytes: bytes };
}

/** The first `limit` batches of `rows`, in order (evaluation). */
export function* batchesOf(rows: PackedRow[], batchSize: number, bytesOf: Int32Array, limit = Infinity): Generator<Batch> {
  const loader = new DataLoader({ dataset: new ArrayDataset(rows), batchSize, shuffle: false, collate: packedCollate });
  let n = 0;
  for (const b of loader) {
    if (n++ >= limit) return;
    yield toBatch(b, bytesOf);
  }
}
