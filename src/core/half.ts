// The 2-byte storage dtypes of frozen weights (bfloat16, float16): bit-pattern conversions on the host, and the
// helpers that make and replace half tensors. Compute is always float32: a kernel given a half operand converts
// it next to its use (ref: these functions; wasm: assembly/half.ts; webgpu: at upload). See docs/ARCHITECTURE.md,
// "Weight storage".

import { type Backend, getBackend } from './backend.js';
import { type HalfDType, type Shape, checkShape, isHalf, shapeStr, sizeOf } from './dtype.js';
import { InputError } from './errors.js';
import { markReleased } from './scope.js';
import { Tensor } from './tensor.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits → number (exact: bf16 is the top half of a float32). */
export function bf16BitsToNumber(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** IEEE binary16 bits → number (exact): ±0, subnormals (mant·2⁻²⁴), ±Inf, NaN. */
export function f16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f, mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exp - 15) * (1 + mant / 1024);
}

/** number → bfloat16 bits, via float32, rounding to nearest even (torch's); NaN → quiet NaN with its sign. */
export function numberToBf16Bits(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  if (Number.isNaN(value)) return ((bits >>> 16) & 0x8000) | 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0) >>> 16;
}

/** number → IEEE binary16 bits, via float32, rounding to nearest even; overflow → ±Inf, NaN → quiet NaN. */
export function numberToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff, mant = x & 0x7fffff;
  if (exp === 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  const e = exp - 127 + 15; // the binary16 exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal (or zero): the 24-bit significand shifted right by 14 − e, rounded to nearest even
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000, shift = 14 - e;
    const half = 1 << (shift - 1), rest = m & ((1 << shift) - 1);
    let r = m >>> shift;
    if (rest > half || (rest === half && (r & 1))) r++;
    return sign | r; // a carry into bit 10 is the smallest normal: correct
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) r++; // a carry may reach the exponent (or Inf): correct
  return sign | r;
}

let f16Table: Float32Array | null = null;

/** Half bits → float32 values (into `out` when given). float16 goes through a 64K-entry table (exact). */
export function halfToFloat32(bits: Uint16Array, dtype: HalfDType, out = new Float32Array(bits.length)): Float32Array {
  if (dtype === 'bfloat16') {
    const o = new Uint32Array(out.buffer, out.byteOffset, bits.length);
    for (let i = 0; i < bits.length; i++) o[i] = bits[i]! << 16;
  } else {
    if (!f16Table) {
      f16Table = new Float32Array(65536);
      for (let b = 0; b < 65536; b++) f16Table[b] = f16BitsToNumber(b);
    }
    const t = f16Table;
    for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]!]!;
  }
  return out;
}

/** Values → half bits, rounding to nearest even. */
export function float32ToHalf(values: ArrayLike<number>, dtype: HalfDType): Uint16Array {
  const out = new Uint16Array(values.length);
  const f = dtype === 'bfloat16' ? numberToBf16Bits : numberToF16Bits;
  for (let i = 0; i < values.length; i++) out[i] = f(values[i]!);
  return out;
}

/**
 * A frozen half tensor from bit patterns (`requiresGrad` false; half tensors can never require grad). Only
 * `matmul` (as B), `embedding` (the table) and `linearCrossEntropy` (the head) accept one.
 */
export function halfTensor(bits: Uint16Array, shape: Shape, dtype: HalfDType, backend?: Backend): Tensor {
  const be = backend ?? getBackend();
  checkShape(shape, 'halfTensor()');
  if (!isHalf(dtype)) throw new InputError(`halfTensor(): dtype must be 'bfloat16' or 'float16', found ${JSON.stringify(dtype)}`, { source: 'halfTensor()' });
  if (!(bits instanceof Uint16Array) || bits.length !== sizeOf(shape)) {
    throw new InputError(`halfTensor(): expected a Uint16Array of ${sizeOf(shape)} bit patterns for shape ${shapeStr(shape)}, ` +
      `found ${bits instanceof Uint16Array ? `${bits.length} values` : (bits as object)?.constructor?.name}`, { source: 'halfTensor()' });
  }
  return new Tensor(be.upload(bits.slice(), dtype), shape, dtype, be, false);
}

/**
 * Gives tensor `t` a new storage and dtype in place (the tensor object, and so every module and optimizer holding it,
 * stays the same), freeing the old storage now. Loading weights into a model (Module.loadStateDict) and merging LoRA
 * into a half base use it: a model being loaded never holds its initial weights and the loaded ones at once.
 */
export function replaceStorage(t: Tensor, storage: object, dtype: Tensor['dtype']): void {
  const old = t.storage;
  (t as { dtype: Tensor['dtype'] }).dtype = dtype;
  t.storage = storage;
  if (old !== storage) {
    t.backend.memory?.release(old);
    markReleased([old]); // a stale view of the old storage (detach, reshape) is a clear error, never freed memory read
  }
}
