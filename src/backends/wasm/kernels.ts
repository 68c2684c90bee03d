// Kernels of the `wasm` backend. Storage is the same as `ref` (Float32Array / Int32Array on the JS heap), so a
// kernel not listed here is the ref kernel with no conversion, and float64 calls go to ref (this backend is f32).
//
// Each kernel copies its operands into the arena of the shared memory, runs the wasm code (threaded when the
// work is big enough) and copies the result out into a fresh array. The copies are O(inputs + outputs) against
// O(M·N·K) compute for GEMM; removing them (tensors living in the wasm memory) is the next step (issue 6 §3).

import type { KernelTable } from '../../core/backend.js';
import { type Shape, broadcastStrides, sizeOf } from '../../core/dtype.js';
import { checkTargets, refKernels } from '../ref/kernels.js';
import type { WasmRuntime } from './runtime.js';

/** Below this many flops a kernel runs on the caller alone: a dispatch costs ~6–17 µs (notes/cpu-kernels.md). */
const PAR_MIN_FLOP = 4e6;
let parMinFlop = PAR_MIN_FLOP;

/** Tests: 0 sends every kernel call through the pool (exercises the thread split on tiny shapes). */
export function setParallelThreshold(flops: number | null): void {
  parMinFlop = flops ?? PAR_MIN_FLOP;
}

/** Time spent copying operands in and results out (ms, bytes), and in GEMM compute alone, for the bench's profile. */
export const copyStats = { ms: 0, inMs: 0, bytes: 0, gemmMs: 0, gemmFlop: 0 };

function gemmTimed(rt: WasmRuntime, nth: number, args: number[], flop: number): void {
  const t0 = performance.now();
  rt.run('gemm', nth, args);
  copyStats.gemmMs += performance.now() - t0;
  copyStats.gemmFlop += flop;
}

type Kernels = Partial<KernelTable>;

export function wasmKernels(rt: WasmRuntime): Kernels {
  const threadsFor = (flops: number) => (flops >= parMinFlop ? rt.threads : 1);

  /** Copies in, runs, copies out; counts the copy time. */
  const timed = <T>(copyIn: () => number[], compute: (ptrs: number[]) => void, copyOut: (ptrs: number[]) => T): T => {
    rt.reset();
    const bytes0 = rt.copiedBytes;
    const t0 = performance.now();
    const ptrs = copyIn();
    const t1 = performance.now();
    compute(ptrs);
    const t2 = performance.now();
    const r = copyOut(ptrs);
    copyStats.ms += t1 - t0 + (performance.now() - t2);
    copyStats.inMs += t1 - t0;
    copyStats.bytes += rt.copiedBytes - bytes0;
    return r;
  };
  const F = (s: object) => s as Float32Array;
  const I = (s: object) => s as Int32Array;

  const matmul: KernelTable['matmul'] = (a, aShape, b, bShape, transA, transB, outShape, dtype) => {
    if (dtype !== 'float32') return refKernels.matmul(a, aShape, b, bShape, transA, transB, outShape, dtype);
    const r = outShape.length;
    const M = outShape[r - 2]!, N = outShape[r - 1]!;
    const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
    const batchShape = outShape.slice(0, -2);
    const nBatch = sizeOf(batchShape);
    if (M * N === 0 || nBatch === 0) return new Float32Array(sizeOf(outShape));
    const sa = broadcastStrides(aShape.slice(0, -2), batchShape); // batch strides, in matrices
    const sb = broadcastStrides(bShape.slice(0, -2), batchShape);
    const lda = transA ? M : K, ldb = transB ? K : N;
    let pc = 0;
    return timed(() => {
      const p = [rt.put(F(a)), rt.put(F(b))];
      pc = rt.alloc(nBatch * M * N * 4); // [..., M, N]
      return p;
    }, ([pa, pb]) => {
      if (!transA && nBatch > 1 && sb.every((st) => st === 0) && sizeOf(aShape.slice(0, -2)) === nBatch) {
        // A [..., M, K] (not broadcast) times one shared B: a single GEMM with M' = batch·M (B packed once)
        const Mb = nBatch * M;
        gemmTimed(rt, threadsFor(2 * Mb * N * K), [0, transB ? 1 : 0, Mb, N, K, pa!, lda, pb!, ldb, pc, N, rt.gemmScratch, 0], 2 * Mb * N * K);
        return;
      }
      const nth = threadsFor(2 * M * N * K);
      forEachBatch(batchShape, sa, sb, (o, ia, ib) => {
        gemmTimed(rt, nth, [transA ? 1 : 0, transB ? 1 : 0, M, N, K, pa! + ia * M * K * 4, lda, pb! + ib * K * N * 4, ldb,
          pc + o * M * N * 4, N, rt.gemmScratch, 0], 2 * M * N * K);
      });
    }, () => rt.takeF32(pc, nBatch * M * N));
  };


  const attention: KernelTable['attention'] = (q, k, v, args, dtype) => {
    if (dtype !== 'float32') return refKernels.attention(q, k, v, args, dtype);
    const { B, T, S, NH, NKV, HD } = args;
    let po = 0, pl = 0;
    return timed(() => {
      const p = [rt.put(F(q)), rt.put(F(k)), rt.put(F(v)), args.keyMask ? rt.put(I(args.keyMask)) : 0, args.docIds ? rt.put(I(args.docIds)) : 0];
      po = rt.alloc(B * T * NH * HD * 4); // out [B, T, NH, HD]
      pl = rt.alloc(B * NH * T * 4); // lse [B, NH, T]
      return p;
    }, ([pq, pk, pv, pm, pd]) => {
      const nth = threadsFor(4 * B * NH * T * S * HD);
      const scratch = rt.alloc(nth * align64(S * 4)); // [nth][S] score rows
      rt.run('attention', nth, [pq!, pk!, pv!, po, pl, B, T, S, NH, NKV, HD, args.scale, args.causal ? 1 : 0, args.qOffset, pm!, pd!, scratch]);
    }, () => ({ out: rt.takeF32(po, B * T * NH * HD), lse: rt.takeF32(pl, B * NH * T) }));
  };

  const attentionBackward: KernelTable['attentionBackward'] = (q, k, v, out, lse, g, args, dtype) => {
    if (dtype !== 'float32') return refKernels.attentionBackward(q, k, v, out, lse, g, args, dtype);
    const { B, T, S, NH, NKV, HD } = args;
    let pdq = 0, pdk = 0, pdv = 0;
    return timed(() => {
      const p = [rt.put(F(q)), rt.put(F(k)), rt.put(F(v)), rt.put(F(out)), rt.put(F(lse)), rt.put(F(g)),
        args.keyMask ? rt.put(I(args.keyMask)) : 0, args.docIds ? rt.put(I(args.docIds)) : 0];
      pdq = rt.alloc(B * T * NH * HD * 4); // [B, T, NH, HD]
      pdk = rt.alloc(B * S * NKV * HD * 4); // [B, S, NKV, HD]
      pdv = rt.alloc(B * S * NKV * HD * 4);
      return p;
    }, ([pq, pk, pv, po, pl, pg, pm, pd]) => {
      const nth = threadsFor(8 * B * NH * T * S * HD);
      const scratch = rt.alloc(nth * 2 * align64(S * 4)); // [nth][2][S] P and dS rows
      rt.run('attentionBackward', nth, [pq!, pk!, pv!, po!, pl!, pg!, pdq, pdk, pdv, B, T, S, NH, NKV, HD, args.scale,
        args.causal ? 1 : 0, args.qOffset, pm!, pd!, scratch]);
    }, () => ({ dq: rt.takeF32(pdq, B * T * NH * HD), dk: rt.takeF32(pdk, B * S * NKV * HD), dv: rt.takeF32(pdv, B * S * NKV * HD) }));
  };

  const crossEntropy: KernelTable['crossEntropy'] = (logits, targets, args, dtype) => {
    if (dtype !== 'float32') return refKernels.crossEntropy(logits, targets, args, dtype);
    const { N, V } = args;
    checkTargets(I(targets), V, args.ignoreIndex);
    let ploss = 0, plse = 0;
    return timed(() => {
      const p = [rt.put(F(logits)), rt.put(I(targets))];
      ploss = rt.alloc(N * 4); plse = rt.alloc(N * 4); // [N] each
      return p;
    }, ([pz, pt]) => {
      rt.run('crossEntropy', threadsFor(8 * N * V), [pz!, pt!, ploss, plse, N, V, args.ignoreIndex, args.labelSmoothing, args.zLoss]);
    }, () => ({ loss: rt.takeF32(ploss, N), lse: rt.takeF32(plse, N) }));
  };

  const crossEntropyBackward: KernelTable['crossEntropyBackward'] = (logits, lse, targets, g, args, dtype) => {
    if (dtype !== 'float32') return refKernels.crossEntropyBackward(logits, lse, targets, g, args, dtype);
    const { N, V } = args;
    let pdz = 0;
    return timed(() => {
      const p = [rt.put(F(logits)), rt.put(F(lse)), rt.put(I(targets)), rt.put(F(g))];
      pdz = rt.alloc(N * V * 4); // [N, V]
      return p;
    }, ([pz, pl, pt, pg]) => {
      rt.run('crossEntropyBackward', threadsFor(8 * N * V), [pz!, pl!, pt!, pg!, pdz, N, V, args.ignoreIndex, args.labelSmoothing, args.zLoss]);
    }, () => rt.takeF32(pdz, N * V));
  };

  const rmsNorm: KernelTable['rmsNorm'] = (x, w, rows, C, eps, dtype) => {
    if (dtype !== 'float32') return refKernels.rmsNorm(x, w, rows, C, eps, dtype);
    let py = 0, pr = 0;
    return timed(() => {
      const p = [rt.put(F(x)), rt.put(F(w))];
      py = rt.alloc(rows * C * 4); pr = rt.alloc(rows * 4); // y [rows, C], rstd [rows]
      return p;
    }, ([px, pw]) => {
      rt.run('rmsNorm', threadsFor(4 * rows * C), [px!, pw!, py, pr, rows, C, eps]);
    }, () => ({ y: rt.takeF32(py, rows * C), rstd: rt.takeF32(pr, rows) }));
  };

  const rmsNormBackward: KernelTable['rmsNormBackward'] = (x, w, rstd, g, rows, C, dtype) => {
    if (dtype !== 'float32') return refKernels.rmsNormBackward(x, w, rstd, g, rows, C, dtype);
    let pdx = 0, pdw = 0, nth = 1;
    return timed(() => {
      const p = [rt.put(F(x)), rt.put(F(w)), rt.put(F(rstd)), rt.put(F(g))];
      nth = threadsFor(8 * rows * C);
      pdx = rt.alloc(rows * C * 4); // [rows, C]
      pdw = rt.alloc(nth * C * 4); // [nth, C] per-thread partial sums of dw
      return p;
    }, ([px, pw, pr, pg]) => {
      rt.run('rmsNormBackward', nth, [px!, pw!, pr!, pg!, pdx, pdw, rows, C]);
    }, () => {
      const parts = rt.f32.subarray(pdw >> 2, (pdw >> 2) + nth * C);
      const dw = new Float32Array(C);
      for (let t = 0; t < nth; t++) for (let c = 0; c < C; c++) dw[c]! += parts[t * C + c]!;
      return { dx: rt.takeF32(pdx, rows * C), dw };
    });
  };

  const binaryOps = { add: 0, sub: 1, mul: 2, div: 3 } as const;
  const binary: KernelTable['binary'] = (op, a, aShape, b, bShape, outShape, dtype) => {
    const x = a as Float32Array, y = b as Float32Array;
    const n = sizeOf(outShape);
    // same shape, or b a single value: everything else (broadcasts) is ref's
    if (dtype !== 'float32' || x.length !== n || (y.length !== n && y.length !== 1) || n < 1024) {
      return refKernels.binary(op, a, aShape, b, bShape, outShape, dtype);
    }
    let po = 0;
    return timed(() => {
      const p = [rt.put(x), rt.put(y)];
      po = rt.alloc(n * 4);
      return p;
    }, ([pa, pb]) => {
      rt.run('binary', threadsFor(ELEMENTWISE_FLOP * n), [binaryOps[op], pa!, pb!, po, n, y.length === 1 ? 1 : 0]);
    }, () => rt.takeF32(po, n));
  };

  const unary: KernelTable['unary'] = (op, a, dtype) => {
    const x = a as Float32Array;
    if (dtype !== 'float32' || (op !== 'silu' && op !== 'square') || x.length < 1024) return refKernels.unary(op, a, dtype);
    const n = x.length;
    let po = 0;
    return timed(() => {
      const p = [rt.put(x)];
      po = rt.alloc(n * 4);
      return p;
    }, ([px]) => rt.run(op, threadsFor((op === 'silu' ? 8 : 1) * ELEMENTWISE_FLOP * n), [px!, po, n]), () => rt.takeF32(po, n));
  };

  const sum: KernelTable['sum'] = (a, shape, axes, dtype) => {
    const x = a as Float32Array;
    // the full reduction (gradient norms, losses) in wasm, summed in f64 like ref; partial reductions are ref's
    if (dtype !== 'float32' || axes.length !== shape.length || x.length < 4096) return refKernels.sum(a, shape, axes, dtype);
    const n = x.length;
    let pp = 0, nth = 1;
    return timed(() => {
      const p = [rt.put(x)];
      nth = threadsFor(ELEMENTWISE_FLOP * n);
      pp = rt.alloc(nth * 8); // [nth] f64 partial sums
      return p;
    }, ([px]) => rt.run('sumAll', nth, [px!, n, pp]), () => {
      const parts = new Float64Array(rt.memory.buffer, pp, nth);
      let s = 0;
      for (let t = 0; t < nth; t++) s += parts[t]!;
      return Float32Array.of(s);
    });
  };

  const siluBackward: KernelTable['siluBackward'] = (x, g, dtype) => {
    if (dtype !== 'float32') return refKernels.siluBackward(x, g, dtype);
    const n = F(x).length;
    let po = 0;
    return timed(() => {
      const p = [rt.put(F(x)), rt.put(F(g))];
      po = rt.alloc(n * 4);
      return p;
    }, ([px, pg]) => rt.run('siluBackward', threadsFor(8 * ELEMENTWISE_FLOP * n), [px!, pg!, po, n]), () => rt.takeF32(po, n));
  };

  const linearCrossEntropy: KernelTable['linearCrossEntropy'] = (hidden, weight, targets, args, grad, dtype) => {
    if (dtype !== 'float32' || args.softcap > 0) return refKernels.linearCrossEntropy(hidden, weight, targets, args, grad, dtype);
    const { N, C, V } = args;
    checkTargets(I(targets), V, args.ignoreIndex);
    // Rows of logits held at once: at least LCE_MIN_ROWS, because dW += dzᵀ·H has K = rows and GEMMs with K < ~256
    // run far below peak (s15M: 32-row chunks 2.9 s, 128 → 1.9 s, 512 → 1.6 s per step). Memory stays O(rows·V).
    const R = Math.max(1, Math.min(Math.max(args.chunkSize, LCE_MIN_ROWS), N));
    let ploss = 0, pdh = 0, pdw = 0;
    return timed(() => {
      const p = [rt.put(F(hidden)), rt.put(F(weight)), rt.put(I(targets)), grad && 'rows' in grad ? rt.put(F(grad.rows)) : 0];
      ploss = rt.alloc(N * 4); // [N]
      if (grad) {
        pdh = rt.alloc(N * C * 4); // dHidden [N, C]
        pdw = rt.alloc(V * C * 4); // dWeight [V, C], accumulated over chunks
      }
      return p;
    }, ([ph, pw, pt, prow]) => {
      const pz = rt.alloc(R * V * 4); // [R, V] the only logits buffer
      const scale = grad && 'scale' in grad ? grad.scale : 0;
      for (let n0 = 0; n0 < N; n0 += R) {
        const rows = Math.min(R, N - n0);
        const hc = ph! + n0 * C * 4; // H[n0 : n0+rows]  [rows, C]
        const flop = 2 * rows * V * C;
        gemmTimed(rt, threadsFor(flop), [0, 1, rows, V, C, hc, C, pw!, C, pz, V, rt.gemmScratch, 0], flop); // z = Hc · Wᵀ
        rt.run('crossEntropyChunk', threadsFor(8 * rows * V), [pz, pt!, ploss, prow!, scale, n0, rows, V, args.ignoreIndex,
          args.labelSmoothing, args.zLoss, grad ? 1 : 0]);
        if (!grad) continue;
        gemmTimed(rt, threadsFor(flop), [0, 0, rows, C, V, pz, V, pw!, C, pdh + n0 * C * 4, C, rt.gemmScratch, 0], flop); // dHc = dz · W
        gemmTimed(rt, threadsFor(flop), [1, 0, V, C, rows, pz, V, hc, C, pdw, C, rt.gemmScratch, n0 > 0 ? 1 : 0], flop); // dW += dzᵀ · Hc
      }
    }, () => ({
      loss: rt.takeF32(ploss, N),
      dHidden: grad ? rt.takeF32(pdh, N * C) : null,
      dWeight: grad ? rt.takeF32(pdw, V * C) : null,
    }));
  };

  const rope: KernelTable['rope'] = (x, B, T, H, HD, positions, invFreq, scaling, inverse, dtype) => {
    const pos = I(positions);
    let maxPos = 0, minPos = 0;
    for (let i = 0; i < pos.length; i++) { maxPos = Math.max(maxPos, pos[i]!); minPos = Math.min(minPos, pos[i]!); }
    if (dtype !== 'float32' || minPos < 0 || maxPos > 1 << 20 || B * T * H * HD < 1024) {
      return refKernels.rope(x, B, T, H, HD, positions, invFreq, scaling, inverse, dtype);
    }
    const half = HD / 2, P = maxPos + 1;
    // cos/sin of position · invFreq in float64 (as ref), scaled, rounded to f32: [P, HD/2] each
    const cosT = new Float32Array(P * half), sinT = new Float32Array(P * half);
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < half; j++) {
        const ang = p * invFreq[j]!;
        cosT[p * half + j] = Math.cos(ang) * scaling;
        sinT[p * half + j] = (inverse ? -Math.sin(ang) : Math.sin(ang)) * scaling;
      }
    }
    const n = B * T * H * HD;
    let po = 0;
    return timed(() => {
      const p = [rt.put(F(x)), rt.put(pos), rt.put(cosT), rt.put(sinT)];
      po = rt.alloc(n * 4); // [B, T, H, HD]
      return p;
    }, ([px, pp, pc, ps]) => rt.run('rope', threadsFor(ELEMENTWISE_FLOP * n), [px!, po, pp!, pc!, ps!, B * T, H, HD]),
    () => rt.takeF32(po, n));
  };

  const adamStep: KernelTable['adamStep'] = (p, g, m, v, vMax, args, dtype) => {
    if (dtype !== 'float32' || args.amsgrad || vMax) return refKernels.adamStep(p, g, m, v, vMax, args, dtype);
    const ps = F(p), ms = F(m), vs = F(v);
    const n = ps.length;
    if (n < 4096) return refKernels.adamStep(p, g, m, v, vMax, args, dtype);
    const { lr, beta1, beta2, eps, weightDecay, decoupled, step } = args;
    const stepSize = lr / (1 - beta1 ** step), bc2Sqrt = Math.sqrt(1 - beta2 ** step);
    timed(() => [rt.put(ps), rt.put(F(g)), rt.put(ms), rt.put(vs)], ([pp, pg, pm, pv]) => {
      rt.run('adamStep', threadsFor(4 * ELEMENTWISE_FLOP * n), [pp!, pg!, pm!, pv!, n, lr, beta1, beta2, eps, weightDecay,
        decoupled ? 1 : 0, stepSize, bc2Sqrt]);
    }, ([pp, , pm, pv]) => {
      // in place: write p, m, v back into the caller's arrays (already touched memory: a plain memcpy)
      const f = rt.f32;
      const at = (ptr: number) => f.subarray(ptr >> 2, (ptr >> 2) + n);
      ps.set(at(pp!)); ms.set(at(pm!)); vs.set(at(pv!));
    });
  };

  return { matmul, linearCrossEntropy, rope, adamStep, sum, attention, attentionBackward, crossEntropy, crossEntropyBackward, rmsNorm, rmsNormBackward, binary, unary, siluBackward };
}

/** Smallest chunk of the fused LM-head loss (512 × V = 32000 floats: 65 MB of logits at a time). */
const LCE_MIN_ROWS = 512;

/** Elementwise ops are memory-bound: weigh an element like this many flops when deciding to thread. */
const ELEMENTWISE_FLOP = 4;

const align64 = (x: number) => Math.ceil(x / 64) * 64;


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
