// Row kernels: RMSNorm (forward, backward), RoPE, and embedding rows (gather, scatter-add). Token ids are read
// only by the wasm kernels, never here (but for a half table outside the wasm memory, gathered on the host): an id
// outside [0, V) gives a NaN row forward and is skipped backward.

import type { KernelTable } from '../../../core/backend.js';
import { refKernels } from '../../ref/kernels.js';
import { ELEMENTWISE_FLOP, type KernelContext, type Kernels, halfKind } from './context.js';
import { type HalfDType } from '../../../core/dtype.js';
import { halfToFloat32 } from '../../../core/half.js';

export function rowKernels(ctx: KernelContext): Kernels {
  const { rt, threadsFor, call, at, out, take } = ctx;
  const I = (s: object) => s as Int32Array;

  const rmsNorm: KernelTable['rmsNorm'] = (x, w, rows, C, eps, dtype) => {
    if (dtype !== 'float32') return refKernels.rmsNorm(x, w, rows, C, eps, dtype);
    return call(() => {
      const px = at(x), pw = at(w);
      const py = out(rows * C), pr = out(rows); // y [rows, C], rstd [rows]
      rt.run('rmsNorm', threadsFor(4 * rows * C), { x: px, w: pw, y: py, rstd: pr, rows, C, eps });
      return { y: take(py), rstd: take(pr) };
    });
  };

  const rmsNormBackward: KernelTable['rmsNormBackward'] = (x, w, rstd, g, rows, C, dtype) => {
    if (dtype !== 'float32') return refKernels.rmsNormBackward(x, w, rstd, g, rows, C, dtype);
    return call(() => {
      const px = at(x), pw = at(w), pr = at(rstd), pg = at(g);
      const nth = threadsFor(8 * rows * C);
      const pdx = out(rows * C); // [rows, C]
      const dwPart = rt.temp(nth * C * 4); // [nth, C] per-thread partial sums of dw, added up by the last thread
      const pdw = out(C); // [C]
      rt.run('rmsNormBackward', nth, { x: px, w: pw, rstd: pr, g: pg, dx: pdx, dwPart, dwOut: pdw, counter: rt.counter(), rows, C });
      return { dx: take(pdx), dw: take(pdw) };
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
    const f = rt.blocks.f32, c0 = pc >>> 2, s0 = ps >>> 2;
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
    // the table needs the largest position (positions are host data the model made, not token ids)
    const pos = I(positions);
    let maxPos = 0, minPos = 0;
    for (let i = 0; i < pos.length; i++) { maxPos = Math.max(maxPos, pos[i]!); minPos = Math.min(minPos, pos[i]!); }
    if (dtype !== 'float32' || minPos < 0 || maxPos > 1 << 20 || B * T * H * HD < 1024) {
      return refKernels.rope(x, B, T, H, HD, positions, invFreq, scaling, inverse, dtype);
    }
    const P = maxPos + 1, n = B * T * H * HD;
    return call(() => {
      const [cosT, sinT] = ropeTable(invFreq, P, scaling, inverse);
      const px = at(x), pp = at(pos), po = out(n); // [B, T, H, HD]
      rt.run('rope', threadsFor(ELEMENTWISE_FLOP * n), { x: px, out: po, positions: pp, cosT, sinT, BT: B * T, H, HD });
      return take(po);
    });
  };

  const embedding: KernelTable['embedding'] = (w, V, C, ids, N, dtype) => {
    const kind = halfKind(dtype);
    if (kind) {
      const host = ctx.hostHalf(w);
      if (host) {
        // a half table outside the wasm memory (frozen weights live there): only the N rows asked for are converted,
        // straight into the output, instead of copying a 525 MB table in to read 256 rows of it. The ids are in
        // host memory already (the wasm memory); an id outside [0, V) gives a NaN row, as the wasm kernel does.
        return call(() => {
          const pi = at(ids), po = out(N * C); // [N, C] f32
          const idv = new Int32Array(rt.memory.buffer, pi, N);
          const o = new Float32Array(rt.memory.buffer, po, N * C);
          for (let n = 0; n < N; n++) {
            const id = idv[n]!;
            if (id < 0 || id >= V) o.fill(NaN, n * C, n * C + C);
            else halfToFloat32(host.subarray(id * C, id * C + C), dtype as HalfDType, o.subarray(n * C, n * C + C));
          }
          return take(po);
        });
      }
      // a half table (frozen) in the wasm memory: rows converted to f32 as they are gathered
      return call(() => {
        const pw = at(w), pi = at(ids), po = out(N * C); // [N, C] f32
        rt.run('gatherRowsHalf', threadsFor(ELEMENTWISE_FLOP * N * C), { w: pw, ids: pi, out: po, N, V, C, kind });
        return take(po);
      });
    }
    if (dtype !== 'float32') return refKernels.embedding(w, V, C, ids, N, dtype);
    return call(() => {
      const pw = at(w), pi = at(ids), po = out(N * C); // [N, C]
      rt.run('gatherRows', threadsFor(ELEMENTWISE_FLOP * N * C), { w: pw, ids: pi, out: po, N, V, C });
      return take(po);
    });
  };

  const embeddingBackward: KernelTable['embeddingBackward'] = (g, ids, N, V, C, dtype, into) => {
    if (dtype !== 'float32') return refKernels.embeddingBackward(g, ids, N, V, C, dtype, into);
    return call(() => {
      const pg = at(g), pi = at(ids);
      const pdw = into ? at(into) : out(V * C); // dW [V, C]
      rt.run('scatterAddRows', threadsFor(ELEMENTWISE_FLOP * ((into ? 0 : V * C) + N * C)),
        { g: pg, ids: pi, dw: pdw, N, V, C, zero: into ? 0 : 1 });
      if (!into) return take(pdw);
      ctx.writeBack(into, pdw, V * C);
      return into;
    });
  };

  return { rmsNorm, rmsNormBackward, rope, embedding, embeddingBackward };
}
