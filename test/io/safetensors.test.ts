import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from '../helpers.js';
import {
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  parseSafetensors,
  serializeSafetensors,
  type RawTensor,
} from '../../src/io/safetensors.js';
import { readJsonFile, readSafetensorsFile, writeJsonFile, writeSafetensorsFile } from '../../src/io/files.js';

const REF = fixturePath('hf-llama-tiny', 'reference.safetensors');
const MODEL = fixturePath('hf-llama-tiny', 'model.safetensors');

/**
 * Build safetensors bytes by hand (independently of serializeSafetensors), so tests can craft any header,
 * including invalid ones. `header` is serialized as-is; `data` is the raw data section.
 */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const h = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true); // high 32 bits stay 0
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function le(kind: 'u16' | 'i64' | 'f32', values: (number | bigint)[]): Uint8Array {
  const size = kind === 'u16' ? 2 : kind === 'f32' ? 4 : 8;
  const dv = new DataView(new ArrayBuffer(values.length * size));
  values.forEach((v, i) => {
    if (kind === 'u16') dv.setUint16(i * 2, Number(v), true);
    else if (kind === 'f32') dv.setFloat32(i * 4, Number(v), true);
    else dv.setBigInt64(i * 8, BigInt(v), true);
  });
  return new Uint8Array(dv.buffer);
}

function sum(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
}

function get(tensors: Map<string, RawTensor>, name: string): RawTensor {
  const t = tensors.get(name);
  assert.ok(t, `missing tensor ${name}`);
  return t;
}

describe('parseSafetensors on the HF fixtures', () => {
  const ref = parseSafetensors(readFileSync(REF), REF).tensors;
  const model = parseSafetensors(readFileSync(MODEL), MODEL);

  it('reads I32 batch tensors with the documented shapes and padding', () => {
    const ids = get(ref, 'input_ids');
    const mask = get(ref, 'attention_mask');
    const labels = get(ref, 'labels');
    for (const t of [ids, mask, labels]) {
      assert.equal(t.dtype, 'int32');
      assert.deepEqual(t.shape, [3, 17]);
      assert.ok(t.data instanceof Int32Array);
    }
    // README: rows right-padded by 0, 5 and 9 tokens; labels = input_ids with -100 where the mask is 0.
    const rowSums = [0, 1, 2].map((r) => sum(mask.data.subarray(r * 17, r * 17 + 17)));
    assert.deepEqual(rowSums, [17, 12, 8]);
    for (let i = 0; i < 51; i++) {
      assert.equal(labels.data[i], mask.data[i] === 1 ? ids.data[i] : -100, `labels[${i}]`);
      if (mask.data[i] === 0) assert.equal(ids.data[i], 0, 'pad id is 0');
    }
  });

  it('reads F64 scalars exactly and F64 matrices consistently', () => {
    const loss = get(ref, 'loss');
    assert.equal(loss.dtype, 'float64');
    assert.deepEqual(loss.shape, [1]);
    assert.ok(loss.data instanceof Float64Array);
    assert.ok(Math.abs(loss.data[0]! - 5.602365970611572) <= 1e-12);
    // The fixture's loss is a float32 value stored as F64 (HF's ForCausalLMLoss upcasts logits with .float(),
    // which is float32 even in a float64 model), while token_loss is float64.
    assert.equal(Math.fround(loss.data[0]!), loss.data[0]);
    // token_loss[b, t] is the loss of target labels[b, t + 1]: zero exactly where that label is -100, and its
    // mean over the 34 valid targets is the loss (to the loss's float32 precision). Checks the F64 matrix decoding.
    const tok = get(ref, 'token_loss');
    const labels = get(ref, 'labels').data;
    assert.deepEqual(tok.shape, [3, 16]);
    let valid = 0;
    for (let b = 0; b < 3; b++) {
      for (let t = 0; t < 16; t++) {
        const ignored = labels[b * 17 + t + 1] === -100;
        if (!ignored) valid++;
        assert.equal(tok.data[b * 16 + t] === 0, ignored, `token_loss[${b}, ${t}]`);
      }
    }
    assert.equal(valid, 34);
    const mean = sum(tok.data) / valid;
    assert.ok(Math.abs(mean - loss.data[0]!) < 1e-6 * loss.data[0]!, `mean token loss ${mean}`);
    assert.deepEqual(Array.from(get(ref, 'ga_max_abs_diff_vs_full').data), [0]);
  });

  it('reads the F32 weights with HF names and metadata', () => {
    assert.deepEqual(model.metadata, { format: 'pt' });
    assert.equal(model.tensors.size, 21);
    const emb = get(model.tensors, 'model.embed_tokens.weight');
    assert.equal(emb.dtype, 'float32');
    assert.deepEqual(emb.shape, [256, 64]);
    assert.ok(emb.data instanceof Float32Array && emb.data.length === 256 * 64);
    assert.deepEqual(get(model.tensors, 'lm_head.weight').shape, [256, 64]);
    assert.deepEqual(get(model.tensors, 'model.layers.1.self_attn.k_proj.weight').shape, [32, 64]); // 2 KV heads × 16
    assert.deepEqual(get(model.tensors, 'model.layers.0.mlp.down_proj.weight').shape, [64, 176]);
    // README: norm weights are not 1. A mis-decoded buffer would not give finite, varied values.
    const norm = get(model.tensors, 'model.norm.weight').data;
    assert.ok(norm.every(Number.isFinite) && norm.some((v) => v !== 1));
    // Every parameter has a gradient of the same shape in the reference file.
    for (const [name, t] of model.tensors) {
      const g = get(ref, `grad.${name}`);
      assert.equal(g.dtype, 'float32');
      assert.deepEqual(g.shape, t.shape, name);
    }
    assert.deepEqual(get(ref, 'logits').shape, [3, 17, 256]);
  });

  it('returns copies that do not alias the input bytes, also for a Node Buffer at a non-zero offset', () => {
    const file = readFileSync(MODEL);
    const backing = new ArrayBuffer(file.length + 3);
    const bytes = Buffer.from(backing, 3, file.length); // Buffer.slice() would return a view here, not a copy
    bytes.set(file);
    const { tensors } = parseSafetensors(bytes);
    const expected = get(model.tensors, 'model.norm.weight');
    assert.deepEqual(get(tensors, 'model.norm.weight'), expected);
    bytes.fill(0, 8);
    assert.deepEqual(get(tensors, 'model.norm.weight'), expected);
  });
});

describe('serializeSafetensors', () => {
  it('round-trips the fixture weights bit-exactly and deterministically', () => {
    const { tensors, metadata } = parseSafetensors(readFileSync(MODEL));
    const bytes = serializeSafetensors(tensors, { metadata });
    const back = parseSafetensors(bytes);
    assert.deepEqual(back.metadata, metadata);
    assert.deepEqual([...back.tensors.keys()], [...tensors.keys()].sort());
    for (const [name, t] of tensors) assert.deepEqual(get(back.tensors, name), t, name);
    assert.deepEqual(serializeSafetensors(tensors, { metadata }), bytes);
    // Same bytes whatever the input order or container.
    const reversed = [...tensors].reverse();
    assert.deepEqual(serializeSafetensors(reversed, { metadata }), bytes);
    assert.deepEqual(serializeSafetensors(Object.fromEntries(reversed), { metadata }), bytes);
  });

  it('pads the header with spaces to a multiple of 8 and stores tensors contiguously in name order', () => {
    const bytes = serializeSafetensors({
      b: { dtype: 'float32', shape: [3], data: new Float32Array([1, 2, 3]) },
      a: { dtype: 'int32', shape: [], data: new Int32Array([7]) },
      '10': { dtype: 'float64', shape: [0], data: new Float64Array(0) },
    });
    const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    assert.equal(n % 8, 0);
    assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true), 0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    assert.match(text, /^\{"10":.*"a":.*"b":.*\} *$/);
    const header = JSON.parse(text);
    assert.deepEqual(header['10'], { dtype: 'F64', shape: [0], data_offsets: [0, 0] });
    assert.deepEqual(header.a, { dtype: 'I32', shape: [], data_offsets: [0, 4] });
    assert.deepEqual(header.b, { dtype: 'F32', shape: [3], data_offsets: [4, 16] });
    assert.equal(bytes.length, 8 + n + 16);
  });

  it('round-trips F32, F64 and I32 including special values', () => {
    const f32 = new Float32Array([0, -0, 1.5, -3.25e-39 /* subnormal */, 3.4028234663852886e38, Infinity, -Infinity, NaN]);
    const f64 = new Float64Array([Math.PI, -0, 5e-324, Number.MAX_VALUE, -Infinity, NaN]);
    const i32 = new Int32Array([0, -1, 2147483647, -2147483648, -100]);
    const bytes = serializeSafetensors(
      new Map([
        ['f32', { dtype: 'float32' as const, shape: [2, 4], data: f32 }],
        ['f64', { dtype: 'float64' as const, shape: [6], data: f64 }],
        ['i32', { dtype: 'int32' as const, shape: [5, 1], data: i32 }],
      ]),
      { metadata: { note: 'hi', format: 'pt' } },
    );
    const { tensors, metadata } = parseSafetensors(bytes);
    assert.deepEqual(metadata, { format: 'pt', note: 'hi' });
    assert.deepEqual(get(tensors, 'f32'), { dtype: 'float32', shape: [2, 4], data: f32 });
    assert.deepEqual(get(tensors, 'f64'), { dtype: 'float64', shape: [6], data: f64 });
    assert.deepEqual(get(tensors, 'i32'), { dtype: 'int32', shape: [5, 1], data: i32 });
    assert.ok(Object.is(get(tensors, 'f32').data[1], -0));
  });

  it('writes BF16 on request: exact for bf16 values, rounding to nearest even otherwise', () => {
    // Exactly representable in bf16 (8 significant bits).
    const exact = [0, -0, 1, -2, 0.5, 1.0078125, 3.140625, -65280, 2 ** -133 /* bf16 subnormal */, Infinity, -Infinity];
    const h = 2 ** -8; // half of bf16's ulp at 1.0
    const cases: [number, number][] = [
      [1 + h, 1], // tie, 1.0 is even (mantissa ...0) → down
      [1 + 3 * h, 1 + 4 * h], // tie between 1+2h (odd) and 1+4h (even) → up
      [1 + h + 2 ** -20, 1 + 2 * h], // just above the tie → up
      [1 + h - 2 ** -20, 1], // just below → down
      [3.4028234663852886e38, Infinity], // float32 max rounds past bf16 max
    ];
    const input = new Float32Array([...exact, ...cases.map(([x]) => x), NaN]);
    const bytes = serializeSafetensors({ w: { dtype: 'float32', shape: [input.length], data: input } }, { dtype: 'BF16' });
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + new DataView(bytes.buffer).getUint32(0, true))));
    assert.deepEqual(header.w, { dtype: 'BF16', shape: [input.length], data_offsets: [0, input.length * 2] });
    const out = get(parseSafetensors(bytes).tensors, 'w');
    assert.equal(out.dtype, 'float32');
    const expected = [...exact, ...cases.map(([, y]) => y), NaN];
    assert.deepEqual(Array.from(out.data), expected);
    assert.ok(Object.is(out.data[1], -0));
    assert.equal(f32ToBf16(1 + h), 0x3f80);
    assert.equal(f32ToBf16(1 + 3 * h), 0x3f82);
    assert.equal(f32ToBf16(NaN), 0x7fc0);
  });

  it('down-converts float64 to F32 or BF16 when asked, and keeps int32 as I32', () => {
    const data = new Float64Array([0.1, 1 / 3]);
    const t = {
      x: { dtype: 'float64' as const, shape: [2], data },
      i: { dtype: 'int32' as const, shape: [1], data: new Int32Array([5]) },
    };
    const f32 = parseSafetensors(serializeSafetensors(t, { dtype: 'F32' })).tensors;
    assert.deepEqual(get(f32, 'x'), { dtype: 'float32', shape: [2], data: new Float32Array(data) });
    assert.deepEqual(get(f32, 'i').data, new Int32Array([5]));
    const bf = get(parseSafetensors(serializeSafetensors(t, { dtype: 'BF16' })).tensors, 'x');
    assert.deepEqual(Array.from(bf.data), [0.10009765625, 0.333984375]); // nearest bf16 values
  });

  it('rejects inconsistent input with a clear message', () => {
    assert.throws(
      () => serializeSafetensors({ w: { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) } }),
      /tensor "w": shape \[2, 2\] has 4 elements but data has 3/,
    );
    assert.throws(
      () => serializeSafetensors({ w: { dtype: 'int32', shape: [1], data: new Float32Array(1) } }),
      /tensor "w": dtype is int32 but data is a Float32Array; pass a Int32Array/,
    );
    const t = { dtype: 'int32' as const, shape: [1], data: new Int32Array(1) };
    assert.throws(() => serializeSafetensors([['a', t], ['a', t]]), /tensor "a": appears twice/);
    assert.throws(() => serializeSafetensors({ __metadata__: t }), /reserved for metadata/);
  });
});

describe('half-precision decoding', () => {
  it('f16ToF32 decodes normal, subnormal and special bit patterns', () => {
    assert.equal(f16ToF32(0x3c00), 1);
    assert.equal(f16ToF32(0xc000), -2);
    assert.equal(f16ToF32(0x3555), 0.333251953125);
    assert.equal(f16ToF32(0x7bff), 65504);
    assert.equal(f16ToF32(0x0400), 2 ** -14); // smallest normal
    assert.equal(f16ToF32(0x0001), 2 ** -24); // smallest subnormal
    assert.equal(f16ToF32(0x03ff), 1023 * 2 ** -24); // largest subnormal
    assert.equal(f16ToF32(0x7c00), Infinity);
    assert.equal(f16ToF32(0xfc00), -Infinity);
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
    assert.ok(Object.is(f16ToF32(0x8000), -0));
  });

  it('bf16ToF32 decodes normal, subnormal and special bit patterns', () => {
    assert.equal(bf16ToF32(0x3f80), 1);
    assert.equal(bf16ToF32(0xc000), -2);
    assert.equal(bf16ToF32(0x0001), 2 ** -133);
    assert.equal(bf16ToF32(0x7f80), Infinity);
    assert.ok(Number.isNaN(bf16ToF32(0x7fc0)));
    assert.ok(Object.is(bf16ToF32(0x8000), -0));
  });

  it('parses F16 and BF16 tensors into float32', () => {
    const bytes = rawFile(
      {
        h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] },
        b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
      },
      new Uint8Array([...le('u16', [0x3c00, 0xc000, 0x7c00, 0x0001]), ...le('u16', [0x3f80, 0xbfc0])]),
    );
    const { tensors } = parseSafetensors(bytes);
    assert.deepEqual(get(tensors, 'h'), { dtype: 'float32', shape: [4], data: new Float32Array([1, -2, Infinity, 2 ** -24]) });
    assert.deepEqual(get(tensors, 'b'), { dtype: 'float32', shape: [2], data: new Float32Array([1, -1.5]) });
  });
});

describe('integer dtypes', () => {
  it('decodes I64 into int32 when every value fits', () => {
    const bytes = rawFile(
      { ids: { dtype: 'I64', shape: [2, 3], data_offsets: [0, 48] } },
      le('i64', [0, -1, 2147483647, -2147483648, -100, 42]),
    );
    assert.deepEqual(get(parseSafetensors(bytes).tensors, 'ids'), {
      dtype: 'int32',
      shape: [2, 3],
      data: new Int32Array([0, -1, 2147483647, -2147483648, -100, 42]),
    });
  });

  it('rejects I64 values outside int32, naming the tensor, index and value', () => {
    for (const big of [2147483648n, -2147483649n, 1n << 40n]) {
      const bytes = rawFile({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, le('i64', [1, big]));
      assert.throws(
        () => parseSafetensors(bytes, 'ids.safetensors'),
        new RegExp(`^InputError: ids\\.safetensors: tensor "ids": element 1 of this I64 tensor is ${big}, outside the int32 range`),
      );
    }
  });

  it('decodes BOOL, U8, I8, I16, U16 and U32 into int32', () => {
    const data = new Uint8Array([1, 0, 255, 255, 0xff, 0xff, 0xff, 0xff, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12]);
    const bytes = rawFile(
      {
        bool: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] },
        u8: { dtype: 'U8', shape: [1], data_offsets: [2, 3] },
        i8: { dtype: 'I8', shape: [1], data_offsets: [3, 4] },
        i16: { dtype: 'I16', shape: [1], data_offsets: [4, 6] }, // unaligned positions on purpose
        u16: { dtype: 'U16', shape: [1], data_offsets: [6, 8] },
        u16b: { dtype: 'U16', shape: [1], data_offsets: [8, 10] },
        u32: { dtype: 'U32', shape: [1], data_offsets: [10, 14] },
      },
      data,
    );
    const t = parseSafetensors(bytes).tensors;
    const vals = (n: string) => Array.from(get(t, n).data);
    assert.deepEqual(vals('bool'), [1, 0]);
    assert.deepEqual(vals('u8'), [255]);
    assert.deepEqual(vals('i8'), [-1]);
    assert.deepEqual(vals('i16'), [-1]);
    assert.deepEqual(vals('u16'), [65535]);
    assert.deepEqual(vals('u16b'), [0x1234]);
    assert.deepEqual(vals('u32'), [0x12345678]);
  });

  it('reads F32 data at an unaligned offset', () => {
    const bytes = rawFile(
      {
        pad: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
        w: { dtype: 'F32', shape: [2], data_offsets: [1, 9] },
      },
      new Uint8Array([9, ...le('f32', [1.5, -0.25])]),
    );
    // The header length also makes the data section itself start unaligned.
    assert.notEqual((8 + new DataView(bytes.buffer).getUint32(0, true) + 1) % 4, 0);
    assert.deepEqual(get(parseSafetensors(bytes).tensors, 'w').data, new Float32Array([1.5, -0.25]));
  });

  // The format requires the tensors to cover the data section exactly: bytes no tensor owns (a gap, a tail) are
  // where a polyglot file hides content; the reference implementation refuses them too.
  it('refuses gaps between tensors and trailing bytes, naming the bytes', () => {
    const gap = rawFile(
      { w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
      new Uint8Array([0, 0, 0, 0, ...le('f32', [2])]),
    );
    assert.throws(() => parseSafetensors(gap, 'gap.safetensors'), /^InputError: gap\.safetensors: data bytes \[0, 4\) before tensor "w" belong to no tensor/);
    const tail = rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array([...le('f32', [2]), 7, 7]));
    assert.throws(() => parseSafetensors(tail, 'tail.safetensors'), /tail\.safetensors: the tensors cover 4 of the 6 data bytes; the last 2 belong to no tensor/);
    // the same tensor without the extra bytes loads
    const ok = rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, le('f32', [2]));
    assert.deepEqual(get(parseSafetensors(ok).tensors, 'w').data, new Float32Array([2]));
  });
});

describe('parseSafetensors rejects bad files with clear messages', () => {
  const fixture = new Uint8Array(readFileSync(MODEL));
  const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

  it('file shorter than the 8-byte length prefix', () => {
    assert.throws(
      () => parseSafetensors(fixture.slice(0, 5), 'cut.safetensors'),
      /^InputError: cut\.safetensors: expected at least 8 bytes \(the header length\), found 5; the file is truncated/,
    );
  });

  it('file cut inside the header', () => {
    assert.throws(
      () => parseSafetensors(fixture.slice(0, 100), 'cut.safetensors'),
      /cut\.safetensors: header length field says 2136 bytes but only 92 follow it; the file is truncated/,
    );
  });

  it('header length that lies (too large)', () => {
    const bytes = fixture.slice();
    new DataView(bytes.buffer).setUint32(4, 1, true); // + 2^32
    assert.throws(() => parseSafetensors(bytes, 'lie.safetensors'), /lie\.safetensors: header length field says 4294969432 bytes but only 503128 follow it/);
  });

  it('file cut inside the data (offsets out of range)', () => {
    assert.throws(
      () => parseSafetensors(fixture.slice(0, fixture.length - 10), 'cut.safetensors'),
      /tensor "model\.norm\.weight": data_offsets \[500736, 500992\] are outside the data section \(need 0 <= begin <= end <= 500982\)/,
    );
    assert.throws(
      () => parseSafetensors(rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, new Uint8Array(8))),
      /tensor "w": data_offsets \[8, 4\] are outside the data section/,
    );
  });

  it('byte length different from shape × dtype size', () => {
    assert.throws(
      () => parseSafetensors(rawFile({ w: f32(0, 12, [2, 2]) }, new Uint8Array(16)), 'x.safetensors'),
      /x\.safetensors: tensor "w": data_offsets \[0, 12\] span 12 bytes but shape \[2, 2\] of F32 needs 16 bytes/,
    );
  });

  it('overlapping tensors', () => {
    assert.throws(
      () => parseSafetensors(rawFile({ a: f32(0, 8), b: f32(4, 12) }, new Uint8Array(12))),
      /tensors "a" \[0, 8\) and "b" \[4, 12\) overlap/,
    );
  });

  it('unknown dtype, listing the supported ones', () => {
    assert.throws(
      () => parseSafetensors(rawFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1))),
      /tensor "w": unsupported dtype "F8_E4M3"; supported: F64, F32, F16, BF16, I64, .*BOOL/,
    );
  });

  it('invalid JSON header', () => {
    assert.throws(
      () => parseSafetensors(rawFile(null, new Uint8Array(0), '{"w": {"dtype": "F32",'), 'bad.safetensors'),
      /bad\.safetensors: header is not valid UTF-8 JSON \(.*\); the file is truncated or not a safetensors file/,
    );
  });

  it('header that is not an object', () => {
    assert.throws(() => parseSafetensors(rawFile([1, 2])), /<buffer>: expected the header to start with '\{' \(a JSON object\), found byte 0x5b/);
    assert.throws(() => parseSafetensors(rawFile(null, undefined, ' {}')), /expected the header to start with '\{'.*found byte 0x20/);
  });

  it('entries with missing or mistyped fields', () => {
    assert.throws(() => parseSafetensors(rawFile({ w: 3 })), /tensor "w": expected \{dtype, shape, data_offsets\}, found 3/);
    assert.throws(
      () => parseSafetensors(rawFile({ w: { shape: [1], data_offsets: [0, 4] } })),
      /tensor "w": expected "dtype" to be a string, found nothing/,
    );
    assert.throws(
      () => parseSafetensors(rawFile({ w: { dtype: 'F32', data_offsets: [0, 4] } })),
      /tensor "w": expected "shape" to be an array of integers, found nothing/,
    );
    assert.throws(
      () => parseSafetensors(rawFile({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 4] } })),
      /tensor "w": shape \[2,-1\] has an invalid dimension -1; dimensions must be integers >= 0/,
    );
    assert.throws(
      () => parseSafetensors(rawFile({ w: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } })),
      /invalid dimension 1.5/,
    );
    assert.throws(
      () => parseSafetensors(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } })),
      /tensor "w": expected "data_offsets" to be \[begin, end\] integers, found \[0\]/,
    );
  });

  it('metadata that is not a string → string map', () => {
    assert.throws(() => parseSafetensors(rawFile({ __metadata__: { step: 3 } })), /"__metadata__"\."step" must be a string, found 3/);
    assert.throws(() => parseSafetensors(rawFile({ __metadata__: 'x' })), /"__metadata__" must be an object of strings/);
  });
});

describe('file helpers', () => {
  it('readSafetensorsFile reads the fixture and names a missing file', async () => {
    const { tensors } = await readSafetensorsFile(MODEL);
    assert.deepEqual(get(tensors, 'model.embed_tokens.weight').shape, [256, 64]);
    await assert.rejects(readSafetensorsFile('/nonexistent/x.safetensors'), /^FileAccessError: \/nonexistent\/x\.safetensors: no such file or directory/);
  });

  it('writeSafetensorsFile writes atomically (no temp file left) and reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llamatrain-io-'));
    try {
      const path = join(dir, 'w.safetensors');
      const data = new Float32Array([1, 2, 3]);
      await writeSafetensorsFile(path, { w: { dtype: 'float32', shape: [3], data } }, { metadata: { a: 'b' } });
      await writeSafetensorsFile(path, { w: { dtype: 'float32', shape: [3], data } }); // overwrite in place
      assert.deepEqual(await readdir(dir), ['w.safetensors']);
      const back = await readSafetensorsFile(path);
      assert.deepEqual(back.metadata, {});
      assert.deepEqual(get(back.tensors, 'w').data, data);
      await assert.rejects(
        writeSafetensorsFile(join(dir, 'missing', 'w.safetensors'), {}),
        /missing\/w\.safetensors: no such file or directory \(while writing\); check the path and that its directory exists/,
      );
      assert.deepEqual(await readdir(dir), ['w.safetensors']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('readJsonFile / writeJsonFile round-trip and name the file on errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'llamatrain-io-'));
    try {
      const path = join(dir, 'config.json');
      await writeJsonFile(path, { a: [1, null], b: 'x' });
      assert.deepEqual(await readJsonFile(path), { a: [1, null], b: 'x' });
      await writeFile(path, '{"a": 1,');
      await assert.rejects(readJsonFile(path), new RegExp(`^InputError: ${path.replace(/[.\\/]/g, '\\$&')}: not valid JSON \\(`));
      await assert.rejects(readJsonFile(join(dir, 'nope.json')), /nope\.json: no such file or directory \(while reading\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
