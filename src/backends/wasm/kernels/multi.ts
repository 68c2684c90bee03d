// Multi-tensor kernels: the global norm of a list of tensors, clipping by it, and the Adam / SGD updates of an
// optimizer group. Each is one wasm call over a table of the tensors (see exports.ts, `row`), split across the
// threads by total elements: one dispatch per call, whatever the number of tensors. Gates and norms are read by
// the kernels, never here. Operands that are not resident are copied in, and back when updated in place.

import type { KernelTable } from '../../../core/backend.js';
import { refKernels } from '../../ref/kernels.js';
import { ELEMENTWISE_FLOP, type KernelContext, type Kernels } from './context.js';

export function multiTensorKernels(ctx: KernelContext): Kernels {
  const { rt, threadsFor, call, at, out, take, writeBack } = ctx;
  const total = (sizes: readonly number[]) => sizes.reduce((s, n) => s + n, 0);

  const globalNorm: KernelTable['globalNorm'] = (list, sizes, normType, dtype) => {
    if (dtype !== 'float32' || (normType !== 2 && normType !== Infinity)) return refKernels.globalNorm(list, sizes, normType, dtype);
    const n = total(sizes);
    return call(() => {
      const table = rt.table('globalNorm', list.map((s, k) => ({ x: at(s), n: sizes[k]! })));
      const nth = threadsFor(ELEMENTWISE_FLOP * n);
      const partial = rt.temp(nth * 8), counter = rt.counter(), po = out(1); // [nth] f64 partials, the norm [1]
      rt.run('globalNorm', nth, { table, count: list.length, total: n, inf: normType === Infinity ? 1 : 0, partial, counter, out: po });
      return take(po);
    });
  };

  const clipByNorm: KernelTable['clipByNorm'] = (list, sizes, norm, maxNorm, dtype) => {
    if (dtype !== 'float32') return refKernels.clipByNorm(list, sizes, norm, maxNorm, dtype);
    const n = total(sizes);
    call(() => {
      const ptrs = list.map((s) => at(s));
      const table = rt.table('clipByNorm', ptrs.map((x, k) => ({ x, n: sizes[k]! })));
      rt.run('clipByNorm', threadsFor(ELEMENTWISE_FLOP * n), { table, count: list.length, total: n, norm: at(norm), maxNorm });
      list.forEach((s, k) => writeBack(s, ptrs[k]!, sizes[k]!));
    });
  };

  const adamStep: KernelTable['adamStep'] = (group, args, gate, dtype) => {
    if (dtype !== 'float32' || args.amsgrad || group.vMax) return refKernels.adamStep(group, args, gate, dtype);
    const { sizes } = group, n = total(sizes);
    call(() => {
      const rows = group.params.map((p, k) => ({
        p: at(p), g: at(group.grads[k]!), m: at(group.m[k]!), v: at(group.v[k]!), n: sizes[k]!, step: group.steps[k]!,
      }));
      const table = rt.table('adamStep', rows);
      rt.run('adamStep', threadsFor(4 * ELEMENTWISE_FLOP * n), { table, count: rows.length, total: n, gate: gate ? at(gate) : 0,
        lr: args.lr, beta1: args.beta1, beta2: args.beta2, eps: args.eps, wd: args.weightDecay, decoupled: args.decoupled ? 1 : 0 });
      rows.forEach((r, k) => {
        writeBack(group.params[k]!, r.p, r.n);
        writeBack(group.m[k]!, r.m, r.n);
        writeBack(group.v[k]!, r.v, r.n);
      });
    });
  };

  const sgdStep: KernelTable['sgdStep'] = (group, args, gate, dtype) => {
    if (dtype !== 'float32') return refKernels.sgdStep(group, args, gate, dtype);
    const { sizes, bufs } = group, n = total(sizes);
    call(() => {
      const rows = group.params.map((p, k) => ({
        p: at(p), g: at(group.grads[k]!), buf: bufs ? at(bufs[k]!) : 0, n: sizes[k]!, firstStep: group.firstStep[k] ? 1 : 0,
      }));
      const table = rt.table('sgdStep', rows);
      rt.run('sgdStep', threadsFor(2 * ELEMENTWISE_FLOP * n), { table, count: rows.length, total: n, gate: gate ? at(gate) : 0,
        lr: args.lr, momentum: args.momentum, dampening: args.dampening, nesterov: args.nesterov ? 1 : 0, wd: args.weightDecay });
      rows.forEach((r, k) => {
        writeBack(group.params[k]!, r.p, r.n);
        if (bufs) writeBack(bufs[k]!, r.buf, r.n);
      });
    });
  };

  return { globalNorm, clipByNorm, adamStep, sgdStep };
}
