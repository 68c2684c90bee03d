// LoRA vs full fine-tuning step on a model of SmolLM2-135M's shape (30 layers, hidden 576, 9 heads / 3 KV heads,
// SwiGLU 1536, vocab 49152, tied; random weights): tokens/s and peak RSS of one mode per process.
//   npm run build && node --expose-gc dist/bench/lora.js --mode lora|full [--threads N] [--steps 3] [--batch 2] [--seq 256] [--json]
// A step = forward + fused loss + backward + global-norm clip (1.0) + AdamW + zeroGrad, one read at the end (as the
// Trainer). Peak RSS is measured over the timed steps (after the warm-up step; the mark is reset). LoRA: r 16, α 32, every Linear but the head (PEFT's 'all-linear'); the base is frozen, so backward skips
// every weight-gradient GEMM and the head's [V, C] GEMMs. bench/lora_torch.py measures the same in PyTorch.
import { readFileSync, writeFileSync } from 'node:fs';
import {
  AdamW, LlamaForCausalLM, type Tensor, clipGradsByNorm, getPeftModel, gradNormTensor, openScope, tensor,
} from '../src/index.js';
import { registerWasmBackend, shutdownWasmBackend, wasmThreads } from '../src/backends/wasm/index.js';

const o = { mode: 'lora', threads: 0, steps: 3, batch: 2, seq: 256, r: 16, json: false };
for (let i = 2; i < process.argv.length; i++) {
  const [k, v] = process.argv[i]!.replace(/^--/, '').split('=', 2) as [keyof typeof o, string | undefined];
  if (!(k in o)) throw new Error(`bench/lora: unknown option --${k}; options: ${Object.keys(o).join(', ')}`);
  if (typeof o[k] === 'boolean') (o as Record<string, unknown>)[k] = v !== 'false';
  else (o as Record<string, unknown>)[k] = typeof o[k] === 'number' ? Number(v ?? process.argv[++i]) : (v ?? process.argv[++i]);
}
if (o.mode !== 'lora' && o.mode !== 'full') throw new Error(`bench/lora: --mode must be lora or full, got ${o.mode}`);

const hwmMB = () => Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
/** Resets the peak-RSS mark (Linux), so the peak is that of the training steps, not of building the model. */
const resetHWM = () => { try { writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not Linux */ } };

const be = await registerWasmBackend(o.threads > 0 ? { threads: o.threads } : {});
const model = new LlamaForCausalLM({
  vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3,
  tieWordEmbeddings: true, maxPositionEmbeddings: 2048,
}, { backend: be, seed: 0 });
const peft = o.mode === 'lora' ? getPeftModel(model, { r: o.r, loraAlpha: 2 * o.r, targetModules: 'all-linear', seed: 0 }) : null;
const params = peft ? peft.parameters() : model.parameters();
const opt = new AdamW(params, { lr: 1e-4 });
const B = o.batch, T = o.seq;
const ids = tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % 49152), [B, T], 'int32', be);

async function step(): Promise<number> {
  const scope = openScope(be);
  try {
    const { loss } = model.forward(ids, { labels: ids, fusedLoss: true });
    loss!.backward();
    const norm = gradNormTensor(params)!;
    clipGradsByNorm(params, norm, 1.0);
    opt.step({ gate: norm });
    opt.zeroGrad();
    return (await (loss as Tensor).data())[0]!;
  } finally {
    scope.close();
  }
}

await step(); // warm-up: JIT, memory growth, optimizer state
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) console.error('bench/lora: run node with --expose-gc, or the peak RSS includes the garbage of building the model');
gc?.();
resetHWM();
const times: number[] = [];
let last = 0;
for (let s = 0; s < o.steps; s++) {
  const t0 = performance.now();
  last = await step();
  times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const ms = times[Math.floor(times.length / 2)]!;
const trainable = params.reduce((n, p) => n + p.size, 0);
const res = {
  system: 'llamatrain', mode: o.mode, threads: wasmThreads(), batch: B, seq: T, r: o.mode === 'lora' ? o.r : null,
  trainableParams: trainable, totalParams: model.numParameters() + (peft ? trainable : 0),
  tokPerSec: +((B * T) / (ms / 1000)).toFixed(1), stepMs: times.map((t) => +t.toFixed(0)), peakRssMB: +hwmMB().toFixed(0),
  // the wasm memory the tensors reached (weights, gradients, optimizer state, activations): the part a GC cannot shrink
  wasmHeapMB: +((be.memory as unknown as { highWater: number }).highWater / 2 ** 20).toFixed(0), loss: last,
};
console.log(o.json ? JSON.stringify(res) : `${o.mode}: ${res.tokPerSec} tok/s (median of ${o.steps} steps ${res.stepMs.join(', ')} ms), ` +
  `peak RSS ${res.peakRssMB} MB (wasm heap ${res.wasmHeapMB} MB), ${trainable.toLocaleString('en')} trainable of ${res.totalParams.toLocaleString('en')}`);
await shutdownWasmBackend();
