// One LoRA step (forward with the fused loss + backward + AdamW on the adapters) of a BF16 checkpoint loaded with its
// weight matrices kept as stored (bfloat16, frozen) against the same checkpoint widened to float32, on the wasm or
// native backend: tokens/s, the wasm heap (weights after loading, high water after the steps) and the process RSS.
// Run each configuration in its own process (the heap's high water never goes down):
//   npm run build && node dist/bench/half.js --make /tmp/half-bench          # writes a random BF16 checkpoint once
//   node dist/bench/half.js --dir /tmp/half-bench --backend native --weights as-stored   (or float32; --backend wasm)

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdamW, type Backend, RNG, float32ToHalf, getPeftModel, tensor, withScope } from '../src/index.js';
import { loadPretrained } from '../src/node.js';
import { registerNativeBackend } from '../src/backends/native/index.js';
import { registerWasmBackend, shutdownWasmBackend, wasmHeapStats } from '../src/backends/wasm/index.js';
import { writeHalfSafetensors } from '../test/conformance/half.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1]! : d; };
// 126 M parameters: 504 MB in float32, 252 MB in bfloat16 (a Llama-style 1024-wide, 8-layer model, vocab 32000, tied)
const C = 1024, H = 2816, L = 8, V = 32000, NH = 16, NKV = 8, HD = C / NH;
const MB = (b: number) => (b / 2 ** 20).toFixed(0);

if (argv.includes('--make')) {
  const dir = opt('make', '/tmp/half-bench');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: C, intermediate_size: H, num_hidden_layers: L,
    num_attention_heads: NH, num_key_value_heads: NKV, vocab_size: V, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
  }));
  const rng = new RNG(0);
  const t = (name: string, shape: number[], std: number): [string, number[], Uint16Array] => {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = std === 0 ? 1 : rng.normal() * std;
    return [name, shape, float32ToHalf(v, 'bfloat16')];
  };
  const list = [t('model.embed_tokens.weight', [V, C], 0.02), t('model.norm.weight', [C], 0)];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    list.push(t(`${p}self_attn.q_proj.weight`, [NH * HD, C], 0.02), t(`${p}self_attn.k_proj.weight`, [NKV * HD, C], 0.02),
      t(`${p}self_attn.v_proj.weight`, [NKV * HD, C], 0.02), t(`${p}self_attn.o_proj.weight`, [C, NH * HD], 0.02),
      t(`${p}mlp.gate_proj.weight`, [H, C], 0.02), t(`${p}mlp.up_proj.weight`, [H, C], 0.02), t(`${p}mlp.down_proj.weight`, [C, H], 0.02),
      t(`${p}input_layernorm.weight`, [C], 0), t(`${p}post_attention_layernorm.weight`, [C], 0));
  }
  writeHalfSafetensors(join(dir, 'model.safetensors'), list, 'BF16');
  console.log(`wrote ${dir}`);
  process.exit(0);
}

if (argv.includes('--micro')) {
  // matmuls of one Linear (x·Wᵀ forward, dy·W backward) with W in bfloat16 vs float32: wall and CPU time per call
  const th = Number(opt('threads', '2'));
  const be: Backend = opt('backend', 'native') === 'native' ? await registerNativeBackend({ threads: th }) : await registerWasmBackend({ threads: th });
  const rng = new RNG(2);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const { halfTensor, matmul } = await import('../src/index.js');
  for (const [M, K, N] of [[256, 1024, 2816], [256, 2816, 1024], [256, 1024, 32000]] as const) {
    const wv = rand(N * K), bits = float32ToHalf(wv, 'bfloat16');
    const { halfToFloat32 } = await import('../src/index.js');
    const wh = halfTensor(bits, [N, K], 'bfloat16', be), wf = tensor(halfToFloat32(bits, 'bfloat16'), [N, K], 'float32', be);
    const x = tensor(rand(M * K), [M, K], 'float32', be), dy = tensor(rand(M * N), [M, N], 'float32', be);
    const row: Record<string, string | number> = { shape: `x[${M},${K}]·W[${N},${K}]ᵀ` };
    for (const [name, w] of [['bf16', wh], ['f32', wf]] as const) {
      for (const dir of ['fwd', 'bwd'] as const) {
        const f = () => withScope(be, () => { dir === 'fwd' ? matmul(x, w, { transB: true }) : matmul(dy, w); });
        f();
        const reps = 5, c0 = process.cpuUsage(), t0 = performance.now();
        for (let r = 0; r < reps; r++) f();
        const wall = (performance.now() - t0) / reps, cpu = process.cpuUsage(c0);
        row[`${name} ${dir} ms`] = +wall.toFixed(1);
        row[`${name} ${dir} cpu ms`] = +((cpu.user + cpu.system) / 1000 / reps).toFixed(1);
      }
    }
    console.log(JSON.stringify(row));
  }
  await shutdownWasmBackend();
  process.exit(0);
}

const dir = opt('dir', '/tmp/half-bench'), threads = Number(opt('threads', '2')), T = Number(opt('seq', '256'));
const weights = opt('weights', 'as-stored') as 'as-stored' | 'float32', backendName = opt('backend', 'native');
const steps = Number(opt('steps', '3'));
const be: Backend = backendName === 'native' ? await registerNativeBackend({ threads }) : await registerWasmBackend({ threads });
const h0 = wasmHeapStats()!.inUse;
const t0 = performance.now();
const model = await loadPretrained(dir, { backend: be, weights });
const loadS = (performance.now() - t0) / 1000;
const weightsHeap = wasmHeapStats()!.inUse - h0;
const peft = getPeftModel(model, { r: 16, loraAlpha: 32, targetModules: 'all-linear' });
const optimizer = new AdamW(peft.parameters(), { lr: 1e-4 });
const rng = new RNG(1);
const ids = Int32Array.from({ length: T }, () => Math.floor(rng.uniform() * V));
const times: number[] = [];
let lossV = 0;
for (let s = 0; s <= steps; s++) {
  const t1 = performance.now();
  lossV = await withScope(be, async () => {
    const x = tensor(ids, [1, T], 'int32', be);
    const { loss } = peft.forward(x, { labels: x, fusedLoss: true });
    loss!.backward();
    optimizer.step();
    optimizer.zeroGrad();
    return loss!.item();
  });
  if (s > 0) times.push(performance.now() - t1); // step 0 is a warm-up
}
const mean = times.reduce((a, b) => a + b, 0) / times.length;
console.log(JSON.stringify({
  backend: be.name, weights, threads, tokensPerStep: T, loadS: +loadS.toFixed(1), sPerStep: +(mean / 1000).toFixed(3),
  tokensPerS: +(T / (mean / 1000)).toFixed(1), weightsHeapMB: +MB(weightsHeap), heapHighWaterMB: +MB(wasmHeapStats()!.highWater),
  rssMB: +MB(process.memoryUsage().rss), loss: +lossV.toFixed(4), stepsMs: times.map((t) => Math.round(t)),
}));
await shutdownWasmBackend();
