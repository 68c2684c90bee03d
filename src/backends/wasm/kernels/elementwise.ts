// Elementwise kernels (memory-bound: small sizes stay on ref, where a wasm call would cost more than the loop),
// the full reduction `sum`, and `fill`.

import type { KernelTable } from '../../../core/backend.js';
import { sizeOf } from '../../../core/dtype.js';
import { refKernels } from '../../ref/kernels.js';
import { ELEMENTWISE_FLOP, type KernelContext, type Kernels } from './context.js';

/** Below this many elements an elementwise kernel is ref's. */
const MIN_ELEMENTS = 1024;

export function elementwiseKernels(ctx: KernelContext): Kernels {
  const { rt, threadsFor, call, at, out, take } = ctx;
  const F = (s: object) => s as Float32Array;

  const binaryOps = { add: 0, sub: 1, mul: 2, div: 3 } as const;
  /** out = a op b elementwise (b of the same size, or one value); out may be a. */
  const elementwise = (op: keyof typeof binaryOps, a: number, b: number, o: number, n: number, bScalar: boolean) => {
    rt.run('binary', threadsFor(ELEMENTWISE_FLOP * n), { op: binaryOps[op], a, b, out: o, n, bScalar: bScalar ? 1 : 0 });
  };

  const binary: KernelTable['binary'] = (op, a, aShape, b, bShape, outShape, dtype) => {
    const x = F(a), y = F(b);
    const n = sizeOf(outShape);
    // same shape, or b a single value: everything else (broadcasts) is ref's
    if (dtype !== 'float32' || x.length !== n || (y.length !== n && y.length !== 1) || n < MIN_ELEMENTS) {
      return refKernels.binary(op, a, aShape, b, bShape, outShape, dtype);
    }
    return call(() => {
      const pa = at(x), pb = at(y), po = out(n);
      elementwise(op, pa, pb, po, n, y.length === 1);
      return take(po);
    });
  };

  const addInPlace: KernelTable['addInPlace'] = (dst, src, dtype) => {
    const d = F(dst);
    if (dtype !== 'float32' || !rt.blocks.isResident(d) || d.length < MIN_ELEMENTS) return refKernels.addInPlace(dst, src, dtype);
    call(() => elementwise('add', d.byteOffset, at(src), d.byteOffset, d.length, false));
  };

  const scaleInPlace: KernelTable['scaleInPlace'] = (a, s, dtype) => {
    const d = F(a);
    if (dtype !== 'float32' || !rt.blocks.isResident(d) || d.length < MIN_ELEMENTS) return refKernels.scaleInPlace(a, s, dtype);
    call(() => {
      const ps = rt.temp(4);
      rt.blocks.f32[ps >>> 2] = s;
      elementwise('mul', d.byteOffset, ps, d.byteOffset, d.length, true);
    });
  };

  const unary: KernelTable['unary'] = (op, a, dtype) => {
    const x = F(a);
    if (dtype !== 'float32' || (op !== 'silu' && op !== 'square') || x.length < MIN_ELEMENTS) return refKernels.unary(op, a, dtype);
    const n = x.length;
    return call(() => {
      const px = at(x), po = out(n);
      rt.run(op, threadsFor((op === 'silu' ? 8 : 1) * ELEMENTWISE_FLOP * n), { x: px, out: po, n });
      return take(po);
    });
  };

  const sum: KernelTable['sum'] = (a, shape, axes, dtype) => {
    const x = F(a);
    // the full reduction in wasm, summed in f64 like ref (the last thread adds the partials up); partial
    // reductions are ref's
    if (dtype !== 'float32' || axes.length !== shape.length || x.length < 4096) return refKernels.sum(a, shape, axes, dtype);
    const n = x.length;
    return call(() => {
      const px = at(x);
      const nth = threadsFor(ELEMENTWISE_FLOP * n);
      const partial = rt.temp(nth * 8), counter = rt.counter(), po = out(1); // [nth] f64 partial sums
      rt.run('sumAll', nth, { x: px, n, partial, counter, out: po });
      return take(po);
    });
  };

  const siluBackward: KernelTable['siluBackward'] = (x, g, dtype) => {
    if (dtype !== 'float32') return refKernels.siluBackward(x, g, dtype);
    const n = F(x).length;
    return call(() => {
      const px = at(x), pg = at(g), po = out(n);
      rt.run('siluBackward', threadsFor(8 * ELEMENTWISE_FLOP * n), { x: px, g: pg, out: po, n });
      return take(po);
    });
  };

  const swiglu: KernelTable['swiglu'] = (gate, up, dtype) => {
    if (dtype !== 'float32') return refKernels.swiglu(gate, up, dtype);
    const n = F(gate).length;
    return call(() => {
      const pa = at(gate), pb = at(up), po = out(n);
      rt.run('swiglu', threadsFor(9 * ELEMENTWISE_FLOP * n), { a: pa, b: pb, out: po, n });
      return take(po);
    });
  };

  const swigluBackward: KernelTable['swigluBackward'] = (gate, up, g, dtype) => {
    if (dtype !== 'float32') return refKernels.swigluBackward(gate, up, g, dtype);
    const n = F(gate).length;
    return call(() => {
      const pa = at(gate), pb = at(up), pg = at(g), pda = out(n), pdb = out(n);
      rt.run('swigluBackward', threadsFor(12 * ELEMENTWISE_FLOP * n), { a: pa, b: pb, g: pg, da: pda, db: pdb, n });
      return { dGate: take(pda), dUp: take(pdb) };
    });
  };

  const clamp: KernelTable['clamp'] = (a, lo, hi, dtype) => {
    const x = F(a);
    if (dtype !== 'float32' || x.length < MIN_ELEMENTS) return refKernels.clamp(a, lo, hi, dtype);
    const n = x.length;
    return call(() => {
      const px = at(x), po = out(n);
      rt.run('clamp', threadsFor(ELEMENTWISE_FLOP * n), { x: px, out: po, n, lo, hi });
      return take(po);
    });
  };

  const clampBackward: KernelTable['clampBackward'] = (x, g, lo, hi, dtype) => {
    const xs = F(x);
    if (dtype !== 'float32' || xs.length < MIN_ELEMENTS) return refKernels.clampBackward(x, g, lo, hi, dtype);
    const n = xs.length;
    return call(() => {
      const px = at(xs), pg = at(g), po = out(n);
      rt.run('clampBackward', threadsFor(ELEMENTWISE_FLOP * n), { x: px, g: pg, out: po, n, lo, hi });
      return take(po);
    });
  };

  /** Resident zeros / constants (parameters, gradients, optimizer state live in the wasm memory). */
  const fill: KernelTable['fill'] = (dtype, size, value) => {
    if (dtype !== 'float32' && dtype !== 'int32') return refKernels.fill(dtype, size, value);
    const v = rt.blocks.view(size, dtype === 'int32');
    v.fill(value);
    return v;
  };

  return { binary, addInPlace, scaleInPlace, unary, sum, siluBackward, swiglu, swigluBackward, clamp, clampBackward, fill };
}
