// Gradient checkpointing: the wasm heap's high water, peak RSS and step time of one training step with and without
// it, one setting per process (the high water only grows).
//   npm run build && node --expose-gc dist/bench/checkpointing.js --model s15M|smol135 [--mode full|lora] [--ckpt]
//     [--backend native|wasm] [--threads 2] [--batch 1] [--seq 1024] [--steps 2] [--warmup 1] [--layers L] [--json]
// s15M: bench/train.ts's model (dim 288, 6 layers, 6 heads, SwiGLU 768, vocab 32000, tied). smol135: SmolLM2-135M's
// shape (30 layers, hidden 576, 9 / 3 heads, SwiGLU 1536, vocab 49152, tied), random weights. A step = forward (fused
// loss) + backward + clip + AdamW + zeroGrad with one read at the end, as the Trainer; lora: r 16, α 32, 'all-linear'.
import { readFileSync, writeFileSync } from 'node:fs';
import { AdamW, type Backend, LlamaForCausalLM, clipGradsByNorm, getPeftModel, gradNormTensor, openScope, tensor } from '../src/index.js';
import { registerNativeBackend } from '../src/backends/native/index.js';
import { getRuntime, registerWasmBackend, shutdownWasmBackend } from '../src/backends/wasm/index.js';

const o = { model: 's15M', mode: 'full', ckpt: false, backend: 'native', threads: 2, batch: 1, seq: 1024, steps: 2, warmup: 1, layers: 0, json: false };
for (let i = 2; i < process.argv.length; i++) {
  const [k, v] = process.argv[i]!.replace(/^--/, '').split('=', 2) as [keyof typeof o, string | undefined];
  if (!(k in o)) throw new Error(`bench/checkpointing: unknown option --${k}; options: ${Object.keys(o).join(', ')}`);
  if (typeof o[k] === 'boolean') (o as Record<string, unknown>)[k] = v !== 'false';
  else (o as Record<string, unknown>)[k] = typeof o[k] === 'number' ? Number(v ?? process.argv[++i]) : (v ?? process.argv[++i]);
}
const MODELS = {
  s15M: { vocabSize: 32000, hiddenSize: 288, intermediateSize: 768, numHiddenLayers: 6, numAttentionHeads: 6, numKeyValueHeads: 6 },
  smol135: { vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3 },
  // Llama-3.2-1B's shape (its float32 weights pass the wasm heap's 4 GiB: run it with --layers of its 16)
  llama1b: { vocabSize: 128256, hiddenSize: 2048, intermediateSize: 8192, numHiddenLayers: 16, numAttentionHeads: 32, numKeyValueHeads: 8 },
};
const shape = MODELS[o.model as keyof typeof MODELS];
if (!shape) throw new Error(`bench/checkpointing: --model must be one of ${Object.keys(MODELS).join(', ')}, got ${o.model}`);

const hwmMB = () => Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const resetHWM = () => { try { writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not Linux */ } };

const be: Backend = o.backend === 'native' ? await registerNativeBackend({ threads: o.threads }) : await registerWasmBackend({ threads: o.threads });
const heap = (await getRuntime(o.threads)).blocks;
const model = new LlamaForCausalLM({ ...shape, ...(o.layers > 0 ? { numHiddenLayers: o.layers } : {}), tieWordEmbeddings: true,
  maxPositionEmbeddings: Math.max(2048, o.seq) },
  { backend: be, seed: 0, gradientCheckpointing: o.ckpt });
const peft = o.mode === 'lora' ? getPeftModel(model, { r: 16, loraAlpha: 32, targetModules: 'all-linear', seed: 0 }) : null;
const params = peft ? peft.parameters() : model.parameters();
const opt = new AdamW(params, { lr: 1e-4 });
const B = o.batch, T = o.seq, V = shape.vocabSize;
const ids = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % V), [B, T], 'int32', be);

// the bytes in blocks at the step's peak (the high water also counts holes the heap could not reuse)
let tracing = false, peak = 0;
const alloc = heap.alloc.bind(heap);
heap.alloc = (bytes: number) => {
  const p = alloc(bytes);
  if (tracing) peak = Math.max(peak, heap.inUse);
  return p;
};

async function step(): Promise<number> {
  const scope = openScope(be);
  try {
    const { loss } = model.forward(ids, { labels: ids, fusedLoss: true });
    loss.backward();
    const norm = gradNormTensor(params)!;
    clipGradsByNorm(params, norm, 1.0);
    opt.step({ gate: norm });
    opt.zeroGrad();
    return (await loss.data())[0]!;
  } finally {
    scope.close();
  }
}

for (let i = 0; i < o.warmup; i++) await step(); // warm-up: JIT, memory growth
(globalThis as { gc?: () => void }).gc?.();
resetHWM();
const before = heap.inUse;
tracing = true;
const times: number[] = [], cpu: number[] = [];
let loss = 0;
for (let s = 0; s < o.steps; s++) {
  const t0 = performance.now(), c0 = process.cpuUsage();
  loss = await step();
  times.push(performance.now() - t0);
  const c = process.cpuUsage(c0);
  cpu.push((c.user + c.system) / 1000);
}
const MB = (b: number) => +(b / 2 ** 20).toFixed(1);
const res = {
  model: o.model, layers: model.config.numHiddenLayers, mode: o.mode, gradientCheckpointing: o.ckpt, backend: be.name, threads: o.threads, batch: B, seq: T,
  stepMs: times.map((t) => +t.toFixed(0)),
  // CPU time of all the process's threads per step: the work done, less sensitive than wall time to a busy machine
  stepCpuMs: cpu.map((t) => +t.toFixed(0)), tokPerSec: +((B * T) / (Math.min(...times) / 1000)).toFixed(1),
  wasmHeapHighWaterMB: MB(heap.highWater), stepPeakInUseMB: MB(peak), betweenStepsMB: MB(before), peakRssMB: +hwmMB().toFixed(0), loss,
};
console.log(o.json ? JSON.stringify(res) : `${o.model} (${res.layers} layers) ${o.mode} B=${B} T=${T} ${be.name} ${o.threads}t checkpointing ${o.ckpt ? 'on' : 'off'}: ` +
  `heap high water ${res.wasmHeapHighWaterMB} MB, step peak in use ${res.stepPeakInUseMB} MB (between steps ${res.betweenStepsMB} MB), ` +
  `peak RSS ${res.peakRssMB} MB, steps ${res.stepMs.join(', ')} ms (${res.tokPerSec} tok/s; CPU ${res.stepCpuMs.join(', ')} ms), loss ${loss}`);
await shutdownWasmBackend();
