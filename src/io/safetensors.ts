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
/** The 2-byte float storage types a reader can keep as they are (`keepHalf`): raw bit patterns in a Uint16Array. */
export type HalfDType = 'bfloat16' | 'float16';
/** Every dtype a tensor read from a file can have: the decoded ones, plus the half types kept raw. */
export type RawDType = DType | HalfDType;

/** A tensor decoded into one of the types the library computes with. */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: TypedArrayOf;
}

/** A BF16/F16 tensor kept as stored (read with `keepHalf: true`): `data` holds the raw bit patterns. */
export interface HalfRawTensor {
  dtype: HalfDType;
  shape: number[];
  data: Uint16Array;
}

/** What a reader returns with `keepHalf: true`: half tensors raw, every other tensor decoded. */
export type StoredTensor = RawTensor | HalfRawTensor;

/** What serializeSafetensors accepts per tensor (a RawTensor, or anything shaped like one). */
export interface TensorLike {
  dtype: DType;
  shape: readonly number[];
  data: TypedArrayOf;
}

export interface SerializeOptions {
  /** Storage type for floating-point tensors. Default: float32 → F32, float64 → F64. int32 is always I32. */
  dtype?: 'F32' | 'BF16' | 'F16';
  /** Free-form string → string metadata, stored under "__metadata__". */
  metadata?: Record<string, string>;
}

export interface ParsedSafetensors<T extends StoredTensor = RawTensor> {
  tensors: Map<string, T>;
  metadata: Record<string, string>;
}

export interface ParseOptions {
  /** Keep BF16 and F16 tensors as stored (dtype 'bfloat16'/'float16', a Uint16Array of bit patterns) instead of
   *  converting them to float32. */
  keepHalf?: boolean;
}

/** One tensor's entry in a validated header; `begin`/`end` are relative to the data section (see dataStart). */
export interface SafetensorsEntry {
  name: string;
  /** The dtype as the file names it (F32, BF16, I64, ...). */
  fileDtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** A validated header: the tensors in header order, the metadata, and where the data section starts in the file. */
export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataStart: number;
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

/**
 * number → IEEE binary16 bit pattern as PyTorch's `.to(torch.float16)` gives it: the input is first rounded to
 * float32, then rounded to nearest with ties to even; magnitudes from 65520 up become ±Inf, tiny ones become
 * subnormals or ±0 (sign kept); NaN becomes the quiet NaN 0x7e00 with the input's sign.
 */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 127; // unbiased exponent of the float32 value
  if (e > 15) return sign | 0x7c00; // >= 2^16: past the largest half (65504) by more than half an ulp
  if (e >= -14) {
    // Normal half: keep the top 10 of the 23 mantissa bits, round on the 13 dropped. A carry out of the mantissa
    // moves to the next exponent, and from exponent 30 to 0x7c00 (Inf): both are what rounding must give.
    let h = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return sign | h;
  }
  if (e < -25) return sign; // below 2^-25, half of the smallest subnormal 2^-24: rounds to zero
  // Subnormal half: the value in units of 2^-24 is the 24-bit significand shifted right by -(e + 1) (14..24 bits).
  const full = mant | 0x800000;
  const shift = -(e + 1);
  let m = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (m & 1) === 1)) m++; // may reach 0x400, the smallest normal: correct
  return sign | m;
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

const TRUNCATED_HINT = 'the file is truncated or not a safetensors file; re-download or re-export it';

/**
 * The header length of a safetensors file of `fileSize` bytes whose first bytes are `prefix` (at least 8 of them
 * when the file has 8), checked against the file size and the 100 MB limit. The header is bytes [8, 8 + length).
 */
export function safetensorsHeaderLength(prefix: Uint8Array, fileSize: number, source = '<buffer>'): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    fail(source, `expected at least 8 bytes (the header length), found ${fileSize}; ${TRUNCATED_HINT}`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const headerLen = hi * 2 ** 32 + lo; // exact up to 2^53; anything that large is rejected just below anyway
  if (headerLen > fileSize - 8) {
    fail(source, `header length field says ${headerLen} bytes but only ${fileSize - 8} follow it; ${TRUNCATED_HINT}`);
  }
  if (headerLen > MAX_HEADER_BYTES) {
    fail(source, `header is ${headerLen} bytes, more than the ${MAX_HEADER_BYTES}-byte limit; ${TRUNCATED_HINT}`);
  }
  return headerLen;
}

/**
 * Parse the bytes of a .safetensors file. `source` names the file in error messages.
 * Returned tensors own fresh buffers (copies), so they never alias `bytes` and are always aligned.
 * With `keepHalf`, BF16/F16 tensors stay raw (HalfRawTensor) instead of becoming float32.
 */
export function parseSafetensors(bytes: Uint8Array, source?: string, opts?: ParseOptions & { keepHalf?: false }): ParsedSafetensors;
export function parseSafetensors(bytes: Uint8Array, source: string | undefined, opts: ParseOptions): ParsedSafetensors<StoredTensor>;
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>', opts: ParseOptions = {}): ParsedSafetensors<StoredTensor> {
  const headerLen = safetensorsHeaderLength(bytes, bytes.byteLength, source);
  const { entries, metadata, dataStart } = parseSafetensorsHeader(bytes.subarray(8, 8 + headerLen), bytes.byteLength, source);
  const tensors = new Map<string, StoredTensor>();
  for (const e of entries) {
    const raw = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    const data = decodeInto(allocateFor(e, opts), raw, e.fileDtype, 0, `${source}: tensor "${e.name}"`, opts);
    tensors.set(e.name, { dtype: storedDtype(e.fileDtype, opts), shape: e.shape, data } as StoredTensor);
  }
  return { tensors, metadata };
}

/** The dtype a tensor stored as `fileDtype` is returned in. */
export function storedDtype(fileDtype: string, opts: ParseOptions = {}): RawDType {
  if (opts.keepHalf && fileDtype === 'BF16') return 'bfloat16';
  if (opts.keepHalf && fileDtype === 'F16') return 'float16';
  return FILE_DTYPES[fileDtype]!.to;
}

/** Bytes per element of an on-disk dtype the reader supports. */
export function fileDtypeSize(fileDtype: string): number {
  return FILE_DTYPES[fileDtype]!.size;
}

/** A zeroed array for one entry's elements, of the type it is returned in. */
export function allocateFor(e: SafetensorsEntry, opts: ParseOptions = {}): TypedArrayOf | Uint16Array {
  const n = product(e.shape);
  switch (storedDtype(e.fileDtype, opts)) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int32': return new Int32Array(n);
    default: return new Uint16Array(n);
  }
}

/**
 * Validate a safetensors header (the `headerLen` bytes after the 8-byte length) of a file of `fileSize` bytes:
 * everything listed at the top of this file. Nothing of the data section is needed, so a reader can check a
 * file of any size from its first bytes.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, source = '<buffer>'): SafetensorsHeader {
  const hint = TRUNCATED_HINT;
  const headerLen = headerBytes.byteLength;
  if (headerLen === 0 || headerBytes[0] !== 0x7b /* { */) {
    fail(source, `expected the header to start with '{' (a JSON object), found ${headerLen === 0 ? 'an empty header' : `byte 0x${headerBytes[0]!.toString(16).padStart(2, '0')}`}; ${hint}`);
  }
  let header: unknown;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
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
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];

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

  return { entries, metadata, dataStart };
}

/**
 * Decode little-endian elements of one on-disk dtype from `raw` into `out` starting at element `at` (so a large
 * tensor can be decoded a chunk at a time); returns `out`. `out` must be of the type allocateFor gives.
 */
export function decodeInto<T extends TypedArrayOf | Uint16Array>(
  out: T, raw: Uint8Array, fileDtype: string, at: number, where: string, opts: ParseOptions = {},
): T {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const o = out as unknown as { [i: number]: number };
  switch (fileDtype) {
    case 'F32':
    case 'F64':
    case 'I32': {
      const size = fileDtype === 'F64' ? 8 : 4;
      const n = raw.byteLength / size;
      // Little-endian host: a byte copy into the output's own buffer (handles unaligned input, never aliases it).
      if (HOST_LE) {
        new Uint8Array(out.buffer, out.byteOffset + at * size, raw.byteLength).set(raw);
        return out;
      }
      for (let i = 0; i < n; i++) {
        o[at + i] = fileDtype === 'F32' ? dv.getFloat32(4 * i, true) : fileDtype === 'F64' ? dv.getFloat64(8 * i, true) : dv.getInt32(4 * i, true);
      }
      return out;
    }
    case 'BF16':
    case 'F16': {
      const n = raw.byteLength / 2;
      if (opts.keepHalf) {
        if (HOST_LE) new Uint8Array(out.buffer, out.byteOffset + at * 2, raw.byteLength).set(raw);
        else for (let i = 0; i < n; i++) o[at + i] = dv.getUint16(2 * i, true);
        return out;
      }
      if (fileDtype === 'BF16') {
        // write float32 bit patterns directly: bf16 << 16 is exact
        const bits = new Uint32Array(out.buffer, out.byteOffset + at * 4, n);
        if (HOST_LE && raw.byteOffset % 2 === 0) {
          const src = new Uint16Array(raw.buffer, raw.byteOffset, n); // several times faster than DataView reads
          for (let i = 0; i < n; i++) bits[i] = src[i]! << 16;
        } else {
          for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
        }
      } else {
        for (let i = 0; i < n; i++) o[at + i] = f16ToF32(dv.getUint16(2 * i, true));
      }
      return out;
    }
    case 'I64':
    case 'U64': {
      const n = raw.byteLength / 8;
      const signed = fileDtype === 'I64';
      for (let i = 0; i < n; i++) {
        const lo = dv.getInt32(8 * i, true);
        const hi = dv.getInt32(8 * i + 4, true);
        // The value fits in int32 iff the high word is the sign extension of the low word (and, unsigned, >= 0).
        if (hi !== lo >> 31 || (!signed && lo < 0)) {
          const v = signed ? dv.getBigInt64(8 * i, true) : dv.getBigUint64(8 * i, true);
          throw new InputError(
            `${where}: element ${at + i} of this ${fileDtype} tensor is ${v}, outside the int32 range ` +
              `[-2147483648, 2147483647] that token ids and labels are stored in; this library cannot load it`,
          );
        }
        o[at + i] = lo;
      }
      return out;
    }
    case 'U32': {
      const n = raw.byteLength / 4;
      for (let i = 0; i < n; i++) {
        const v = dv.getUint32(4 * i, true);
        if (v > 0x7fffffff) {
          throw new InputError(`${where}: element ${at + i} of this U32 tensor is ${v}, above the int32 maximum 2147483647; this library cannot load it`);
        }
        o[at + i] = v;
      }
      return out;
    }
    case 'I16':
    case 'U16': {
      const n = raw.byteLength / 2;
      for (let i = 0; i < n; i++) o[at + i] = fileDtype === 'I16' ? dv.getInt16(2 * i, true) : dv.getUint16(2 * i, true);
      return out;
    }
    case 'I8':
      for (let i = 0; i < raw.byteLength; i++) o[at + i] = dv.getInt8(i);
      return out;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < raw.byteLength; i++) o[at + i] = raw[i]!;
      return out;
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
  if (opts.dtype !== undefined && opts.dtype !== 'F32' && opts.dtype !== 'BF16' && opts.dtype !== 'F16') {
    throw new InputError(`serializeSafetensors: opts.dtype must be 'F32', 'BF16' or 'F16', found ${describe(opts.dtype)}`);
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

  const fileDtypeOf = (t: TensorLike): 'F64' | 'F32' | 'BF16' | 'F16' | 'I32' =>
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
    // nearest even, like a cast). BF16/F16 and unaligned positions (after an odd-length half tensor) go element-wise.
    if (HOST_LE && fileDtype !== 'BF16' && fileDtype !== 'F16') {
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
      case 'F16':
        for (let i = 0; i < src.length; i++) dv.setUint16(p + 2 * i, f32ToF16(src[i]!), true);
        break;
    }
  }
  return out;
}
