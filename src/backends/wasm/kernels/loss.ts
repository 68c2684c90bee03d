// Loss kernels: cross-entropy on logits (forward, backward) and the fused LM head + cross-entropy. Targets are read
// only by the wasm kernels: one outside [0, V) that is not ignoreIndex gives a NaN loss and a NaN gradient row.

import type { KernelTable } from '../../../core/backend.js';
import { refKernels } from '../../ref/kernels.js';
import { type KernelContext, type Kernels, halfKind } from './context.js';

/** Smallest chunk of the fused LM-head loss (512 × V = 32000 floats: 65 MB of logits at a time). */
const LCE_MIN_ROWS = 512;

export function lossKernels(ctx: KernelContext): Kernels {
  const { rt, threadsFor, call, at, out, take } = ctx;

  const crossEntropy: KernelTable['crossEntropy'] = (logits, targets, args, dtype) => {
    if (dtype !== 'float32') return refKernels.crossEntropy(logits, targets, args, dtype);
    const { N, V } = args;
    return call(() => {
      const pz = at(logits), pt = at(targets);
      const ploss = out(N), plse = out(N); // [N] each
      rt.run('crossEntropy', threadsFor(8 * N * V), { z: pz, targets: pt, loss: ploss, lse: plse, N, V,
        ignoreIndex: args.ignoreIndex, eps: args.labelSmoothing, zLoss: args.zLoss });
      return { loss: take(ploss), lse: take(plse) };
    });
  };

  const crossEntropyBackward: KernelTable['crossEntropyBackward'] = (logits, lse, targets, g, args, dtype) => {
    if (dtype !== 'float32') return refKernels.crossEntropyBackward(logits, lse, targets, g, args, dtype);
    const { N, V } = args;
    return call(() => {
      const pz = at(logits), pl = at(lse), pt = at(targets), pg = at(g);
      const pdz = out(N * V); // [N, V]
      rt.run('crossEntropyBackward', threadsFor(8 * N * V), { z: pz, lse: pl, targets: pt, g: pg, dz: pdz, N, V,
        ignoreIndex: args.ignoreIndex, eps: args.labelSmoothing, zLoss: args.zLoss });
      return take(pdz);
    });
  };

  const linearCrossEntropy: KernelTable['linearCrossEntropy'] = (hidden, weight, targets, args, grad, dtype, wDtype = dtype) => {
    if (dtype !== 'float32' || args.softcap > 0) return refKernels.linearCrossEntropy(hidden, weight, targets, args, grad, dtype, wDtype);
    const bHalf = halfKind(wDtype); // a frozen half head: its GEMMs convert W as they pack it
    const { N, C, V } = args;
    // Rows of logits held at once: at least LCE_MIN_ROWS, because dW += dzᵀ·H has K = rows and GEMMs with K < ~256
    // run far below peak (s15M: 32-row chunks 2.9 s, 128 → 1.9 s, 512 → 1.6 s per step). Memory stays O(rows·V).
    const R = Math.max(1, Math.min(Math.max(args.chunkSize, LCE_MIN_ROWS), N));
    return call(() => {
      const hostW = ctx.hostHalf(weight); // a frozen half head outside the wasm memory: copied in by blocks (ctx.gemm)
      const ph = at(hidden), pw = hostW ? 0 : at(weight), pt = at(targets), rowScale = grad && 'rows' in grad ? at(grad.rows) : 0;
      const ploss = out(N); // [N]
      const pdh = grad ? out(N * C) : 0; // dHidden [N, C]
      const wantW = grad !== null && args.weightGrad;
      const pdw = wantW ? out(V * C) : 0; // dWeight [V, C], accumulated over chunks
      const pz = rt.temp(R * V * 4); // [R, V] the only logits buffer
      const scale = grad && 'scale' in grad ? grad.scale : 0;
      for (let n0 = 0; n0 < N; n0 += R) {
        const rows = Math.min(R, N - n0);
        const hc = ph + n0 * C * 4; // H[n0 : n0+rows]  [rows, C]
        const flop = 2 * rows * V * C, nth = threadsFor(flop), gemmScratch = rt.gemmScratch;
        ctx.gemm(nth, { transA: 0, transB: 1, M: rows, N: V, K: C, a: hc, lda: C, b: pw, ldb: C, c: pz, ldc: V,
          scratch: gemmScratch, acc: 0, bHalf }, flop, hostW); // z = Hc · Wᵀ
        rt.run('crossEntropyChunk', threadsFor(8 * rows * V), { z: pz, targets: pt, loss: ploss, rowScale, scale, n0, rows, V,
          ignoreIndex: args.ignoreIndex, eps: args.labelSmoothing, zLoss: args.zLoss, wantGrad: grad ? 1 : 0 });
        if (!grad) continue;
        ctx.gemm(nth, { transA: 0, transB: 0, M: rows, N: C, K: V, a: pz, lda: V, b: pw, ldb: C, c: pdh + n0 * C * 4, ldc: C,
          scratch: gemmScratch, acc: 0, bHalf }, flop, hostW); // dHc = dz · W
        if (wantW) {
          ctx.gemm(nth, { transA: 1, transB: 0, M: V, N: C, K: rows, a: pz, lda: V, b: hc, ldb: C, c: pdw, ldc: C,
            scratch: gemmScratch, acc: n0 > 0 ? 1 : 0, bHalf: 0 }, flop); // dW += dzᵀ · Hc
        }
      }
      return { loss: take(ploss), dHidden: grad ? take(pdh) : null, dWeight: wantW ? take(pdw) : null };
    });
  };

  return { crossEntropy, crossEntropyBackward, linearCrossEntropy };
}
