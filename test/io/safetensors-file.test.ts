// The positioned safetensors file reader (readSafetensorsFile): the same tensors and the same refusals as the
// in-memory parser, at every read-chunk size, half kept raw on request, and offsets past Node's 2 GiB Buffer limit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from '../helpers.js';
import { parseSafetensors, type StoredTensor } from '../../src/io/safetensors.js';
import { readSafetensorsFile } from '../../src/io/files.js';
import { InputError } from '../../src/core/errors.js';

/** safetensors bytes from a header object (serialized as-is) and a raw data section, built by hand. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function bytesOf(...parts: (number[] | Uint8Array)[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => Array.from(p)));
}
const u16 = (...v: number[]) => bytesOf(...v.map((x) => [x & 0xff, x >>> 8]));
const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);
const i64 = (...v: bigint[]) => new Uint8Array(new BigInt64Array(v).buffer);

function plain(t: StoredTensor): { dtype: string; shape: number[]; ctor: string; data: number[] } {
  return { dtype: t.dtype, shape: t.shape, ctor: t.data.constructor.name, data: Array.from(t.data as ArrayLike<number>) };
}

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'llamatrain-stfile-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

// Every dtype, odd lengths so later tensors sit at unaligned offsets.
const MIXED_HEADER = {
  __metadata__: { format: 'pt' },
  a_bf16: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] }, // 1, -2, +Inf
  b_f32: { dtype: 'F32', shape: [2], data_offsets: [6, 14] }, // at data offset 6: unaligned
  c_f16: { dtype: 'F16', shape: [5], data_offsets: [14, 24] },
  d_i64: { dtype: 'I64', shape: [2], data_offsets: [24, 40] },
  e_u8: { dtype: 'U8', shape: [3], data_offsets: [40, 43] },
  f_f64: { dtype: 'F64', shape: [1], data_offsets: [43, 51] },
  g_i32: { dtype: 'I32', shape: [2], data_offsets: [51, 59] },
  h_empty: { dtype: 'F32', shape: [0, 4], data_offsets: [59, 59] },
  // longer than the smallest read pieces: their conversion happens over several reads
  i_bf16: { dtype: 'BF16', shape: [3, 7], data_offsets: [59, 101] },
  j_f16: { dtype: 'F16', shape: [13], data_offsets: [101, 127] },
  k_i64: { dtype: 'I64', shape: [5], data_offsets: [127, 167] },
};
const MIXED_DATA = bytesOf(
  u16(0x3f80, 0xc000, 0x7f80),
  f32(1.5, -0.25),
  u16(0x3c00, 0x0001, 0x7bff, 0xfc00, 0x8000), // 1, smallest subnormal, 65504, -Inf, -0
  i64(-7n, 2147483647n),
  [0, 200, 255],
  new Uint8Array(new Float64Array([Math.PI]).buffer),
  new Uint8Array(new Int32Array([-1, 123456]).buffer),
  u16(...Array.from({ length: 21 }, (_, i) => 0x3f80 + 0x101 * i)),
  u16(...Array.from({ length: 13 }, (_, i) => 0x3c00 + 0x123 * i)),
  i64(5n, -4n, 3n, -2n, 1n),
);

describe('readSafetensorsFile (positioned reads)', () => {
  it('returns exactly what parseSafetensors returns, at every chunk size, for the fixtures and a file of every dtype', async () => {
    const mixed = join(dir, 'mixed.safetensors');
    await writeFile(mixed, rawFile(MIXED_HEADER, MIXED_DATA));
    const files = [fixturePath('hf-llama-tiny', 'model.safetensors'), fixturePath('hf-llama-tiny', 'reference.safetensors'), mixed];
    for (const path of files) {
      const bytes = readFileSync(path);
      for (const keepHalf of [false, true]) {
        const expected = parseSafetensors(bytes, path, { keepHalf });
        // every size on the small hand-made file; on the fixtures, sizes that still split tensors (fewer reads)
        for (const chunkBytes of path === mixed ? [8, 24, 1000, undefined] : [4000, undefined]) {
          const got = await readSafetensorsFile(path, { keepHalf, chunkBytes });
          assert.deepEqual(got.metadata, expected.metadata);
          assert.deepEqual([...got.tensors.keys()].sort(), [...expected.tensors.keys()].sort(), path);
          for (const [name, t] of expected.tensors) {
            assert.deepEqual(plain(got.tensors.get(name)!), plain(t), `${path} ${name} keepHalf=${keepHalf} chunk=${chunkBytes}`);
          }
        }
      }
    }
  });

  it('decodes the hand-made file to the values written (float32 by default, raw bits with keepHalf)', async () => {
    const path = join(dir, 'mixed2.safetensors');
    await writeFile(path, rawFile(MIXED_HEADER, MIXED_DATA));
    const wide = (await readSafetensorsFile(path, { chunkBytes: 8 })).tensors;
    assert.deepEqual(plain(wide.get('a_bf16')!), { dtype: 'float32', shape: [3], ctor: 'Float32Array', data: [1, -2, Infinity] });
    assert.deepEqual(plain(wide.get('c_f16')!).data, [1, 2 ** -24, 65504, -Infinity, -0]);
    assert.ok(Object.is(wide.get('c_f16')!.data[4], -0));
    assert.deepEqual(plain(wide.get('b_f32')!).data, [1.5, -0.25]);
    assert.deepEqual(plain(wide.get('d_i64')!), { dtype: 'int32', shape: [2], ctor: 'Int32Array', data: [-7, 2147483647] });
    assert.deepEqual(plain(wide.get('e_u8')!).data, [0, 200, 255]);
    assert.deepEqual(plain(wide.get('f_f64')!).data, [Math.PI]);
    assert.deepEqual(plain(wide.get('g_i32')!).data, [-1, 123456]);
    assert.deepEqual(plain(wide.get('h_empty')!), { dtype: 'float32', shape: [0, 4], ctor: 'Float32Array', data: [] });

    const raw = (await readSafetensorsFile(path, { keepHalf: true, chunkBytes: 8 })).tensors;
    assert.deepEqual(plain(raw.get('a_bf16')!), { dtype: 'bfloat16', shape: [3], ctor: 'Uint16Array', data: [0x3f80, 0xc000, 0x7f80] });
    assert.deepEqual(plain(raw.get('c_f16')!), { dtype: 'float16', shape: [5], ctor: 'Uint16Array', data: [0x3c00, 0x0001, 0x7bff, 0xfc00, 0x8000] });
    assert.equal(raw.get('b_f32')!.dtype, 'float32'); // only half types change
  });

  it('reads only the tensors asked for, and names a tensor that is not there', async () => {
    const path = join(dir, 'mixed3.safetensors');
    await writeFile(path, rawFile(MIXED_HEADER, MIXED_DATA));
    const some = await readSafetensorsFile(path, { names: ['g_i32', 'a_bf16'] });
    assert.deepEqual([...some.tensors.keys()].sort(), ['a_bf16', 'g_i32']);
    assert.deepEqual(plain(some.tensors.get('g_i32')!).data, [-1, 123456]);
    await assert.rejects(readSafetensorsFile(path, { names: ['nope'] }), (e: unknown) =>
      e instanceof InputError && /no tensor "nope"/.test(e.message) && e.message.includes(path));
  });

  it('refuses every malformed file with the same message as the in-memory parser', async () => {
    const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
    const lenSays = (n: number, rest: Uint8Array) => { const b = new Uint8Array(8 + rest.length); new DataView(b.buffer).setUint32(0, n, true); b.set(rest, 8); return b; };
    const cases: [string, Uint8Array][] = [
      ['shorter than the length prefix', new Uint8Array([1, 0, 0])],
      ['empty file', new Uint8Array(0)],
      ['header length past the end', lenSays(1000, new TextEncoder().encode('{}'))],
      ['header cut', rawFile(ok, f32(1, 2)).subarray(0, 20)],
      ['not JSON', rawFile(null, new Uint8Array(0), '{"t": ')],
      ['not an object', rawFile(null, new Uint8Array(0), '[1, 2]')],
      ['tensor twice', rawFile(null, f32(1, 2, 3, 4), '{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}')],
      ['data cut', rawFile(ok, f32(1))],
      ['size disagrees with the shape', rawFile({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(1, 2))],
      ['overlap', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2))],
      ['gap', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2))],
      ['trailing bytes', rawFile(ok, f32(1, 2, 3))],
      ['unknown dtype', rawFile({ t: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, f32(1, 2))],
      ['bad shape', rawFile({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, f32(1, 2))],
      ['metadata not strings', rawFile({ __metadata__: { a: 1 }, ...ok }, f32(1, 2))],
      // decoding errors name the element: with 8-byte reads, element 2 arrives in the third read
      ['I64 outside int32', rawFile({ t: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } }, i64(1n, 2n, 2n ** 40n))],
      ['U32 above int32', rawFile({ t: { dtype: 'U32', shape: [3], data_offsets: [0, 12] } }, new Uint8Array(new Uint32Array([1, 2, 2 ** 31]).buffer))],
    ];
    for (const [what, bytes] of cases) {
      const path = join(dir, `bad-${what.replace(/\W+/g, '-')}.safetensors`);
      await writeFile(path, bytes);
      let expected: Error | undefined;
      try { parseSafetensors(bytes, path); } catch (e) { expected = e as Error; }
      assert.ok(expected instanceof InputError, `${what}: the parser refuses it`);
      await assert.rejects(readSafetensorsFile(path, { chunkBytes: 8 }), (e: unknown) => {
        assert.ok(e instanceof InputError, `${what}: ${String(e)}`);
        assert.equal(e.message, expected!.message, what);
        return true;
      });
    }
    await assert.rejects(readSafetensorsFile(join(dir, 'bad-I64-outside-int32.safetensors'), { chunkBytes: 8 }), /element 2 of this I64 tensor is 1099511627776/);
  });

  it('names a missing file', async () => {
    await assert.rejects(readSafetensorsFile(join(dir, 'missing.safetensors')), (e: unknown) =>
      e instanceof Error && e.message.includes('missing.safetensors'));
  });
});

describe('readSafetensorsFile past 2 GiB (a sparse file)', () => {
  it('reads a tensor that straddles the 2 GiB offset and one beyond it, byte-exactly', async () => {
    // filler [0, 2^31 - 6) of zeros (never written: a hole), then "mid" F32[4] across 2^31 in the file, then "tail"
    // F32[3] beyond it. Node cannot hold this file in one Buffer.
    const headerFor = (fillerBytes: number) => ({
      filler: { dtype: 'U8', shape: [fillerBytes], data_offsets: [0, fillerBytes] },
      mid: { dtype: 'F32', shape: [4], data_offsets: [fillerBytes, fillerBytes + 16] },
      tail: { dtype: 'BF16', shape: [3], data_offsets: [fillerBytes + 16, fillerBytes + 22] },
    });
    // "mid" starts 8 bytes below 2^31 in the file (the header's length does not change: the numbers keep 10 digits)
    const dataStart = rawFile(headerFor(2 ** 31 - 100)).length;
    const fillerBytes = 2 ** 31 - 8 - dataStart;
    const head = rawFile(headerFor(fillerBytes));
    assert.equal(head.length, dataStart);
    const path = join(dir, 'sparse.safetensors');
    const fh = await open(path, 'w');
    try {
      await fh.write(head, 0, head.length, 0);
      const midAt = dataStart + fillerBytes;
      assert.ok(midAt < 2 ** 31 && midAt + 16 > 2 ** 31, 'mid straddles 2 GiB');
      await fh.write(f32(1.25, -3, 7e-8, 65536), 0, 16, midAt);
      await fh.write(u16(0x3f80, 0xbfc0, 0x0001), 0, 6, midAt + 16);
      await fh.truncate(midAt + 22);
    } finally {
      await fh.close();
    }
    const got = await readSafetensorsFile(path, { names: ['mid', 'tail'] });
    assert.deepEqual(Array.from(got.tensors.get('mid')!.data), [1.25, -3, Math.fround(7e-8), 65536]);
    assert.deepEqual(Array.from(got.tensors.get('tail')!.data), [1, -1.5, 2 ** -133]);
    const raw = await readSafetensorsFile(path, { names: ['tail'], keepHalf: true });
    assert.deepEqual(plain(raw.tensors.get('tail')!), { dtype: 'bfloat16', shape: [3], ctor: 'Uint16Array', data: [0x3f80, 0xbfc0, 0x0001] });

    // Cut one byte: the header no longer matches the file, refused before anything is read.
    const fh2 = await open(path, 'r+');
    await fh2.truncate(dataStart + fillerBytes + 21);
    await fh2.close();
    await assert.rejects(readSafetensorsFile(path, { names: ['tail'] }), (e: unknown) =>
      e instanceof InputError && /outside the data section/.test(e.message));
  });
});
