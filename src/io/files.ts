// Node-only file helpers around the browser-safe safetensors codec. Writes are atomic (temp file in the same
// directory, then rename) so an interrupted checkpoint save never leaves a half-written file under the real name.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  parseSafetensors,
  serializeSafetensors,
  type ParsedSafetensors,
  type SerializeOptions,
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

/** Read and parse a .safetensors file; errors name the file. */
export async function readSafetensorsFile(path: string): Promise<ParsedSafetensors> {
  return parseSafetensors(await readBytes(path), path);
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
