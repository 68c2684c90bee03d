// safetensors reader/writer (https://github.com/huggingface/safetensors), format:
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data bytes]
// The header maps tensor names to { dtype, shape, data_offsets: [begin, end] } where offsets are relative to the
// start of the data bytes; an optional "__metadata__" entry is a string -> string map.
//
// Pure TypeScript with no Node imports, so it runs in browsers and Web Workers too (file helpers live in files.ts).
// Tensors are decoded into the three dtypes the rest of the library computes with: float32, float64 and int32.
//
// The reader treats a file as hostile and checks what the format's reference implementation checks: the header
// length against the file, a header that is one JSON object (starting with '{'; trailing spaces allowed) with no
// key twice (JSON.parse would silently keep the last of two same-named tensors), known dtypes, integer shapes, each
// tensor's byte range against its dtype × shape, and ranges that tile the data section exactly — sorted by offset,
// no overlap, no gap, ending at the end of the file. Every failure is an InputError naming the file and tensor.
import { InputError } from '../core/errors.js';

export type DType = 'float32' | 'float64' | 'int32';
export type TypedArrayOf = Float32Array | Float64Array | Int32Array;

export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: TypedArrayOf;
}

/** What serializeSafetensors accepts per tensor (a RawTensor, or anything shaped like one). */
export interface TensorLike {
  dtype: DType;
  shape: readonly number[];
  data: TypedArrayOf;
}

export interface SerializeOptions {
  /** Storage type for floating-point tensors. Default: float32 → F32, float64 → F64. int32 is always I32. */
  dtype?: 'F32' | 'BF16';
  /** Free-form string → string metadata, stored under "__metadata__". */
  metadata?: Record<string, string>;
}

export interface ParsedSafetensors {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

// Size in bytes of one element of each on-disk dtype we can read, and what it decodes to.
const FILE_DTYPES: Record<string, { size: number; to: DType }> = {
  F64: { size: 8, to: 'float64' },
  F32: { size: 4, to: 'float32' },
  F16: { size: 2, to: 'float32' },
  BF16: { size: 2, to: 'float32' },
  I64: { size: 8, to: 'int32' },
  U64: { size: 8, to: 'int32' },
  I32: { size: 4, to: 'int32' },
  U32: { size: 4, to: 'int32' },
  I16: { size: 2, to: 'int32' },
  U16: { size: 2, to: 'int32' },
  I8: { size: 1, to: 'int32' },
  U8: { size: 1, to: 'int32' },
  BOOL: { size: 1, to: 'int32' },
};
const SUPPORTED = Object.keys(FILE_DTYPES).join(', ');

// The JSON header must fit in memory as a string; the reference implementation caps it at 100 MB too.
const MAX_HEADER_BYTES = 100_000_000;

// Typed-array views use the host byte order; safetensors is little-endian. Every current JS engine/CPU is
// little-endian, but a DataView fallback keeps big-endian hosts correct rather than silently wrong.
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------------
// Half-precision helpers
// ---------------------------------------------------------------------------------------------------------------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE 754 binary16 bit pattern (0..0xffff) → number. Handles ±0, subnormals, ±Inf and NaN. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal: mant × 2^-14 × 2^-10
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exp - 15) * (1 + mant / 1024);
}

/** bfloat16 bit pattern (0..0xffff) → number. bf16 is the top half of a float32, so this is exact. */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

/**
 * number → bfloat16 bit pattern, rounding to nearest with ties to even (what PyTorch does). The input is first
 * rounded to float32 (as torch does for float64 → bfloat16). NaN becomes the canonical quiet NaN 0x7fc0 with the
 * input's sign; values past the bf16 range round to ±Inf.
 */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const bits = scratchU32[0]!;
  if (Number.isNaN(value)) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  // Add 0x7fff plus the lowest kept bit: rounds up above the halfway point, and at exactly halfway only when that
  // makes the result even. A carry into the exponent is correct (it is how rounding reaches the next binade/Inf).
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0;
  return rounded >>> 16;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------------

function fail(source: string, msg: string): never {
  throw new InputError(`${source}: ${msg}`, { source });
}

/**
 * The first key that appears twice in one object of a JSON text (which must already be valid JSON), with the
 * path of that object, or null. JSON.parse keeps the last of duplicate keys without a word; a safetensors header
 * with two entries of one name must be refused instead.
 */
export function findDuplicateJsonKey(text: string): { key: string; path: string } | null {
  // A stack of open containers: objects carry their keys and whether the next string is a key.
  const stack: { keys: Set<string> | null; expectKey: boolean; name: string }[] = [];
  let lastKey = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, path: stack.map((f) => f.name).filter(Boolean).join('.') };
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ keys: c === 0x7b ? new Set() : null, expectKey: c === 0x7b, name: stack.length === 0 ? '' : lastKey });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Parse the bytes of a .safetensors file. `source` names the file in error messages.
 * Returned tensors own fresh buffers (copies), so they never alias `bytes` and are always aligned.
 */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): ParsedSafetensors {
  const hint = 'the file is truncated or not a safetensors file; re-download or re-export it';
  if (bytes.byteLength < 8) {
    fail(source, `expected at least 8 bytes (the header length), found ${bytes.byteLength}; ${hint}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const headerLen = hi * 2 ** 32 + lo; // exact up to 2^53; anything that large is rejected just below anyway
  if (headerLen > bytes.byteLength - 8) {
    fail(source, `header length field says ${headerLen} bytes but only ${bytes.byteLength - 8} follow it; ${hint}`);
  }
  if (headerLen > MAX_HEADER_BYTES) {
    fail(source, `header is ${headerLen} bytes, more than the ${MAX_HEADER_BYTES}-byte limit; ${hint}`);
  }

  if (headerLen === 0 || bytes[8] !== 0x7b /* { */) {
    fail(source, `expected the header to start with '{' (a JSON object), found ${headerLen === 0 ? 'an empty header' : `byte 0x${bytes[8]!.toString(16).padStart(2, '0')}`}; ${hint}`);
  }
  let header: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
    header = JSON.parse(text);
  } catch (e) {
    fail(source, `header is not valid UTF-8 JSON (${(e as Error).message}); ${hint}`);
  }
  if (!isObject(header)) {
    fail(source, `expected the header to be a JSON object, found ${describe(header)}; ${hint}`);
  }
  const dup = findDuplicateJsonKey(text);
  if (dup) {
    fail(source, dup.path === ''
      ? `the header names tensor "${dup.key}" twice; each tensor name must appear once (a reader would silently keep one of them) — re-export the file`
      : `the header's entry "${dup.path}" has the key "${dup.key}" twice; the file is corrupt — re-export it`);
  }

  const dataStart = 8 + headerLen;
  const dataSize = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; begin: number; end: number; fileDtype: string; shape: number[] }[] = [];

  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(info)) fail(source, `"__metadata__" must be an object of strings, found ${describe(info)}`);
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== 'string') {
          fail(source, `"__metadata__"."${k}" must be a string, found ${describe(v)} (safetensors metadata is string → string)`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isObject(info)) fail(source, `${where}: expected {dtype, shape, data_offsets}, found ${describe(info)}`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string') fail(source, `${where}: expected "dtype" to be a string, found ${describe(dtype)}`);
    const spec = FILE_DTYPES[dtype];
    if (!spec) {
      fail(source, `${where}: unsupported dtype "${dtype}"; supported: ${SUPPORTED}. Convert the tensor (e.g. to F32) before loading`);
    }
    if (!Array.isArray(shape)) fail(source, `${where}: expected "shape" to be an array of integers, found ${describe(shape)}`);
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(source, `${where}: shape ${describe(shape)} has an invalid dimension ${describe(d)}; dimensions must be integers >= 0`);
      }
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o))
    ) {
      fail(source, `${where}: expected "data_offsets" to be [begin, end] integers, found ${describe(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (!(begin >= 0 && begin <= end && end <= dataSize)) {
      fail(
        source,
        `${where}: data_offsets [${begin}, ${end}] are outside the data section (need 0 <= begin <= end <= ${dataSize}); ${hint}`,
      );
    }
    const need = product(shape as number[]) * spec.size;
    if (end - begin !== need) {
      fail(
        source,
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${(shape as number[]).join(', ')}] ` +
          `of ${dtype} needs ${need} bytes (elements × ${spec.size}); the header is inconsistent, re-export the file`,
      );
    }
    entries.push({ name, begin, end, fileDtype: dtype, shape: (shape as number[]).slice() });
  }

  // As the format requires: the tensors' byte ranges tile the data section, in offset order, with no overlap and
  // no gap (so no bytes hide between or after them), ending at the end of the file.
  const byOffset = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prevEntry: (typeof entries)[number] | null = null;
  for (const cur of byOffset) {
    if (cur.begin < covered && prevEntry) {
      fail(
        source,
        `tensors "${prevEntry.name}" [${prevEntry.begin}, ${prevEntry.end}) and "${cur.name}" [${cur.begin}, ${cur.end}) overlap; ` +
          `each tensor needs its own bytes, the file is corrupt — re-export it`,
      );
    }
    if (cur.begin > covered) {
      fail(source, `data bytes [${covered}, ${cur.begin}) before tensor "${cur.name}" belong to no tensor; the data section must be ` +
        `covered by the tensors without gaps — the file is corrupt or was not written by a safetensors writer; re-export it`);
    }
    covered = Math.max(covered, cur.end);
    if (cur.end > cur.begin) prevEntry = cur;
  }
  if (covered !== dataSize) {
    fail(source, `the tensors cover ${covered} of the ${dataSize} data bytes; the last ${dataSize - covered} belong to no tensor ` +
      `(a truncated header, or bytes appended to the file); re-export it`);
  }

  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    const raw = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, {
      dtype: FILE_DTYPES[e.fileDtype]!.to,
      shape: e.shape,
      data: decode(raw, e.fileDtype, `${source}: tensor "${e.name}"`),
    });
  }
  return { tensors, metadata };
}

/** Decode little-endian elements of one on-disk dtype into a fresh typed array. */
function decode(raw: Uint8Array, fileDtype: string, where: string): TypedArrayOf {
  // Copy into a new, 0-aligned ArrayBuffer: handles unaligned offsets and never aliases the file's bytes.
  // (Not raw.slice(): on a Node Buffer, slice() returns a view, not a copy.)
  const copy = (): ArrayBuffer => {
    const c = new Uint8Array(raw.byteLength);
    c.set(raw);
    return c.buffer;
  };
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  switch (fileDtype) {
    case 'F32': {
      if (HOST_LE) return new Float32Array(copy());
      const out = new Float32Array(raw.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(4 * i, true);
      return out;
    }
    case 'F64': {
      if (HOST_LE) return new Float64Array(copy());
      const out = new Float64Array(raw.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = dv.getFloat64(8 * i, true);
      return out;
    }
    case 'I32': {
      if (HOST_LE) return new Int32Array(copy());
      const out = new Int32Array(raw.byteLength / 4);
      for (let i = 0; i < out.length; i++) out[i] = dv.getInt32(4 * i, true);
      return out;
    }
    case 'BF16': {
      const out = new Float32Array(raw.byteLength / 2);
      const bits = new Uint32Array(out.buffer); // write float32 bit patterns directly: bf16 << 16 is exact
      for (let i = 0; i < out.length; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F16': {
      const out = new Float32Array(raw.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = f16ToF32(dv.getUint16(2 * i, true));
      return out;
    }
    case 'I64':
    case 'U64': {
      const out = new Int32Array(raw.byteLength / 8);
      const signed = fileDtype === 'I64';
      for (let i = 0; i < out.length; i++) {
        const lo = dv.getInt32(8 * i, true);
        const hi = dv.getInt32(8 * i + 4, true);
        // The value fits in int32 iff the high word is the sign extension of the low word (and, unsigned, >= 0).
        if (hi !== lo >> 31 || (!signed && lo < 0)) {
          const v = signed ? dv.getBigInt64(8 * i, true) : dv.getBigUint64(8 * i, true);
          throw new InputError(
            `${where}: element ${i} of this ${fileDtype} tensor is ${v}, outside the int32 range ` +
              `[-2147483648, 2147483647] that token ids and labels are stored in; this library cannot load it`,
          );
        }
        out[i] = lo;
      }
      return out;
    }
    case 'U32': {
      const out = new Int32Array(raw.byteLength / 4);
      for (let i = 0; i < out.length; i++) {
        const v = dv.getUint32(4 * i, true);
        if (v > 0x7fffffff) {
          throw new InputError(`${where}: element ${i} of this U32 tensor is ${v}, above the int32 maximum 2147483647; this library cannot load it`);
        }
        out[i] = v;
      }
      return out;
    }
    case 'I16':
    case 'U16': {
      const out = new Int32Array(raw.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = fileDtype === 'I16' ? dv.getInt16(2 * i, true) : dv.getUint16(2 * i, true);
      return out;
    }
    case 'I8':
      return Int32Array.from(new Int8Array(raw.buffer, raw.byteOffset, raw.byteLength));
    case 'U8':
    case 'BOOL':
      return Int32Array.from(raw);
    default:
      throw new InputError(`${where}: unsupported dtype "${fileDtype}"; supported: ${SUPPORTED}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Serialization
// ---------------------------------------------------------------------------------------------------------------

const ARRAY_OF: Record<DType, Function> = { float32: Float32Array, float64: Float64Array, int32: Int32Array };

/**
 * Serialize tensors to safetensors bytes. Tensors are stored contiguously in sorted-name order and the header is
 * padded with spaces to a multiple of 8 bytes (so the data section starts 8-byte aligned); the same input always
 * gives the same bytes.
 */
export function serializeSafetensors(
  tensors: Iterable<readonly [string, TensorLike]> | Record<string, TensorLike>,
  opts: SerializeOptions = {},
): Uint8Array {
  const list: [string, TensorLike][] =
    Symbol.iterator in tensors
      ? Array.from(tensors as Iterable<readonly [string, TensorLike]>, ([n, t]) => [n, t])
      : Object.entries(tensors as Record<string, TensorLike>);
  if (opts.dtype !== undefined && opts.dtype !== 'F32' && opts.dtype !== 'BF16') {
    throw new InputError(`serializeSafetensors: opts.dtype must be 'F32' or 'BF16', found ${describe(opts.dtype)}`);
  }

  const seen = new Set<string>();
  for (const [name, t] of list) {
    const where = `serializeSafetensors: tensor "${name}"`;
    if (name === '__metadata__') throw new InputError(`${where}: this name is reserved for metadata; rename the tensor`);
    if (seen.has(name)) throw new InputError(`${where}: appears twice; tensor names must be unique`);
    seen.add(name);
    const ctor = ARRAY_OF[t.dtype];
    if (!ctor) throw new InputError(`${where}: dtype ${describe(t.dtype)} is not one of float32, float64, int32`);
    if (!(t.data instanceof ctor)) {
      throw new InputError(`${where}: dtype is ${t.dtype} but data is a ${t.data?.constructor?.name}; pass a ${ctor.name}`);
    }
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InputError(`${where}: shape ${describe(t.shape)} must contain integers >= 0`);
    }
    if (product(t.shape) !== t.data.length) {
      throw new InputError(`${where}: shape [${t.shape.join(', ')}] has ${product(t.shape)} elements but data has ${t.data.length}`);
    }
  }
  list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  const fileDtypeOf = (t: TensorLike): 'F64' | 'F32' | 'BF16' | 'I32' =>
    t.dtype === 'int32' ? 'I32' : opts.dtype ?? (t.dtype === 'float64' ? 'F64' : 'F32');

  // Header JSON is assembled by hand so key order is exactly metadata-then-sorted-names (a JS object would move
  // integer-like names such as "0" to the front).
  const parts: string[] = [];
  if (opts.metadata !== undefined) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string') throw new InputError(`serializeSafetensors: metadata "${k}" must be a string, found ${describe(v)}`);
    }
    const meta = Object.keys(opts.metadata)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${JSON.stringify(opts.metadata![k])}`);
    parts.push(`"__metadata__":{${meta.join(',')}}`);
  }
  let offset = 0;
  const layout: { t: TensorLike; fileDtype: string; begin: number }[] = [];
  for (const [name, t] of list) {
    const fileDtype = fileDtypeOf(t);
    const nbytes = t.data.length * FILE_DTYPES[fileDtype]!.size;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${fileDtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + nbytes}]}`,
    );
    layout.push({ t, fileDtype, begin: offset });
    offset += nbytes;
  }
  const headerBytes = new TextEncoder().encode(`{${parts.join(',')}}`);
  const headerLen = Math.ceil(headerBytes.length / 8) * 8;

  const out = new Uint8Array(8 + headerLen + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLen % 2 ** 32, true);
  dv.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(headerBytes, 8);
  out.fill(0x20, 8 + headerBytes.length, 8 + headerLen); // pad with spaces: still valid JSON

  const base = 8 + headerLen;
  for (const { t, fileDtype, begin } of layout) {
    const p = base + begin;
    const src = t.data;
    // Fast path: an aligned typed-array view, whose set() converts element types (float64 → float32 rounds to
    // nearest even, like a cast). BF16 and unaligned positions (after an odd-length BF16 tensor) go element-wise.
    if (HOST_LE && fileDtype !== 'BF16') {
      const size = FILE_DTYPES[fileDtype]!.size;
      if (p % size === 0) {
        const Ctor = fileDtype === 'F32' ? Float32Array : fileDtype === 'F64' ? Float64Array : Int32Array;
        new Ctor(out.buffer, p, src.length).set(src);
        continue;
      }
    }
    switch (fileDtype) {
      case 'F32':
        for (let i = 0; i < src.length; i++) dv.setFloat32(p + 4 * i, src[i]!, true);
        break;
      case 'F64':
        for (let i = 0; i < src.length; i++) dv.setFloat64(p + 8 * i, src[i]!, true);
        break;
      case 'I32':
        for (let i = 0; i < src.length; i++) dv.setInt32(p + 4 * i, src[i]!, true);
        break;
      case 'BF16':
        for (let i = 0; i < src.length; i++) dv.setUint16(p + 2 * i, f32ToBf16(src[i]!), true);
        break;
    }
  }
  return out;
}
