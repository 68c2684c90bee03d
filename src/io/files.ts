// Node-only file helpers around the browser-safe safetensors codec. Writes are atomic (temp file in the same
// directory, then rename) so an interrupted checkpoint save never leaves a half-written file under the real name.
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  allocateFor,
  decodeInto,
  fileDtypeSize,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  serializeSafetensors,
  storedDtype,
  type ParsedSafetensors,
  type ParseOptions,
  type SafetensorsEntry,
  type SerializeOptions,
  type StoredTensor,
  type TensorLike,
} from './safetensors.js';
import { describeFsError } from '../data/node-fs-errors.js';
import { InputError } from '../core/errors.js';

/** Reads a whole file; errors name the file and say what to check. */
export async function readBytesFile(path: string): Promise<Uint8Array> {
  return readBytes(path);
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw describeFsError(path, e, 'reading');
  }
}

export interface ReadSafetensorsOptions extends ParseOptions {
  /** Read only these tensors (the whole header is still validated); default: all. */
  names?: Iterable<string>;
  /** Largest single read, in bytes (default 64 MiB): converting dtypes goes through one buffer of this size. */
  chunkBytes?: number;
}

const DEFAULT_CHUNK = 64 * 2 ** 20;

/**
 * Read and parse a .safetensors file; errors name the file. The file is never held whole: the header is read and
 * validated from the first bytes (all of safetensors.ts's checks, against the file's size), then each tensor's
 * bytes are read with positioned reads straight into its own typed array (converting dtypes a chunk at a time),
 * so files and offsets past Node's 2 GiB Buffer limit work and the memory used is the tensors returned.
 */
export async function readSafetensorsFile(path: string, opts?: ReadSafetensorsOptions & { keepHalf?: false }): Promise<ParsedSafetensors>;
export async function readSafetensorsFile(path: string, opts: ReadSafetensorsOptions): Promise<ParsedSafetensors<StoredTensor>>;
export async function readSafetensorsFile(path: string, opts: ReadSafetensorsOptions = {}): Promise<ParsedSafetensors<StoredTensor>> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw describeFsError(path, e, 'reading');
  }
  try {
    let fileSize: number;
    try {
      fileSize = (await fh.stat()).size;
    } catch (e) {
      throw describeFsError(path, e, 'reading');
    }
    const prefix = await readAt(fh, path, new Uint8Array(Math.min(8, fileSize)), 0);
    const headerLen = safetensorsHeaderLength(prefix, fileSize, path);
    const headerBytes = await readAt(fh, path, new Uint8Array(headerLen), 8);
    const { entries, metadata, dataStart } = parseSafetensorsHeader(headerBytes, fileSize, path);
    const wanted = opts.names === undefined ? null : new Set(opts.names);
    if (wanted) {
      const have = new Set(entries.map((e) => e.name));
      for (const n of wanted) {
        if (!have.has(n)) throw new InputError(`${path}: no tensor "${n}" in this file; it holds ${have.size} tensor(s)`, { source: path });
      }
    }
    const chunk = Math.max(8, Math.floor((opts.chunkBytes ?? DEFAULT_CHUNK) / 8) * 8); // whole elements of every dtype
    let scratch: Uint8Array | null = null; // the conversion buffer, shared by all tensors of this file
    const tensors = new Map<string, StoredTensor>();
    // In offset order: the reads walk the file front to back.
    for (const e of entries.slice().sort((a, b) => a.begin - b.begin)) {
      if (wanted && !wanted.has(e.name)) continue;
      const out = allocateFor(e, opts);
      const where = `${path}: tensor "${e.name}"`;
      const size = fileDtypeSize(e.fileDtype);
      const pos = dataStart + e.begin;
      const nbytes = e.end - e.begin;
      if (sameBytes(e, opts)) {
        // Stored as returned: read straight into the array's bytes (in pieces: one read is at most 2 GiB).
        const dst = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
        for (let off = 0; off < nbytes; off += chunk) await readAt(fh, path, dst.subarray(off, Math.min(nbytes, off + chunk)), pos + off);
      } else {
        scratch ??= new Uint8Array(Math.min(chunk, Math.max(8, nbytes)));
        if (scratch.byteLength < Math.min(chunk, nbytes)) scratch = new Uint8Array(Math.min(chunk, nbytes));
        for (let off = 0; off < nbytes; off += scratch.byteLength) {
          const piece = await readAt(fh, path, scratch.subarray(0, Math.min(scratch.byteLength, nbytes - off)), pos + off);
          decodeInto(out, piece, e.fileDtype, off / size, where, opts);
        }
      }
      tensors.set(e.name, { dtype: storedDtype(e.fileDtype, opts), shape: e.shape, data: out } as StoredTensor);
    }
    return { tensors, metadata };
  } finally {
    await fh.close();
  }
}

// Little-endian hosts hold F32/F64/I32 (and half kept raw) in memory exactly as the file stores them.
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function sameBytes(e: SafetensorsEntry, opts: ParseOptions): boolean {
  if (!HOST_LE) return false;
  return e.fileDtype === 'F32' || e.fileDtype === 'F64' || e.fileDtype === 'I32' ||
    (opts.keepHalf === true && (e.fileDtype === 'BF16' || e.fileDtype === 'F16'));
}

/** Fill `dst` from the file at byte `position` (positioned reads, repeated on short reads); returns `dst`. */
async function readAt(fh: FileHandle, path: string, dst: Uint8Array, position: number): Promise<Uint8Array> {
  let done = 0;
  while (done < dst.byteLength) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(dst, done, dst.byteLength - done, position + done));
    } catch (e) {
      throw describeFsError(path, e, 'reading');
    }
    if (bytesRead === 0) {
      throw new InputError(`${path}: the file ended at byte ${position + done} while reading ${dst.byteLength} bytes at ${position}; ` +
        'it was truncated or changed while being read — re-download or re-export it', { source: path });
    }
    done += bytesRead;
  }
  return dst;
}

/** Read and parse a JSON file (e.g. config.json); errors name the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  const text = new TextDecoder().decode(await readBytes(path)); // drops a UTF-8 BOM
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${path}: not valid JSON (${(e as Error).message}); fix or re-export the file`, { cause: e, source: path });
  }
}

/** Write bytes atomically: to a temp file next to `path`, flushed to disk, then renamed over it. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx'); // 'wx': never clobber an existing file with the same (random) name
    try {
      await fh.writeFile(data);
      await fh.sync(); // the data must be on disk before the rename makes it visible under the real name
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {}); // best effort: the temp file may not exist
    throw describeFsError(path, e, 'writing');
  }
}

/** Serialize tensors (see serializeSafetensors) and write them atomically. */
export async function writeSafetensorsFile(
  path: string,
  tensors: Iterable<readonly [string, TensorLike]> | Record<string, TensorLike>,
  opts: SerializeOptions = {},
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, opts));
}

/** Write a value as pretty-printed JSON (2-space indent, trailing newline), atomically. */
export async function writeJsonFile(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
