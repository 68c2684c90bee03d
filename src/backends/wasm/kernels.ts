// Kernels of the `wasm` backend. Storages are Float32Array / Int32Array views: resident ones are views of the
// shared WebAssembly.Memory (made by this backend's kernels inside step scopes, by upload and fill), others are
// plain JS arrays (made by ref kernels, or outside every scope). A kernel not listed here is the ref kernel,
// which reads and writes both kinds; float64 calls go to ref (this backend is f32).
//
// A kernel passes resident operands to wasm by address and copies the others into temporary blocks; inside a
// step scope its outputs are new resident blocks (no copy at all), outside every scope they are copied out into
// JS arrays the GC manages (see runtime.ts).

import type { KernelTable } from '../../core/backend.js';
import { type Shape, broadcastStrides, sizeOf } from '../../core/dtype.js';
import { refKernels } from '../ref/kernels.js';
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
  const blockBytes = (S: number) => rt.exports.attentionBlockBytes!(S) as number;

  /** One kernel call: its temporaries (operand copies, scratch) are freed when it returns or throws. */
  const call = <T>(body: () => T): T => {
    const bytes0 = rt.copiedBytes, ms0 = rt.copyMs, in0 = rt.copyInMs;
    try {
      return body();
    } finally {
      rt.endCall();
      copyStats.bytes += rt.copiedBytes - bytes0;
      copyStats.ms += rt.copyMs - ms0;
      copyStats.inMs += rt.copyInMs - in0;
    }
  };
  const F = (s: object) => s as Float32Array;
  const I = (s: object) => s as Int32Array;
  const at = (s: object) => rt.input(s as Float32Array);
  const out = (n: number) => rt.output(n);
  const take = (p: number) => rt.result(p);

  const matmul: KernelTable['matmul'] = (a, aShape, b, bShape, transA, transB, outShape, dtype) => {
    if (dtype !== 'float32') return refKernels.matmul(a, aShape, b, bShape, transA, transB, outShape, dtype);
    const r = outShape.length;
    const M = outShape[r - 2]!, N = outShape[r - 1]!;
    const K = transA ? aShape[aShape.length - 2]! : aShape[aShape.length - 1]!;
    const batchShape = outShape.slice(0, -2);
    const nBatch = sizeOf(batchShape);
    if (M * N === 0 || nBatch === 0) return fill('float32', sizeOf(outShape), 0);
    const sa = broadcastStrides(aShape.slice(0, -2), batchShape); // batch strides, in matrices
    const sb = broadcastStrides(bShape.slice(0, -2), batchShape);
    const lda = transA ? M : K, ldb = transB ? K : N;
    return call(() => {
      const pa = at(a), pb = at(b);
      const pc = out(nBatch * M * N); // [..., M, N]
      // (K = 0: the gemm kernel writes zeros)
      if (!transA && nBatch > 1 && sb.every((st) => st === 0) && sizeOf(aShape.slice(0, -2)) === nBatch) {
        // A [..., M, K] (not broadcast) times one shared B: a single GEMM with M' = batch·M (B packed once)
        const Mb = nBatch * M;
        gemmTimed(rt, threadsFor(2 * Mb * N * K), [0, transB ? 1 : 0, Mb, N, K, pa, lda, pb, ldb, pc, N, rt.gemmScratch, 0], 2 * Mb * N * K);
      } else {
        const nth = threadsFor(2 * M * N * K);
        forEachBatch(batchShape, sa, sb, (o, ia, ib) => {
          gemmTimed(rt, nth, [transA ? 1 : 0, transB ? 1 : 0, M, N, K, pa + ia * M * K * 4, lda, pb + ib * K * N * 4, ldb,
            pc + o * M * N * 4, N, rt.gemmScratch, 0], 2 * M * N * K);
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
      rt.run('attention', nth, [pq, pk, pv, po, pl, B, T, S, NH, NKV, HD, args.scale, args.causal ? 1 : 0, args.qOffset, pm, pd, scratch,
        rt.gemmScratch]);
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
      rt.run('attentionBackward', nth, [pq, pk, pv, po, pl, pg, pdq, pdk, pdv, B, T, S, NH, NKV, HD, args.scale,
        args.causal ? 1 : 0, args.qOffset, pm, pd, scratch, rt.gemmScratch]);
      return { dq: take(pdq), dk: take(pdk), dv: take(pdv) };
    });
  };

  const crossEntropy: KernelTable['crossEntropy'] = (logits, targets, args, dtype) => {
    if (dtype !== 'float32') return refKernels.crossEntropy(logits, targets, args, dtype);
    const { N, V } = args;
    if (!targetsInRange(I(targets), V, args.ignoreIndex)) return refKernels.crossEntropy(logits, targets, args, dtype); // NaN rows
    return call(() => {
      const pz = at(logits), pt = at(targets);
      const ploss = out(N), plse = out(N); // [N] each
      rt.run('crossEntropy', threadsFor(8 * N * V), [pz, pt, ploss, plse, N, V, args.ignoreIndex, args.labelSmoothing, args.zLoss]);
      return { loss: take(ploss), lse: take(plse) };
    });
  };

  const crossEntropyBackward: KernelTable['crossEntropyBackward'] = (logits, lse, targets, g, args, dtype) => {
    if (dtype !== 'float32') return refKernels.crossEntropyBackward(logits, lse, targets, g, args, dtype);
    const { N, V } = args;
    return call(() => {
      const pz = at(logits), pl = at(lse), pt = at(targets), pg = at(g);
      const pdz = out(N * V); // [N, V]
      rt.run('crossEntropyBackward', threadsFor(8 * N * V), [pz, pl, pt, pg, pdz, N, V, args.ignoreIndex, args.labelSmoothing, args.zLoss]);
      return take(pdz);
    });
  };

  const rmsNorm: KernelTable['rmsNorm'] = (x, w, rows, C, eps, dtype) => {
    if (dtype !== 'float32') return refKernels.rmsNorm(x, w, rows, C, eps, dtype);
    return call(() => {
      const px = at(x), pw = at(w);
      const py = out(rows * C), pr = out(rows); // y [rows, C], rstd [rows]
      rt.run('rmsNorm', threadsFor(4 * rows * C), [px, pw, py, pr, rows, C, eps]);
      return { y: take(py), rstd: take(pr) };
    });
  };

  const rmsNormBackward: KernelTable['rmsNormBackward'] = (x, w, rstd, g, rows, C, dtype) => {
    if (dtype !== 'float32') return refKernels.rmsNormBackward(x, w, rstd, g, rows, C, dtype);
    return call(() => {
      const px = at(x), pw = at(w), pr = at(rstd), pg = at(g);
      const nth = threadsFor(8 * rows * C);
      const pdx = out(rows * C); // [rows, C]
      const pparts = rt.temp(nth * C * 4); // [nth, C] per-thread partial sums of dw
      const pdw = out(C); // [C]
      rt.run('rmsNormBackward', nth, [px, pw, pr, pg, pdx, pparts, rows, C]);
      const f = rt.blocks.f32, parts = pparts >> 2, dw = pdw >> 2;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let t = 0; t < nth; t++) s += f[parts + t * C + c]!;
        f[dw + c] = s;
      }
      return { dx: take(pdx), dw: take(pdw) };
    });
  };

  const binaryOps = { add: 0, sub: 1, mul: 2, div: 3 } as const;
  /** out = a op b elementwise (b of the same size, or one value); out may be a. */
  const elementwise = (op: keyof typeof binaryOps, pa: number, pb: number, po: number, n: number, bScalar: boolean) => {
    rt.run('binary', threadsFor(ELEMENTWISE_FLOP * n), [binaryOps[op], pa, pb, po, n, bScalar ? 1 : 0]);
  };
  const binary: KernelTable['binary'] = (op, a, aShape, b, bShape, outShape, dtype) => {
    const x = a as Float32Array, y = b as Float32Array;
    const n = sizeOf(outShape);
    // same shape, or b a single value: everything else (broadcasts) is ref's
    if (dtype !== 'float32' || x.length !== n || (y.length !== n && y.length !== 1) || n < 1024) {
      return refKernels.binary(op, a, aShape, b, bShape, outShape, dtype);
    }
    return call(() => {
      const pa = at(x), pb = at(y), po = out(n);
      elementwise(op, pa, pb, po, n, y.length === 1);
      return take(po);
    });
  };

  const addInPlace: KernelTable['addInPlace'] = (dst, src, dtype) => {
    const d = dst as Float32Array;
    if (dtype !== 'float32' || !rt.blocks.isResident(d) || d.length < 1024) return refKernels.addInPlace(dst, src, dtype);
    call(() => elementwise('add', d.byteOffset, at(src), d.byteOffset, d.length, false));
  };

  const scaleInPlace: KernelTable['scaleInPlace'] = (a, s, dtype) => {
    const d = a as Float32Array;
    if (dtype !== 'float32' || !rt.blocks.isResident(d) || d.length < 1024) return refKernels.scaleInPlace(a, s, dtype);
    call(() => {
      const ps = rt.temp(4);
      rt.blocks.f32[ps >> 2] = s;
      elementwise('mul', d.byteOffset, ps, d.byteOffset, d.length, true);
    });
  };

  const unary: KernelTable['unary'] = (op, a, dtype) => {
    const x = a as Float32Array;
    if (dtype !== 'float32' || (op !== 'silu' && op !== 'square') || x.length < 1024) return refKernels.unary(op, a, dtype);
    const n = x.length;
    return call(() => {
      const px = at(x), po = out(n);
      rt.run(op, threadsFor((op === 'silu' ? 8 : 1) * ELEMENTWISE_FLOP * n), [px, po, n]);
      return take(po);
    });
  };

  const sum: KernelTable['sum'] = (a, shape, axes, dtype) => {
    const x = a as Float32Array;
    // the full reduction (gradient norms, losses) in wasm, summed in f64 like ref; partial reductions are ref's
    if (dtype !== 'float32' || axes.length !== shape.length || x.length < 4096) return refKernels.sum(a, shape, axes, dtype);
    const n = x.length;
    return call(() => {
      const px = at(x);
      const nth = threadsFor(ELEMENTWISE_FLOP * n);
      const pp = rt.temp(nth * 8); // [nth] f64 partial sums
      rt.run('sumAll', nth, [px, n, pp]);
      const parts = new Float64Array(rt.memory.buffer, pp, nth);
      let s = 0;
      for (let t = 0; t < nth; t++) s += parts[t]!;
      return Float32Array.of(s);
    });
  };

  const siluBackward: KernelTable['siluBackward'] = (x, g, dtype) => {
    if (dtype !== 'float32') return refKernels.siluBackward(x, g, dtype);
    const n = F(x).length;
    return call(() => {
      const px = at(x), pg = at(g), po = out(n);
      rt.run('siluBackward', threadsFor(8 * ELEMENTWISE_FLOP * n), [px, pg, po, n]);
      return take(po);
    });
  };

  const swiglu: KernelTable['swiglu'] = (gate, up, dtype) => {
    if (dtype !== 'float32') return refKernels.swiglu(gate, up, dtype);
    const n = F(gate).length;
    return call(() => {
      const pa = at(gate), pb = at(up), po = out(n);
      rt.run('swiglu', threadsFor(9 * ELEMENTWISE_FLOP * n), [pa, pb, po, n]);
      return take(po);
    });
  };

  const swigluBackward: KernelTable['swigluBackward'] = (gate, up, g, dtype) => {
    if (dtype !== 'float32') return refKernels.swigluBackward(gate, up, g, dtype);
    const n = F(gate).length;
    return call(() => {
      const pa = at(gate), pb = at(up), pg = at(g), pda = out(n), pdb = out(n);
      rt.run('swigluBackward', threadsFor(12 * ELEMENTWISE_FLOP * n), [pa, pb, pg, pda, pdb, n]);
      return { dGate: take(pda), dUp: take(pdb) };
    });
  };

  const linearCrossEntropy: KernelTable['linearCrossEntropy'] = (hidden, weight, targets, args, grad, dtype) => {
    if (dtype !== 'float32' || args.softcap > 0) return refKernels.linearCrossEntropy(hidden, weight, targets, args, grad, dtype);
    const { N, C, V } = args;
    if (!targetsInRange(I(targets), V, args.ignoreIndex)) return refKernels.linearCrossEntropy(hidden, weight, targets, args, grad, dtype);
    // Rows of logits held at once: at least LCE_MIN_ROWS, because dW += dzᵀ·H has K = rows and GEMMs with K < ~256
    // run far below peak (s15M: 32-row chunks 2.9 s, 128 → 1.9 s, 512 → 1.6 s per step). Memory stays O(rows·V).
    const R = Math.max(1, Math.min(Math.max(args.chunkSize, LCE_MIN_ROWS), N));
    return call(() => {
      const ph = at(hidden), pw = at(weight), pt = at(targets), prow = grad && 'rows' in grad ? at(grad.rows) : 0;
      const ploss = out(N); // [N]
      const pdh = grad ? out(N * C) : 0; // dHidden [N, C]
      const pdw = grad ? out(V * C) : 0; // dWeight [V, C], accumulated over chunks
      const pz = rt.temp(R * V * 4); // [R, V] the only logits buffer
      const scale = grad && 'scale' in grad ? grad.scale : 0;
      for (let n0 = 0; n0 < N; n0 += R) {
        const rows = Math.min(R, N - n0);
        const hc = ph + n0 * C * 4; // H[n0 : n0+rows]  [rows, C]
        const flop = 2 * rows * V * C;
        gemmTimed(rt, threadsFor(flop), [0, 1, rows, V, C, hc, C, pw, C, pz, V, rt.gemmScratch, 0], flop); // z = Hc · Wᵀ
        rt.run('crossEntropyChunk', threadsFor(8 * rows * V), [pz, pt, ploss, prow, scale, n0, rows, V, args.ignoreIndex,
          args.labelSmoothing, args.zLoss, grad ? 1 : 0]);
        if (!grad) continue;
        gemmTimed(rt, threadsFor(flop), [0, 0, rows, C, V, pz, V, pw, C, pdh + n0 * C * 4, C, rt.gemmScratch, 0], flop); // dHc = dz · W
        gemmTimed(rt, threadsFor(flop), [1, 0, V, C, rows, pz, V, hc, C, pdw, C, rt.gemmScratch, n0 > 0 ? 1 : 0], flop); // dW += dzᵀ · Hc
      }
      return { loss: take(ploss), dHidden: grad ? take(pdh) : null, dWeight: grad ? take(pdw) : null };
    });
  };

  /**
   * cos/sin of position · invFreq in float64 (as ref), scaled, rounded to f32: [P, HD/2] each, resident. The last
   * few tables are kept (a model asks for the same ones at every layer and step).
   */
  const ropeTables: { invFreq: Float32Array; P: number; scaling: number; inverse: boolean; pc: number; ps: number }[] = [];
  const ropeTable = (invFreq: Float32Array, P: number, scaling: number, inverse: boolean): [number, number] => {
    const hit = ropeTables.find((e) => e.invFreq === invFreq && e.P >= P && e.scaling === scaling && e.inverse === inverse);
    if (hit) return [hit.pc, hit.ps];
    const half = invFreq.length;
    const pc = rt.blocks.alloc(P * half * 4), ps = rt.blocks.alloc(P * half * 4);
    const f = rt.blocks.f32, c0 = pc >> 2, s0 = ps >> 2;
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < half; j++) {
        const ang = p * invFreq[j]!;
        f[c0 + p * half + j] = Math.cos(ang) * scaling;
        f[s0 + p * half + j] = (inverse ? -Math.sin(ang) : Math.sin(ang)) * scaling;
      }
    }
    ropeTables.unshift({ invFreq, P, scaling, inverse, pc, ps });
    for (const old of ropeTables.splice(4)) { rt.blocks.free(old.pc); rt.blocks.free(old.ps); }
    return [pc, ps];
  };

  const rope: KernelTable['rope'] = (x, B, T, H, HD, positions, invFreq, scaling, inverse, dtype) => {
    const pos = I(positions);
    let maxPos = 0, minPos = 0;
    for (let i = 0; i < pos.length; i++) { maxPos = Math.max(maxPos, pos[i]!); minPos = Math.min(minPos, pos[i]!); }
    if (dtype !== 'float32' || minPos < 0 || maxPos > 1 << 20 || B * T * H * HD < 1024) {
      return refKernels.rope(x, B, T, H, HD, positions, invFreq, scaling, inverse, dtype);
    }
    const P = maxPos + 1, n = B * T * H * HD;
    return call(() => {
      const [pc, ps] = ropeTable(invFreq, P, scaling, inverse);
      const px = at(x), pp = at(pos), po = out(n); // [B, T, H, HD]
      rt.run('rope', threadsFor(ELEMENTWISE_FLOP * n), [px, po, pp, pc, ps, B * T, H, HD]);
      return take(po);
    });
  };

  const adamStep: KernelTable['adamStep'] = (group, args, gate, dtype) => {
    if (dtype !== 'float32' || args.amsgrad || group.vMax) return refKernels.adamStep(group, args, gate, dtype);
    if (gate && !Number.isFinite(F(gate)[0]!)) return;
    const { lr, beta1, beta2, eps, weightDecay, decoupled } = args;
    group.params.forEach((p, k) => {
      const ps = F(p), ms = F(group.m[k]!), vs = F(group.v[k]!), g = group.grads[k]!;
      const n = ps.length, step = group.steps[k]!;
      const one = { ...group, params: [p], grads: [g], m: [ms], v: [vs], sizes: [n], steps: [step] };
      if (n < 4096) return refKernels.adamStep(one, args, null, dtype);
      const stepSize = lr / (1 - beta1 ** step), bc2Sqrt = Math.sqrt(1 - beta2 ** step);
      call(() => {
        const pp = at(ps), pg = at(g), pm = at(ms), pv = at(vs);
        rt.run('adamStep', threadsFor(4 * ELEMENTWISE_FLOP * n), [pp, pg, pm, pv, n, lr, beta1, beta2, eps, weightDecay,
          decoupled ? 1 : 0, stepSize, bc2Sqrt, 1 - beta1, 1 - beta2]);
        // in place: arrays that were copied in (not resident) get their new values back
        const f = rt.blocks.f32;
        for (const [arr, ptr] of [[ps, pp], [ms, pm], [vs, pv]] as const) {
          if (arr.byteOffset !== ptr || !rt.blocks.isResident(arr)) arr.set(f.subarray(ptr >> 2, (ptr >> 2) + n));
        }
      });
    });
  };

  /** Resident zeros / constants (parameters, gradients, optimizer state live in the wasm memory). */
  const fill: KernelTable['fill'] = (dtype, size, value) => {
    if (dtype !== 'float32' && dtype !== 'int32') return refKernels.fill(dtype, size, value);
    const v = rt.blocks.view(size, dtype === 'int32');
    v.fill(value);
    return v;
  };

  const embedding: KernelTable['embedding'] = (w, V, C, ids, N, dtype) => {
    if (dtype !== 'float32' || !targetsInRange(I(ids), V, 0)) return refKernels.embedding(w, V, C, ids, N, dtype); // NaN rows
    return call(() => {
      const pw = at(w), pi = at(ids), po = out(N * C); // [N, C]
      rt.run('gatherRows', threadsFor(ELEMENTWISE_FLOP * N * C), [pw, pi, po, N, C]);
      return take(po);
    });
  };

  const embeddingBackward: KernelTable['embeddingBackward'] = (g, ids, N, V, C, dtype, into) => {
    if (dtype !== 'float32' || (into && !rt.blocks.isResident(into))) return refKernels.embeddingBackward(g, ids, N, V, C, dtype, into);
    const idv = I(ids);
    return call(() => {
      const pg = at(g) >> 2;
      const pdw = into ? F(into).byteOffset : out(V * C); // dW [V, C]
      const f = rt.blocks.f32, dw = pdw >> 2;
      if (!into) f.fill(0, dw, dw + V * C);
      for (let n = 0; n < N; n++) {
        const row = dw + idv[n]! * C, src = pg + n * C;
        for (let c = 0; c < C; c++) f[row + c]! += f[src + c]!;
      }
      return into ?? take(pdw);
    });
  };

  return {
    matmul, linearCrossEntropy, rope, adamStep, sum, attention, attentionBackward, crossEntropy, crossEntropyBackward, rmsNorm,
    rmsNormBackward, binary, unary, siluBackward, swiglu, swigluBackward, addInPlace, scaleInPlace, fill, embedding, embeddingBackward,
  };
}

/** Whether every value is in [0, V) or equal to `ignore` (kernels hand bad ids to ref, which writes NaN rows). */
function targetsInRange(t: Int32Array, V: number, ignore: number): boolean {
  for (let i = 0; i < t.length; i++) {
    const y = t[i]!;
    if ((y < 0 || y >= V) && y !== ignore) return false;
  }
  return true;
}

/** Smallest chunk of the fused LM-head loss (512 × V = 32000 floats: 65 MB of logits at a time). */
const LCE_MIN_ROWS = 512;

/** Elementwise ops are memory-bound: weigh an element like this many flops when deciding to thread. */
const ELEMENTWISE_FLOP = 4;



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
