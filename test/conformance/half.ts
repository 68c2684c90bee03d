// Half-precision checkpoints for the tests: a float32 fixture rounded to BF16 or F16 and written as a real
// safetensors file (F16 by hand: the library's writer writes F32 and BF16 only).
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HalfDType, float32ToHalf, parseSafetensors } from '../../src/index.js';

/** Writes a safetensors file whose tensors are all stored as `fileDtype` ('BF16' or 'F16') from their bit patterns. */
export function writeHalfSafetensors(path: string, tensors: [string, readonly number[], Uint16Array][], fileDtype: 'BF16' | 'F16'): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape, bits] of tensors) {
    header[name] = { dtype: fileDtype, shape, data_offsets: [off, off + bits.byteLength] };
    off += bits.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const hbytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hbytes.length + off);
  out.writeBigUInt64LE(BigInt(hbytes.length), 0);
  hbytes.copy(out, 8);
  let p = 8 + hbytes.length;
  for (const [, , bits] of tensors) {
    Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength).copy(out, p);
    p += bits.byteLength;
  }
  writeFileSync(path, out);
}

/**
 * A copy of fixture directory `src` (config.json + model.safetensors in F32) with every tensor rounded to `dtype`
 * and stored as BF16/F16: what a model shipped in half precision looks like. Returns the new directory.
 */
export function halfCheckpoint(src: string, dtype: HalfDType): string {
  const dir = mkdtempSync(join(tmpdir(), `llamatrain-half-${dtype}-`));
  copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
  const { tensors } = parseSafetensors(readFileSync(join(src, 'model.safetensors')));
  const list: [string, readonly number[], Uint16Array][] = [];
  for (const [name, t] of tensors) list.push([name, t.shape, float32ToHalf(t.data, dtype)]);
  writeHalfSafetensors(join(dir, 'model.safetensors'), list, dtype === 'bfloat16' ? 'BF16' : 'F16');
  return dir;
}
