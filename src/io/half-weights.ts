// loadPretrained(dir, { weights: 'as-stored' }): a BF16 or F16 checkpoint keeps its 2-byte storage for the frozen
// weight matrices (docs/ARCHITECTURE.md, "Weight storage"). This file finds the checkpoint's storage dtype from the
// safetensors headers (before anything is allocated, so the memory check counts 2 bytes) and hands the matrices to
// the model as bit patterns: read raw (keepHalf) they pass through; a decoded float32 matrix is rounded back
// (exactly, when its values came from that half dtype).

import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type DType, type HalfDType, InputError, type TypedArray, float32ToHalf } from '../core/index.js';

/** What loadStateDict takes for one tensor. */
export interface WeightEntry { shape: readonly number[]; dtype: DType; data: TypedArray }

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/** name → { dtype, rank } from one safetensors file's header; null when the header cannot be read (the reader reports why). */
async function headerOf(path: string): Promise<Map<string, { dtype: string; rank: number }> | null> {
  let fh;
  try {
    fh = await open(path, 'r');
    const len = Buffer.alloc(8);
    if ((await fh.read(len, 0, 8, 0)).bytesRead !== 8) return null;
    const n = Number(len.readBigUInt64LE(0));
    if (!(n > 0 && n <= 100_000_000)) return null;
    const buf = Buffer.alloc(n);
    if ((await fh.read(buf, 0, n, 8)).bytesRead !== n) return null;
    const h = JSON.parse(buf.toString('utf8')) as Record<string, { dtype?: unknown; shape?: unknown }>;
    const out = new Map<string, { dtype: string; rank: number }>();
    for (const [name, info] of Object.entries(h)) {
      if (name === '__metadata__' || !info || typeof info.dtype !== 'string' || !Array.isArray(info.shape)) continue;
      out.set(name, { dtype: info.dtype, rank: info.shape.length });
    }
    return out;
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}

/**
 * The half dtype the checkpoint in `dir` stores its weight matrices in (every 2-D floating tensor BF16 → 'bfloat16',
 * every one F16 → 'float16'), or null for a float32/float64 checkpoint (loaded as float32, as without the option).
 * Matrices in two different half dtypes, or half and F32 mixed, are refused: load such a checkpoint with
 * weights: 'float32'.
 */
export async function storedHalfDtype(dir: string): Promise<HalfDType | null> {
  const files: string[] = [];
  if (await exists(join(dir, 'model.safetensors'))) files.push('model.safetensors');
  else {
    try {
      const { readFile } = await import('node:fs/promises');
      const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map?: Record<string, unknown> };
      for (const f of new Set(Object.values(index.weight_map ?? {}))) if (typeof f === 'string') files.push(f);
    } catch {
      return null; // the reader reports a missing or broken index
    }
  }
  const seen = new Map<string, string>(); // file dtype → first tensor
  for (const f of files) {
    const h = await headerOf(join(dir, f));
    if (!h) return null;
    for (const [name, { dtype, rank }] of h) {
      if (rank === 2 && ['BF16', 'F16', 'F32', 'F64'].includes(dtype) && !seen.has(dtype)) seen.set(dtype, name);
    }
  }
  const half = seen.has('BF16') ? 'BF16' : seen.has('F16') ? 'F16' : null;
  if (!half) return null;
  if (seen.size > 1) {
    const list = [...seen].map(([d, n]) => `${d} ("${n}")`).join(', ');
    throw new InputError(`${dir}: weights: 'as-stored' needs every weight matrix in one half dtype, found ${list}; ` +
      "load it with weights: 'float32' (the default)", { source: dir });
  }
  return half === 'BF16' ? 'bfloat16' : 'float16';
}

/**
 * The entries to load with half storage: the 2-D floating tensors as `dtype` bit patterns (exact, see above),
 * everything else as read. A model built with `frozenDtype: dtype` takes them without any float32 copy of its own.
 */
export function asStoredEntries<T extends { shape: readonly number[]; dtype: DType; data: TypedArray }>(
  tensors: Map<string, T>, dtype: HalfDType,
): Map<string, WeightEntry> {
  const out = new Map<string, WeightEntry>();
  for (const [name, t] of tensors) {
    if (t.shape.length === 2 && (t.dtype === 'float32' || t.dtype === dtype)) {
      out.set(name, { shape: t.shape, dtype, data: t.data instanceof Uint16Array ? t.data : float32ToHalf(t.data, dtype) });
    } else {
      out.set(name, t);
    }
  }
  return out;
}
