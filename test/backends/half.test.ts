// Half storage (bfloat16 / float16) of frozen weights in the wasm and native kernels: every one of the 65536 bit
// patterns converted by the row gather (embedding), the GEMM's packing (wasm) and the block conversion before the
// BLAS (native), checked against the host conversion; GEMMs with a half B equal the widened float32 GEMM (bit for
// bit on wasm, whose packing converts; ≤ 1e-6 on native, which converts blocks); and the wasm heap holds about
// half the bytes for a model loaded half.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Backend, RNG, type Tensor, embedding, float32ToHalf, halfTensor, halfToFloat32, linearCrossEntropy, matmul, refBackend, sum, tensor,
} from '../../src/index.js';
import { setHostHalfBlock } from '../../src/backends/wasm/kernels/context.js';
import { loadPretrained } from '../../src/node.js';
import { registerWasmBackend, setParallelThreshold, shutdownWasmBackend, wasmHeapOwns, wasmHeapStats } from '../../src/backends/wasm/index.js';
import { findBlas, registerNativeBackend } from '../../src/backends/native/index.js';
import { writeHalfSafetensors } from '../conformance/half.js';
import { relL2 } from '../helpers.js';

const DTYPES = ['bfloat16', 'float16'] as const;
const ALL = Uint16Array.from({ length: 65536 }, (_, i) => i);
const rng = new RNG(21);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** Equal as float32 values: NaN where NaN is expected, the same number otherwise (±0 compared by sign when `signs`). */
function sameValues(got: ArrayLike<number>, want: ArrayLike<number>, what: string, signs = true): void {
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    const ok = Number.isNaN(w) ? Number.isNaN(g) : signs ? Object.is(g, w) : g === w;
    if (!ok) assert.fail(`${what}: element ${i} (bits 0x${i.toString(16)}) is ${g}, expected ${w}`);
  }
}

let wasm: Backend;
let native: Backend | null = null;
before(async () => {
  wasm = await registerWasmBackend({ threads: 2 });
  if ((await findBlas()).blas) native = await registerNativeBackend({ threads: 2 });
});
after(async () => {
  setParallelThreshold(null);
  await shutdownWasmBackend();
});

describe('half kernels (wasm, native)', () => {
  // first: the heap holds nothing of other tests yet (their garbage is freed when the GC gets to it)
  test('the wasm heap: a model loaded half keeps its weight matrices outside (2 bytes each on the host), only norms inside', async () => {
    // an untied model whose matrices dominate: V 2048, C 128, 2 layers (0.85 M parameters)
    const C = 128, H = 256, V = 2048, L = 2;
    const dir = mkdtempSync(join(tmpdir(), 'llamatrain-half-heap-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({
      model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: C, intermediate_size: H, num_hidden_layers: L,
      num_attention_heads: 4, num_key_value_heads: 2, vocab_size: V, max_position_embeddings: 64, rms_norm_eps: 1e-5,
      tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
    }));
    const shapes: [string, number[]][] = [['model.embed_tokens.weight', [V, C]], ['lm_head.weight', [V, C]], ['model.norm.weight', [C]]];
    for (let l = 0; l < L; l++) {
      const p = `model.layers.${l}.`;
      shapes.push([`${p}self_attn.q_proj.weight`, [C, C]], [`${p}self_attn.k_proj.weight`, [C / 2, C]], [`${p}self_attn.v_proj.weight`, [C / 2, C]],
        [`${p}self_attn.o_proj.weight`, [C, C]], [`${p}mlp.gate_proj.weight`, [H, C]], [`${p}mlp.up_proj.weight`, [H, C]],
        [`${p}mlp.down_proj.weight`, [C, H]], [`${p}input_layernorm.weight`, [C]], [`${p}post_attention_layernorm.weight`, [C]]);
    }
    writeHalfSafetensors(join(dir, 'model.safetensors'),
      shapes.map(([n, s]) => [n, s, float32ToHalf(rand(s.reduce((a, b) => a * b, 1)).map((v) => v * 0.02), 'bfloat16')]), 'BF16');
    let f32Bytes = 0, vectorBytes = 0;
    for (const [, s] of shapes) { const n = s.reduce((a, b) => a * b, 1); f32Bytes += 4 * n; if (s.length === 1) vectorBytes += 4 * n; }
    const before = wasmHeapStats()!.inUse;
    const model = await loadPretrained(dir, { backend: wasm, weights: 'as-stored' });
    const used = wasmHeapStats()!.inUse - before;
    // the norms (float32) live in the heap; the matrices are host Uint16Arrays, copied in by the kernel call that reads them
    assert.ok(used >= vectorBytes && used <= vectorBytes + 64 * 1024, `the half model holds ${used} bytes of the heap; its norms are ${vectorBytes} (float32 weights: ${f32Bytes})`);
    let hostBytes = 0;
    for (const [, p] of model.namedParameters()) {
      if (p.dtype === 'bfloat16') { assert.ok(p.storage instanceof Uint16Array && !wasmHeapOwns(p.storage)); hostBytes += (p.storage as Uint16Array).byteLength; }
    }
    assert.equal(hostBytes, (f32Bytes - vectorBytes) / 2, 'every matrix in 2 bytes per element on the host');
    // and it computes: a forward pass on the half weights
    const ids = tensor(new Int32Array([1, 2, 3, 4]), [1, 4], 'int32', wasm);
    const logits = await model.forward(ids).logits!.data();
    assert.ok(logits.every((v) => Number.isFinite(v)));
  });

  test('embedding of a half table: all 65536 bit patterns (SIMD rows and scalar tails), every thread split', async () => {
    for (const be of [wasm, native, refBackend]) {
      if (!be) continue;
      for (const threshold of [null, 0]) {
        setParallelThreshold(threshold);
        for (const dtype of DTYPES) {
          const want = halfToFloat32(ALL, dtype);
          for (const [V, C] of [[256, 256], [65536 / 16, 16]] as const) {
            const ids = tensor(Int32Array.from({ length: V }, (_, i) => i), [V], 'int32', be);
            const got = await embedding(halfTensor(ALL, [V, C], dtype, be), ids).data();
            sameValues(got, want, `${be.name} ${dtype} embedding [${V}, ${C}]`);
          }
          // C = 7: rows that end inside a SIMD vector; ids out of order and repeated
          const C = 7, V = 9362, bits = ALL.subarray(0, V * C);
          const idList = Int32Array.from({ length: 40 }, (_, i) => (i * 2311) % V);
          const got = await embedding(halfTensor(bits, [V, C], dtype, be), tensor(idList, [40], 'int32', be)).data();
          const exp = new Float32Array(40 * C);
          idList.forEach((id, n) => exp.set(want.subarray(id * C, id * C + C), n * C));
          sameValues(got, exp, `${be.name} ${dtype} embedding C=7`);
        }
      }
      setParallelThreshold(null);
    }
  });

  test('matmul with a half B: all 65536 bit patterns through the GEMM (1 · B, both layouts)', async () => {
    for (const be of [wasm, native]) {
      if (!be) continue;
      for (const dtype of DTYPES) {
        const want = halfToFloat32(ALL, dtype);
        const one = tensor(new Float32Array([1]), [1, 1], 'float32', be);
        // B [1, 65536] (row-major packing) and Bᵀ stored [65536, 1] (the Linear layout)
        const rowMajor = await matmul(one, halfTensor(ALL, [1, 65536], dtype, be)).data();
        const linear = await matmul(one, halfTensor(ALL, [65536, 1], dtype, be), { transB: true }).data();
        // 1 · (−0) may come out +0 (BLAS adds to a zero accumulator): zeros compared without their sign
        sameValues(rowMajor, want, `${be.name} ${dtype} matmul B [1, N]`, false);
        sameValues(linear, want, `${be.name} ${dtype} matmul Bᵀ [N, 1]`, false);
      }
    }
  });

  test('a half weight outside the wasm memory is copied in by blocks of rows: the GEMM (both layouts) and the fused head agree', async () => {
    for (const be of [wasm, native]) {
      if (!be) continue;
      for (const dtype of DTYPES) {
        const [M, K, N] = [37, 300, 257];
        const bits = float32ToHalf(rand(K * N), dtype);
        for (const transB of [true, false]) {
          const shape = transB ? [N, K] : [K, N];
          const wh = halfTensor(bits, shape, dtype, be);
          assert.ok(!wasmHeapOwns(wh.storage), 'half weights stay outside the wasm memory');
          const wf = tensor(halfToFloat32(bits, dtype), shape, 'float32', be);
          const x = tensor(rand(M * K), [M, K], 'float32', be);
          const whole = await matmul(x, wh, { transB }).data();
          setHostHalfBlock(7 * 300 + 5); // 7 rows of 300 (or 8 of 257) per block: a ragged last block
          const blocked = await matmul(x, wh, { transB }).data();
          setHostHalfBlock(null);
          const f32 = await matmul(x, wf, { transB }).data();
          const what: string = `${be.name} ${dtype} transB=${transB}`;
          // on wasm, split columns (transB) compute each output as before; split depths add partial sums, and the
          // BLAS blocks its own way (float32 rounding)
          if (transB && be === wasm) assert.deepEqual([...blocked], [...whole], `${what}: blocks of columns are bit-identical`);
          assert.ok(relL2(blocked, f32) <= 1e-6, `${what}: blocked vs float32 rel ${relL2(blocked, f32)}`);
        }
        // the fused LM head over a half [V, C] weight, in blocks of its rows, forward and dH
        const [R, C, V] = [9, 64, 301];
        const head = float32ToHalf(rand(V * C), dtype);
        const hh = tensor(rand(R * C), [R, C], 'float32', be).requireGrad();
        const targets = tensor(Int32Array.from({ length: R }, (_, i) => (i * 37) % V), [R], 'int32', be);
        const run = async (w: Tensor) => {
          hh.grad = null;
          const l = linearCrossEntropy(hh, w, targets);
          const v = await l.item();
          l.backward();
          return { v, dh: await hh.grad!.data() };
        };
        setHostHalfBlock(10 * C + 3);
        const blocked = await run(halfTensor(head, [V, C], dtype, be));
        setHostHalfBlock(null);
        const f32 = await run(tensor(halfToFloat32(head, dtype), [V, C], 'float32', be));
        assert.ok(Math.abs(blocked.v - f32.v) <= 1e-5 * Math.abs(f32.v), `${be.name} ${dtype} fused loss ${blocked.v} vs ${f32.v}`);
        assert.ok(relL2(blocked.dh, f32.dh) <= 1e-5, `${be.name} ${dtype} fused dH rel ${relL2(blocked.dh, f32.dh)}`);
      }
    }
  });

  test('matmul with a half B equals the widened float32 matmul (edges, threads, native blocks), forward and dx', async () => {
    // [M, K, N]: edge tiles, K past one packing block (512), and B past one native conversion block (2^20 floats)
    const shapes: [number, number, number][] = [[1, 7, 5], [37, 29, 13], [50, 600, 70], [64, 1100, 1024], [9, 1024, 1100]];
    for (const be of [wasm, native]) {
      if (!be) continue;
      for (const dtype of DTYPES) {
        for (const [M, K, N] of shapes) {
          for (const transB of [true, false]) {
            const bits = float32ToHalf(rand(K * N), dtype);
            const shape = transB ? [N, K] : [K, N];
            const wh = halfTensor(bits, shape, dtype, be), wf = tensor(halfToFloat32(bits, dtype), shape, 'float32', be);
            const x = tensor(rand(M * K), [M, K], 'float32', be).requireGrad();
            const yh = matmul(x, wh, { transB }), yf = matmul(x, wf, { transB });
            const a = await yh.data(), b = await yf.data();
            sum(yh).backward();
            const dh = await x.grad!.data();
            x.grad = null;
            sum(yf).backward();
            const df = await x.grad!.data();
            const what: string = `${be.name} ${dtype} ${M}x${K}x${N} transB=${transB}`;
            if (be === wasm) {
              assert.deepEqual([...a], [...b], `${what}: bit-identical`);
              assert.deepEqual([...dh], [...df], `${what}: dx bit-identical`);
            } else {
              assert.ok(relL2(a, b) <= 1e-6, `${what}: rel ${relL2(a, b)}`);
              assert.ok(relL2(dh, df) <= 1e-6, `${what}: dx rel ${relL2(dh, df)}`);
            }
          }
        }
      }
    }
  });

});
