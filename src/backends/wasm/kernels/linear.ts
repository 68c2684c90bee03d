// GEMM-based kernels: matmul (batched, broadcast) and attention, forward and backward.

import type { KernelTable } from '../../../core/backend.js';
import { type Shape, broadcastStrides, sizeOf } from '../../../core/dtype.js';
import { halfKind } from './context.js';
import { refKernels } from '../../ref/kernels.js';
import type { KernelContext, Kernels } from './context.js';

export function linearKernels(ctx: KernelContext, attentionHostShare = 0): Kernels {
  const { rt, threadsFor, call, at, out, take } = ctx;
  const blockBytes = (S: number) => rt.query('attentionBlockBytes', { S });
  // the share of the items the caller's thread takes through the host GEMM (−1: none; the threads split them evenly)
  const hostShare = attentionHostShare > 0 && rt.hasHostGemm ? attentionHostShare : -1;

  const matmul: KernelTable['matmul'] = (a, aShape, b, bShape, transA, transB, outShape, dtype, bDtype = dtype) => {
    if (dtype !== 'float32') return refKernels.matmul(a, aShape, b, bShape, transA, transB, outShape, dtype, bDtype);
    const bHalf = halfKind(bDtype); // a frozen half weight: the GEMM converts B as it packs it
    const bBytes = bHalf ? 2 : 4;
    const r = outShape.length;
    const M = outShape[r - 2]!, N = outShape[r - 1]!;
    const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
    const batchShape = outShape.slice(0, -2);
    const nBatch = sizeOf(batchShape);
    if (M * N === 0 || nBatch === 0) return rt.blocks.view(sizeOf(outShape), false).fill(0); // empty: as fill(0)
    const sa = broadcastStrides(aShape.slice(0, -2), batchShape); // batch strides, in matrices
    const sb = broadcastStrides(bShape.slice(0, -2), batchShape);
    const lda = transA ? M : K, ldb = transB ? K : N;
    return call(() => {
      const hostB = ctx.hostHalf(b); // a frozen half weight outside the wasm memory: copied in by blocks (ctx.gemm)
      const pa = at(a), pb = hostB ? 0 : at(b);
      const bStep = hostB ? 1 : bBytes; // B offsets: elements of hostB, or bytes of the wasm memory
      const pc = out(nBatch * M * N); // [..., M, N]
      // (K = 0: the gemm kernel writes zeros)
      if (!transA && nBatch > 1 && sb.every((st) => st === 0) && sizeOf(aShape.slice(0, -2)) === nBatch) {
        // A [..., M, K] (not broadcast) times one shared B: a single GEMM with M' = batch·M (B packed once)
        const Mb = nBatch * M, flop = 2 * Mb * N * K;
        ctx.gemm(threadsFor(flop), { transA: 0, transB: transB ? 1 : 0, M: Mb, N, K, a: pa, lda, b: pb, ldb, c: pc, ldc: N,
          scratch: rt.gemmScratch, acc: 0, bHalf }, flop, hostB);
      } else {
        const flop = 2 * M * N * K, nth = threadsFor(flop);
        forEachBatch(batchShape, sa, sb, (o, ia, ib) => {
          ctx.gemm(nth, { transA: transA ? 1 : 0, transB: transB ? 1 : 0, M, N, K, a: pa + ia * M * K * 4, lda,
            b: pb + ib * K * N * bStep, ldb, c: pc + o * M * N * 4, ldc: N, scratch: rt.gemmScratch, acc: 0, bHalf }, flop, hostB);
        });
      }
      return take(pc);
    });
  };

  const attention: KernelTable['attention'] = (q, k, v, args, dtype) => {
    if (dtype !== 'float32') return refKernels.attention(q, k, v, args, dtype);
    const { B, T, S, NH, NKV, HD } = args;
    return call(() => {
      const pq = at(q), pk = at(k), pv = at(v);
      const pm = args.keyMask ? at(args.keyMask) : 0, pd = args.docIds ? at(args.docIds) : 0;
      const po = out(B * T * NH * HD); // out [B, T, NH, HD]
      const pl = out(B * NH * T); // lse [B, NH, T]
      const nth = threadsFor(4 * B * NH * T * S * HD);
      const scratch = rt.temp(nth * blockBytes(S)); // [nth][QB, S] score blocks (or [nth][S] rows when T is small)
      rt.run('attention', nth, { q: pq, k: pk, v: pv, out: po, lse: pl, B, T, S, NH, NKV, HD, scale: args.scale,
        causal: args.causal ? 1 : 0, qOffset: args.qOffset, window: args.window, keyMask: pm, docIds: pd, scratch,
        gemmScratch: rt.gemmScratch, hostShare });
      return { out: take(po), lse: take(pl) };
    });
  };

  const attentionBackward: KernelTable['attentionBackward'] = (q, k, v, o, lse, g, args, dtype) => {
    if (dtype !== 'float32') return refKernels.attentionBackward(q, k, v, o, lse, g, args, dtype);
    const { B, T, S, NH, NKV, HD } = args;
    return call(() => {
      const pq = at(q), pk = at(k), pv = at(v), po = at(o), pl = at(lse), pg = at(g);
      const pm = args.keyMask ? at(args.keyMask) : 0, pd = args.docIds ? at(args.docIds) : 0;
      const pdq = out(B * T * NH * HD); // [B, T, NH, HD]
      const pdk = out(B * S * NKV * HD); // [B, S, NKV, HD]
      const pdv = out(B * S * NKV * HD);
      const nth = threadsFor(8 * B * NH * T * S * HD);
      const scratch = rt.temp(nth * 2 * blockBytes(S)); // [nth][2][QB, S] P and dS blocks
      rt.run('attentionBackward', nth, { q: pq, k: pk, v: pv, out: po, lse: pl, g: pg, dq: pdq, dk: pdk, dv: pdv, B, T, S, NH,
        NKV, HD, scale: args.scale, causal: args.causal ? 1 : 0, qOffset: args.qOffset, window: args.window, keyMask: pm, docIds: pd, scratch,
        gemmScratch: rt.gemmScratch, hostShare });
      return { dq: take(pdq), dk: take(pdk), dv: take(pdv) };
    });
  };

  return { matmul, attention, attentionBackward };
}

/** Calls fn(outBatch, aBatch, bBatch) for every batch index (batch offsets in units of whole matrices). */
function forEachBatch(batchShape: Shape, sa: number[], sb: number[], fn: (o: number, ia: number, ib: number) => void): void {
  const n = sizeOf(batchShape);
  const rank = batchShape.length;
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let ia = 0, ib = 0;
    for (let d = 0; d < rank; d++) { ia += idx[d]! * sa[d]!; ib += idx[d]! * sb[d]!; }
    fn(o, ia, ib);
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < batchShape[d]!) break;
      idx[d] = 0;
    }
  }
}
