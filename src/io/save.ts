// Writing checkpoints the way transformers' save_pretrained does: one `model.safetensors`, or — when the weights
// are larger than the shard size — `model-00001-of-0000N.safetensors` files plus `model.safetensors.index.json`
// (`metadata.total_size`, `weight_map`), in F32, BF16 or F16.
//
// Streamed: each tensor is fetched, converted a chunk at a time and written at its offset, so the memory used is
// one tensor (as its source hands it over) plus two chunk buffers (one filling while the other is written), never
// a shard. Atomic per save: every file is first written under a temporary name in the same directory and only
// renamed once all of them are complete; on any failure (a disk full, a source that throws) the temporary files
// are removed and nothing new is left behind.
//
// The shard split is huggingface_hub's `split_state_dict_into_shards_factory` (used by save_pretrained): tensors in
// the order given, a new shard when the next tensor would take the current one past the limit, a tensor larger
// than the limit alone in its shard. The default limit is transformers 4.x's "5GB" (5·10⁹ bytes), the shard size
// of the checkpoints on the Hub that this library loads (transformers 5 raised it to 50GB); a BF16 model of up to
// ~2.5 B parameters stays one file, as the Hub's own copies of such models usually are.

import { open, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { makeDirs } from './make-dirs.js';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { InputError } from '../core/errors.js';
import { describeFsError } from '../data/node-fs-errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, type HalfDType } from './safetensors.js';

/** Storage types a checkpoint can be written in. */
export type SaveDType = 'F32' | 'BF16' | 'F16';

/** transformers 4.x's default `max_shard_size` ("5GB"), in bytes. */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;

/** One piece of a tensor's values, in row-major order: float32/float64 values, or half bit patterns. */
export type TensorPiece = Float32Array | Float64Array | Uint16Array;

/** A tensor to write, fetched only when its turn comes. */
export interface TensorSource {
  name: string;
  shape: readonly number[];
  /** The tensor's elements in row-major order, in one or more pieces (fetched lazily, one after the other). */
  read(): AsyncIterable<TensorPiece> | Iterable<TensorPiece>;
  /** What a Uint16Array piece holds: 'bfloat16' or 'float16' bit patterns. Needed only when pieces are Uint16Array. */
  half?: HalfDType;
}

export interface WriteShardsOptions {
  /** Storage type of every tensor (default F32). */
  dtype?: SaveDType;
  /** Largest shard in bytes, or a size string as transformers takes it ("5GB" = 5·10⁹, "2GiB" = 2·2³⁰). */
  maxShardSize?: number | string;
  /** `__metadata__` of every file (default { format: 'pt' }, what transformers writes). */
  metadata?: Record<string, string>;
  /** Flush every file to disk before the renames (default true). */
  sync?: boolean;
}

export interface WrittenShards {
  /** The safetensors files written, in shard order. */
  files: string[];
  /** Bytes of tensor data in all files (the index's metadata.total_size). */
  totalSize: number;
  /** The index written (null for a single file). */
  index: ShardIndex | null;
}

/** model.safetensors.index.json as transformers writes it (total_parameters: since transformers 4.5x). */
export interface ShardIndex {
  metadata: { total_parameters: number; total_size: number };
  weight_map: Record<string, string>;
}

const BYTES: Record<SaveDType, number> = { F32: 4, BF16: 2, F16: 2 };
const CHUNK_ELEMENTS = 1 << 21; // 2 Mi elements per conversion buffer: 8 MiB as F32

// Typed-array views use the host byte order; safetensors is little-endian.
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A size as transformers' `parse_size_to_int` reads it: an integer number of bytes, or "<number><unit>". */
export function parseShardSize(size: number | string): number {
  if (typeof size === 'number') {
    if (Number.isSafeInteger(size) && size > 0) return size;
    throw new InputError(`maxShardSize must be a positive integer number of bytes, found ${size}`, { source: 'maxShardSize' });
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(size);
  const units: Record<string, number> = {
    B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
  };
  const bytes = m ? Math.floor(Number(m[1]) * units[(m[2] ?? 'B').toUpperCase()]!) : NaN;
  if (!(bytes > 0) || !Number.isSafeInteger(bytes)) {
    throw new InputError(`maxShardSize "${size}" is not a size; expected bytes or a number with a unit, e.g. "5GB" or "500MiB"`, { source: 'maxShardSize' });
  }
  return bytes;
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Split tensors into shards exactly as huggingface_hub does (see the top of this file); returns lists of indices. */
export function planShards(sizes: readonly number[], maxShardSize: number): number[][] {
  const shards: number[][] = [];
  let cur: number[] = [];
  let curSize = 0;
  sizes.forEach((size, i) => {
    if (size > maxShardSize) { shards.push([i]); return; } // too large for any shard: alone in its own
    if (curSize + size > maxShardSize) { shards.push(cur); cur = []; curSize = 0; }
    cur.push(i);
    curSize += size;
  });
  if (cur.length > 0) shards.push(cur);
  return shards.filter((s) => s.length > 0);
}

/** The header of one file: metadata, then the tensors in name order (the order the data follows), padded to 8. */
function headerFor(tensors: TensorSource[], dtype: SaveDType, metadata: Record<string, string>): { bytes: Uint8Array; offsets: number[] } {
  const parts: string[] = [];
  const meta = Object.keys(metadata).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
  parts.push(`"__metadata__":{${meta.join(',')}}`);
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const nbytes = numel(t.shape) * BYTES[dtype];
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + nbytes}]}`);
    offsets.push(offset);
    offset += nbytes;
  }
  const text = new TextEncoder().encode(`{${parts.join(',')}}`);
  const len = Math.ceil(text.length / 8) * 8; // spaces keep it valid JSON and start the data 8-byte aligned
  const bytes = new Uint8Array(8 + len).fill(0x20);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, len % 2 ** 32, true);
  dv.setUint32(4, Math.floor(len / 2 ** 32), true);
  bytes.set(text, 8);
  return { bytes, offsets };
}

/**
 * Convert `piece[from, from + n)` to `dtype` little-endian bytes in `out` (which holds at least n elements of it);
 * returns the bytes written. Half sources are widened exactly first; BF16/F16 rounding is torch's (nearest even).
 */
function convert(piece: TensorPiece, half: HalfDType | undefined, from: number, n: number, dtype: SaveDType, out: Uint8Array): Uint8Array {
  const nbytes = n * BYTES[dtype];
  const dst = out.subarray(0, nbytes);
  const dv = new DataView(dst.buffer, dst.byteOffset, nbytes);
  if (piece instanceof Uint16Array) {
    const same = (half === 'bfloat16' && dtype === 'BF16') || (half === 'float16' && dtype === 'F16');
    const widen = half === 'bfloat16' ? bf16ToF32 : f16ToF32;
    for (let i = 0; i < n; i++) {
      const bits = piece[from + i]!;
      if (same) dv.setUint16(2 * i, bits, true);
      else if (dtype === 'F32') dv.setFloat32(4 * i, widen(bits), true);
      else dv.setUint16(2 * i, dtype === 'BF16' ? f32ToBf16(widen(bits)) : f32ToF16(widen(bits)), true);
    }
    return dst;
  }
  if (dtype === 'F32') {
    if (HOST_LE && piece instanceof Float32Array) {
      dst.set(new Uint8Array(piece.buffer, piece.byteOffset + 4 * from, nbytes));
    } else {
      for (let i = 0; i < n; i++) dv.setFloat32(4 * i, piece[from + i]!, true); // float64 → float32: nearest even
    }
  } else if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToBf16(piece[from + i]!), true);
  } else {
    for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToF16(piece[from + i]!), true);
  }
  return dst;
}

async function writeAll(fh: import('node:fs/promises').FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Write one safetensors file of `tensors` (already in file order) to `path`, streamed. */
async function writeOne(path: string, tensors: TensorSource[], dtype: SaveDType, metadata: Record<string, string>, sync: boolean, bufs: [Uint8Array, Uint8Array]): Promise<void> {
  const { bytes: header, offsets } = headerFor(tensors, dtype, metadata);
  const fh = await open(path, 'wx'); // 'wx': never clobber an existing file with the same (random) name
  // Double buffering: a chunk is written while the next one is fetched and converted into the other buffer.
  let pending: Promise<void> = Promise.resolve();
  let which = 0;
  try {
    await writeAll(fh, header, 0);
    for (let k = 0; k < tensors.length; k++) {
      const t = tensors[k]!;
      const total = numel(t.shape);
      let pos = header.byteLength + offsets[k]!;
      let written = 0;
      let tooMany = false;
      for await (const piece of t.read()) {
        if (piece instanceof Uint16Array && t.half !== 'bfloat16' && t.half !== 'float16') {
          throw new InputError(`tensor "${t.name}": a Uint16Array piece needs half: 'bfloat16' or 'float16' to say what its bits are`, { source: t.name });
        }
        if (written + piece.length > total) { tooMany = true; break; }
        for (let from = 0; from < piece.length; from += CHUNK_ELEMENTS) {
          const n = Math.min(CHUNK_ELEMENTS, piece.length - from);
          const out = convert(piece, t.half, from, n, dtype, bufs[which]!);
          which ^= 1;
          await pending; // the other buffer's write: done before that buffer is filled again
          pending = writeAll(fh, out, pos);
          pending.catch(() => {}); // observed by the next await; never an unhandled rejection meanwhile
          pos += out.byteLength;
        }
        written += piece.length;
      }
      if (tooMany || written !== total) {
        throw new InputError(`tensor "${t.name}": shape [${t.shape.join(', ')}] has ${total} elements but its source gave ${tooMany ? 'more' : written}; ` +
          'the tensor and its shape disagree', { source: t.name });
      }
    }
    await pending;
    if (sync) await fh.sync(); // on disk before a rename makes it visible under the real name
  } finally {
    await pending.catch(() => {}); // no write in flight when the file closes
    await fh.close();
  }
}

/** The file names of one save: "model.safetensors", or "model-00001-of-00003.safetensors", …. */
export function shardFileNames(count: number, weightsName = 'model.safetensors'): string[] {
  if (count === 1) return [weightsName];
  const stem = weightsName.replace(/\.safetensors$/, '');
  const pad = (i: number) => String(i).padStart(5, '0');
  return Array.from({ length: count }, (_, i) => `${stem}-${pad(i + 1)}-of-${pad(count)}.safetensors`);
}

/**
 * Write `tensors` into `dir` as one safetensors file or shards + index (see the top of this file). Tensors keep
 * the order given for the split; inside a file they are stored in name order. Returns what was written.
 */
export async function writeSafetensorsShards(dir: string, tensors: TensorSource[], opts: WriteShardsOptions = {}): Promise<WrittenShards> {
  const dtype = opts.dtype ?? 'F32';
  if (!(dtype in BYTES)) {
    throw new InputError(`dtype must be 'F32', 'BF16' or 'F16', found ${JSON.stringify(dtype)}`, { source: 'dtype' });
  }
  const maxShardSize = parseShardSize(opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
  const metadata = opts.metadata ?? { format: 'pt' };
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) {
      throw new InputError(`tensor name "${t.name}" is ${seen.has(t.name) ? 'used twice' : 'reserved'}; every tensor needs its own name`, { source: t.name });
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InputError(`tensor "${t.name}": shape ${JSON.stringify(t.shape)} must hold integers >= 0`, { source: t.name });
    }
    seen.add(t.name);
  }
  const sizes = tensors.map((t) => numel(t.shape) * BYTES[dtype]);
  const totalSize = sizes.reduce((a, b) => a + b, 0);
  const plan = planShards(sizes, maxShardSize);
  if (plan.length === 0) plan.push([]); // no tensors: one empty file, as safetensors writes it
  const names = shardFileNames(plan.length);
  const totalParameters = tensors.reduce((n, t) => n + numel(t.shape), 0);
  const index: ShardIndex | null = plan.length === 1 ? null
    : { metadata: { total_parameters: totalParameters, total_size: totalSize }, weight_map: {} };

  try {
    await makeDirs(dir, 'writing the weights'); // level by level: a recursive mkdir spins forever under /proc
  } catch (e) {
    throw describeFsError(dir, e, 'writing');
  }
  const tag = `${process.pid}.${randomBytes(4).toString('hex')}`;
  const temps: { tmp: string; final: string }[] = [];
  const bufs: [Uint8Array, Uint8Array] = [new Uint8Array(CHUNK_ELEMENTS * 4), new Uint8Array(CHUNK_ELEMENTS * 4)];
  let failedAt = dir;
  try {
    for (let s = 0; s < plan.length; s++) {
      const inFile = plan[s]!.map((i) => tensors[i]!).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const final = join(dir, names[s]!);
      const tmp = join(dir, `.${names[s]}.${tag}.tmp`);
      temps.push({ tmp, final });
      failedAt = final;
      await writeOne(tmp, inFile, dtype, metadata, opts.sync ?? true, bufs);
      if (index) for (const t of inFile) index.weight_map[t.name] = names[s]!;
    }
    if (index) {
      const final = join(dir, 'model.safetensors.index.json');
      const tmp = join(dir, `.model.safetensors.index.json.${tag}.tmp`);
      temps.push({ tmp, final });
      failedAt = final;
      await writeFile(tmp, indexJson(index), { flag: 'wx' });
    }
    // Everything is complete: only now do the files appear under their names.
    for (const { tmp, final } of temps) { failedAt = final; await rename(tmp, final); }
  } catch (e) {
    await Promise.all(temps.map(({ tmp }) => unlink(tmp).catch(() => {}))); // best effort: a temp may not exist
    if (e instanceof InputError) throw e;
    throw describeFsError(failedAt, e, 'writing');
  }
  // A previous save's weights that this one does not replace would be read with it (a stale model.safetensors
  // even instead of the new shards): remove them, as save_pretrained does.
  const keep = new Set(temps.map(({ final }) => basename(final)));
  let entries: string[] = [];
  try { entries = await readdir(dir); } catch { /* the save itself succeeded */ }
  for (const name of entries) {
    if (isWeightsFile(name) && !keep.has(name)) await unlink(join(dir, name)).catch(() => {});
  }
  return { files: names, totalSize, index };
}

/** Names of the weight files a previous save in `dir` may have left: the single file, shards, the index. */
export function isWeightsFile(name: string, weightsName = 'model.safetensors'): boolean {
  const stem = weightsName.replace(/\.safetensors$/, '');
  return name === weightsName || name === `${weightsName}.index.json` ||
    new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{5}-of-\\d{5}\\.safetensors$`).test(basename(name));
}

/**
 * The index JSON as transformers writes it: `json.dumps(index, indent=2, sort_keys=True) + "\n"` (keys sorted at
 * every level, 2-space indent, ", " / ": " separators).
 */
export function indexJson(index: ShardIndex): string {
  const sortKeys = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  };
  return `${JSON.stringify(sortKeys(index), null, 2)}\n`;
}
