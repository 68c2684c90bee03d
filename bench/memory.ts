// Where a training step's memory peaks on the wasm heap (wasm or native backend): runs warm-up steps, then one traced
// step of forward (fused loss) + backward + clipping + AdamW, as bench/train.ts does, and prints the heap's high
// water, the bytes in blocks at the traced step's peak, the phase and allocation that reached it, and the live
// blocks at that moment by size. The gap between high water and peak in use is holes the heap could not reuse.
//   npm run build && node dist/bench/memory.js [--config s15M|tiny] [--backend native|wasm] [--threads N]

import { AdamW, type Backend, LlamaForCausalLM, RNG, clipGradsByNorm, gradNormTensor, openScope, tensor } from '../src/index.js';
import { registerNativeBackend } from '../src/backends/native/index.js';
import { getRuntime, registerWasmBackend, shutdownWasmBackend } from '../src/backends/wasm/index.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1]! : d; };
const CONFIGS = {
  tiny: { dim: 64, layers: 2, heads: 4, ffn: 192, vocab: 512, seq: 128, batch: 8 },
  s15M: { dim: 288, layers: 6, heads: 6, ffn: 768, vocab: 32000, seq: 256, batch: 8 },
};
const name = opt('config', 's15M') as keyof typeof CONFIGS, c = CONFIGS[name], threads = Number(opt('threads', '2'));
const be: Backend = opt('backend', 'native') === 'native' ? await registerNativeBackend({ threads }) : await registerWasmBackend({ threads });
const heap = (await getRuntime(threads)).blocks;

const model = new LlamaForCausalLM({ vocabSize: c.vocab, hiddenSize: c.dim, intermediateSize: c.ffn, numHiddenLayers: c.layers,
  numAttentionHeads: c.heads, numKeyValueHeads: c.heads, tieWordEmbeddings: true, maxPositionEmbeddings: c.seq }, { backend: be, seed: 0 });
const params = [...model.parameters()];
const opt_ = new AdamW(params, { lr: 3e-4, betas: [0.9, 0.95], weightDecay: 0.1 });
const rng = new RNG(1);
const ids = tensor(Int32Array.from({ length: c.batch * c.seq }, () => Math.floor(rng.uniform() * c.vocab)), [c.batch, c.seq], 'int32', be);

const MB = (b: number) => (b / 2 ** 20).toFixed(1);
let phase = '', tracing = false, peak = 0, peakAt = '', peakSizes = '';
const alloc = heap.alloc.bind(heap);
heap.alloc = (bytes: number) => {
  const p = alloc(bytes);
  const inUse = tracing ? heap.inUse : 0;
  if (inUse > peak) {
    peak = inUse;
    peakAt = `${phase}, allocating ${MB(bytes)} MB`;
    const bySize = new Map<number, number>();
    for (const size of heap.blockSizes()) bySize.set(size, (bySize.get(size) ?? 0) + 1);
    peakSizes = [...bySize].sort((a, b) => b[0] * b[1] - a[0] * a[1]).slice(0, 8)
      .map(([size, n]) => `${MB(size)} MB × ${n} = ${MB(size * n)} MB`).join('\n    ');
  }
  return p;
};

async function step(): Promise<void> {
  const scope = openScope(be);
  try {
    phase = 'forward';
    const { loss } = model.forward(ids, { labels: ids, fusedLoss: true });
    phase = 'backward';
    loss.backward();
    phase = 'optimizer';
    const norm = gradNormTensor(params)!;
    clipGradsByNorm(params, norm, 1.0);
    opt_.step({ gate: norm });
    opt_.zeroGrad();
    await loss.data();
  } finally {
    scope.close();
  }
}

for (let i = 0; i < 2; i++) await step();
tracing = true;
await step();
console.log(`${name} on ${be.name}, ${threads} thread(s): wasm heap high water ${MB(heap.highWater)} MB; traced step's peak in use ` +
  `${MB(peak)} MB (${peakAt}); parameters ${MB(params.reduce((s, p) => s + p.size * 4, 0))} MB\n  live blocks at the peak, by size:\n    ${peakSizes}`);
await shutdownWasmBackend();
