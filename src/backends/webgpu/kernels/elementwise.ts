// Elementwise and data-movement kernels: fill, cast, binary (broadcast), unary, SiLU/SwiGLU, clamp, in-place
// add/scale, expand/permute/slice/pad (one strided copy), max along an axis and its backward.

import type { BinaryOp, KernelTable, UnaryOp } from '../../../core/backend.js';
import { type DType, type Shape, broadcastStrides, sizeOf, stridesOf } from '../../../core/dtype.js';
import type { GpuRuntime, GpuTensor } from '../device.js';
import { OFFS, T, main1d, mergeDims, ro, run1d, rw, stridedInts, wgslType } from './common.js';

const BIN: Record<BinaryOp, string> = { add: 'x + y', sub: 'x - y', mul: 'x * y', div: 'x / y' };

const UNARY: Record<UnaryOp, { f32: string; i32?: string }> = {
  neg: { f32: '-x', i32: '-x' },
  exp: { f32: 'exp(x)' },
  log: { f32: 'log(x)' },
  sqrt: { f32: 'sqrt(x)' },
  rsqrt: { f32: '1.0 / sqrt(x)' },
  tanh: { f32: 'tanh(x)' },
  sigmoid: { f32: '1.0 / (1.0 + exp(-x))' },
  silu: { f32: 'x / (1.0 + exp(-x))' },
  square: { f32: 'x * x', i32: 'x * x' },
  abs: { f32: 'abs(x)', i32: 'abs(x)' },
  sign: { f32: 'select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0)', i32: 'sign(x)' },
};

/** A strided copy: dst[dBase + Σ idx·ds] = src[sBase + Σ idx·ss] over an iteration shape (expand, permute, slice, pad). */
function stridedCopy(rt: GpuRuntime, src: GpuTensor, sBase: number, ss: number[], dst: GpuTensor, dBase: number, ds: number[], shape: Shape, ty: string): void {
  const n = sizeOf(shape);
  const m = mergeDims(shape, [ss, ds]);
  run1d(rt, {
    key: `copy_${ty}`,
    code: () => ro(1, 'a', ty) + rw(2, 'o', ty) + OFFS + main1d('o[pu(21u) + offs(i, 14u)] = a[pu(20u) + offs(i, 8u)];'),
  }, [src, dst], n, [...stridedInts(m), sBase, dBase]);
}

function fillInto(rt: GpuRuntime, t: GpuTensor, n: number, bits: number): void {
  run1d(rt, { key: 'fill', code: () => rw(1, 'o', 'u32') + main1d('o[i] = pu(1u);') }, [t], n, [bits]);
}

const f32Bits = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0]!;

export function elementwiseKernels(rt: GpuRuntime): Partial<KernelTable> {
  const zeros = (n: number) => { const t = rt.alloc(n); fillInto(rt, t, n, 0); return t; };

  const map = (key: string, decl: string, body: string, inputs: GpuTensor[], n: number, ints: number[] = [], floats: number[] = [], outs = 1): GpuTensor[] => {
    const o = Array.from({ length: outs }, () => rt.alloc(n));
    run1d(rt, { key, code: () => decl + main1d(body) }, [...inputs, ...o], n, ints, floats);
    return o;
  };

  return {
    fill(dtype, size, value) {
      const t = rt.alloc(size);
      fillInto(rt, t, size, dtype === 'int32' ? value | 0 : f32Bits(value));
      return t;
    },

    cast(a, to) {
      const x = T(a);
      const out = rt.alloc(x.n);
      if (to === 'float64') throw new TypeError('webgpu backend: float64 is not supported');
      // ops.cast calls this only between different dtypes, so here: float32 → int32 (truncating) or int32 → float32
      const code = to === 'int32'
        ? ro(1, 'a', 'f32') + rw(2, 'o', 'i32') + main1d('o[i] = i32(trunc(a[i]));')
        : ro(1, 'a', 'i32') + rw(2, 'o', 'f32') + main1d('o[i] = f32(a[i]);');
      run1d(rt, { key: `cast_${to}`, code: () => code }, [x, out], x.n);
      return out;
    },

    binary(op, a, aShape, b, bShape, outShape, dtype) {
      const ty = wgslType(dtype);
      const x = T(a), y = T(b);
      const n = sizeOf(outShape);
      const out = rt.alloc(n);
      const expr = BIN[op];
      if (x.n === n && y.n === n) {
        run1d(rt, { key: `bin_${op}_${ty}_same`, code: () => ro(1, 'a', ty) + ro(2, 'b', ty) + rw(3, 'o', ty) + main1d(`let x = a[i]; let y = b[i]; o[i] = ${expr};`) },
          [x, y, out], n);
      } else if (y.n === 1 && x.n === n) {
        run1d(rt, { key: `bin_${op}_${ty}_scalar`, code: () => ro(1, 'a', ty) + ro(2, 'b', ty) + rw(3, 'o', ty) + main1d(`let x = a[i]; let y = b[0]; o[i] = ${expr};`) },
          [x, y, out], n);
      } else {
        const m = mergeDims(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
        run1d(rt, {
          key: `bin_${op}_${ty}_strided`,
          code: () => ro(1, 'a', ty) + ro(2, 'b', ty) + rw(3, 'o', ty) + OFFS + main1d(`let x = a[offs(i, 8u)]; let y = b[offs(i, 14u)]; o[i] = ${expr};`),
        }, [x, y, out], n, stridedInts(m));
      }
      return out;
    },

    unary(op, a, dtype) {
      const ty = wgslType(dtype);
      const expr = UNARY[op][ty];
      if (!expr) throw new TypeError(`webgpu backend: unary '${op}' on ${dtype} is not supported`);
      const x = T(a);
      return map(`unary_${op}_${ty}`, ro(1, 'a', ty) + rw(2, 'o', ty), `let x = a[i]; o[i] = ${expr};`, [x], x.n)[0]!;
    },

    siluBackward(x, g, dtype) {
      wgslType(dtype);
      const a = T(x);
      return map('siluBackward', ro(1, 'a') + ro(2, 'g') + rw(3, 'o'),
        'let x = a[i]; let s = 1.0 / (1.0 + exp(-x)); o[i] = g[i] * s * (1.0 + x * (1.0 - s));', [a, T(g)], a.n)[0]!;
    },

    swiglu(gate, up, dtype) {
      wgslType(dtype);
      const a = T(gate);
      return map('swiglu', ro(1, 'a') + ro(2, 'b') + rw(3, 'o'), 'let x = a[i]; o[i] = (x / (1.0 + exp(-x))) * b[i];', [a, T(up)], a.n)[0]!;
    },

    swigluBackward(gate, up, g, dtype) {
      wgslType(dtype);
      const a = T(gate);
      const [dGate, dUp] = map('swigluBackward', ro(1, 'a') + ro(2, 'b') + ro(3, 'g') + rw(4, 'dg') + rw(5, 'du'),
        'let x = a[i]; let s = 1.0 / (1.0 + exp(-x)); du[i] = g[i] * x * s; dg[i] = g[i] * b[i] * s * (1.0 + x * (1.0 - s));',
        [a, T(up), T(g)], a.n, [], [], 2);
      return { dGate: dGate!, dUp: dUp! };
    },

    clamp(a, lo, hi, dtype) {
      wgslType(dtype);
      const x = T(a);
      return map('clamp', ro(1, 'a') + rw(2, 'o'),
        'let x = a[i]; if (isNan(x)) { o[i] = x; } else if (x < pf(0u)) { o[i] = pf(0u); } else if (x > pf(1u)) { o[i] = pf(1u); } else { o[i] = x; }',
        [x], x.n, [], [lo, hi])[0]!;
    },

    clampBackward(x, g, lo, hi, dtype) {
      wgslType(dtype);
      const a = T(x);
      return map('clampBackward', ro(1, 'a') + ro(2, 'g') + rw(3, 'o'),
        'let x = a[i]; o[i] = select(0.0, g[i], !isNan(x) && x >= pf(0u) && x <= pf(1u));', [a, T(g)], a.n, [], [lo, hi])[0]!;
    },

    addInPlace(dst, src, dtype) {
      const ty = wgslType(dtype);
      const d = T(dst), s = T(src);
      if (d === s) {
        run1d(rt, { key: `scale_${ty}`, code: () => rw(1, 'o', ty) + main1d(ty === 'f32' ? 'o[i] = o[i] * pf(0u);' : 'o[i] = o[i] * 2;') }, [d], d.n, [], [2]);
        return;
      }
      run1d(rt, { key: `addInPlace_${ty}`, code: () => ro(1, 'a', ty) + rw(2, 'o', ty) + main1d('o[i] = o[i] + a[i];') }, [s, d], d.n);
    },

    scaleInPlace(a, s, dtype) {
      wgslType(dtype);
      const x = T(a);
      run1d(rt, { key: 'scale_f32', code: () => rw(1, 'o') + main1d('o[i] = o[i] * pf(0u);') }, [x], x.n, [], [s]);
    },

    expand(a, aShape, outShape, dtype) {
      const out = rt.alloc(sizeOf(outShape));
      stridedCopy(rt, T(a), 0, broadcastStrides(aShape, outShape), out, 0, stridesOf(outShape), outShape, wgslType(dtype));
      return out;
    },

    permute(a, shape, perm, dtype) {
      const outShape = perm.map((p) => shape[p]!);
      const st = stridesOf(shape);
      const out = rt.alloc(sizeOf(shape));
      stridedCopy(rt, T(a), 0, perm.map((p) => st[p]!), out, 0, stridesOf(outShape), outShape, wgslType(dtype));
      return out;
    },

    slice(a, shape, starts, ends, dtype) {
      const outShape = shape.map((_, i) => ends[i]! - starts[i]!);
      const st = stridesOf(shape);
      const base = starts.reduce((p, s, i) => p + s * st[i]!, 0);
      const out = rt.alloc(sizeOf(outShape));
      stridedCopy(rt, T(a), base, st, out, 0, stridesOf(outShape), outShape, wgslType(dtype));
      return out;
    },

    pad(a, aShape, outShape, starts, dtype) {
      const n = sizeOf(outShape);
      const out = zeros(n);
      const st = stridesOf(outShape);
      const base = starts.reduce((p, s, i) => p + s * st[i]!, 0);
      stridedCopy(rt, T(a), 0, stridesOf(aShape), out, base, st, aShape, wgslType(dtype));
      return out;
    },

    max(a, shape, axis, dtype) {
      const ty = wgslType(dtype);
      const outer = sizeOf(shape.slice(0, axis)), D = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
      const n = outer * inner;
      const values = rt.alloc(n), indices = rt.alloc(n);
      const isnan = (v: string) => (ty === 'f32' ? `isNan(${v})` : 'false');
      run1d(rt, {
        key: `max_${ty}`,
        code: () => ro(1, 'a', ty) + rw(2, 'vo', ty) + rw(3, 'io', 'i32') + main1d(`
          let D = pu(1u); let inner = pu(2u);
          let o = i / inner; let k = i % inner;
          var best = a[o * D * inner + k]; var bi = 0u;
          if (!${isnan('best')}) {
            for (var d = 1u; d < D; d = d + 1u) {
              let v = a[(o * D + d) * inner + k];
              if (${isnan('v')}) { best = v; bi = d; break; }
              if (v > best) { best = v; bi = d; }
            }
          }
          vo[i] = best; io[i] = i32(bi);`),
      }, [T(a), values, indices], n, [D, inner]);
      return { values, indices };
    },

    maxBackward(g, indices, shape, axis, dtype) {
      const ty = wgslType(dtype);
      const outer = sizeOf(shape.slice(0, axis)), D = shape[axis]!, inner = sizeOf(shape.slice(axis + 1));
      const out = zeros(sizeOf(shape));
      run1d(rt, {
        key: `maxBackward_${ty}`,
        code: () => ro(1, 'g', ty) + ro(2, 'idx', 'i32') + rw(3, 'o', ty) + main1d(`
          let D = pu(1u); let inner = pu(2u);
          let oo = i / inner; let k = i % inner;
          o[(oo * D + u32(idx[i])) * inner + k] = g[i];`),
      }, [T(g), T(indices), out], outer * inner, [D, inner]);
      return out;
    },
  };
}

export { fillInto, f32Bits };
export type { DType };
