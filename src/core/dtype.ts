// Data types and shape helpers. `float64` exists for the `ref` backend's finite-difference gradient checks.
// `bfloat16` and `float16` are storage only: a frozen weight kept in its checkpoint's 2 bytes per element (a
// Uint16Array of bit patterns), converted to float32 next to the GEMM by the few ops that accept one (see
// docs/ARCHITECTURE.md, "Weight storage"); every op computes in float32.

import { InputError } from './errors.js';

export type HalfDType = 'bfloat16' | 'float16';
export type DType = 'float32' | 'float64' | 'int32' | HalfDType;
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint16Array;
export type Shape = readonly number[];

/** A dtype the ops compute in (float32, float64); the half storage dtypes are not (they are converted first). */
export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

/** A 2-byte storage dtype of frozen weights (bfloat16, float16). */
export function isHalf(dtype: DType): dtype is HalfDType {
  return dtype === 'bfloat16' || dtype === 'float16';
}

/** The dtype a tensor's values are computed in: float32 for the half storage dtypes, else its own. */
export function computeDtype(dtype: DType): DType {
  return isHalf(dtype) ? 'float32' : dtype;
}

/** Bytes per element as stored. */
export function bytesOf(dtype: DType): number {
  return dtype === 'float64' ? 8 : isHalf(dtype) ? 2 : 4;
}

export function arrayFor(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(size);
    case 'float64': return new Float64Array(size);
    case 'int32': return new Int32Array(size);
    case 'bfloat16': case 'float16': return new Uint16Array(size); // bit patterns
  }
}

/** The dtype of a float32/float64/int32 array (a Uint16Array is ambiguous, bfloat16 or float16: name the dtype). */
export function dtypeOf(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Uint16Array) {
    throw new InputError('a Uint16Array has no dtype of its own: make half weights from bit patterns with halfTensor(bits, shape, ' +
      "'bfloat16' | 'float16'), or name a dtype (float32, int32) to convert its numbers", { source: 'dtypeOf' });
  }
  return 'int32';
}

/**
 * The most elements one tensor may hold: what a JS typed array can (2^32 in V8, so Node and Chromium; the wasm
 * backend's whole memory is 4 GiB anyway).
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 32;

/**
 * Throws an InputError unless `shape` is an array of integers ≥ 0 whose product fits one tensor
 * (`MAX_TENSOR_ELEMENTS`). `where` names the caller in the message (e.g. 'tensor()').
 */
export function checkShape(shape: unknown, where: string): asserts shape is Shape {
  if (!Array.isArray(shape)) throw new InputError(`${where}: shape must be an array of integers >= 0, found ${describeValue(shape)}`, { source: where });
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i] as unknown;
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new InputError(`${where}: shape [${shape.map(describeValue).join(', ')}] has an invalid dimension ${describeValue(d)} at index ${i}; ` +
        'dimensions must be integers >= 0', { source: where });
    }
    n *= d;
  }
  if (n > MAX_TENSOR_ELEMENTS) {
    throw new InputError(`${where}: shape [${shape.join(', ')}] holds ${n} elements, more than one tensor can (${MAX_TENSOR_ELEMENTS}, ` +
      'the JS typed-array limit); use smaller dimensions', { source: where });
  }
}

function describeValue(v: unknown): string {
  if (typeof v === 'number') return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= shape[i]!; }
  return s;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Normalises a possibly negative axis; throws a clear error when out of range. */
export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new RangeError(`${what} ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`shapes ${shapeStr(a)} and ${shapeStr(b)} cannot be broadcast together (dimension ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of `shape` viewed inside the broadcast `outShape` (0 along broadcast dimensions). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const st = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => {
    const j = i - off;
    return j < 0 || shape[j] === 1 ? 0 : st[j]!;
  });
}
