// One LoRA step of a real-shaped BF16 checkpoint as `sft --from` runs it (loaded as stored, r 16 α 32 on q/k/v/o,
// fused loss, AdamW), on the native backend: seconds per step, RSS and the wasm heap. Pairs with
// bench/lora_torch.py --shape llama-3.2-1b --targets q_proj,k_proj,v_proj,o_proj (same token ids).
//   npm run build && node bench/lora-real.mjs <checkpoint dir> [ckpt] [steps]   (OPENBLAS_CORETYPE as you compare)
// The checkpoint: node tools/make-real-shape.mjs --hf-home DIR, then DIR/hub/models--…/snapshots/<commit>/.
import { registerNativeBackend } from '../dist/src/backends/native/index.js';
import { wasmHeapStats } from '../dist/src/backends/wasm/index.js';
import { loadPretrained } from '../dist/src/node.js';
import { AdamW, getPeftModel, tensor, withScope } from '../dist/src/index.js';
import { readFileSync } from 'node:fs';

const MB = 2 ** 20;
const rss = () => (process.memoryUsage().rss / MB).toFixed(0);
const heap = () => { const h = wasmHeapStats(); return h ? `heap in use ${(h.inUse / MB).toFixed(0)} MB, high water ${(h.highWater / MB).toFixed(0)} MB` : ''; };
const [dir, mode, stepsArg] = process.argv.slice(2);
if (!dir) { console.error('usage: node bench/lora-real.mjs <checkpoint dir> [ckpt] [steps]'); process.exit(2); }
console.log(readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU', '| OPENBLAS_CORETYPE', process.env.OPENBLAS_CORETYPE ?? '-');
const be = await registerNativeBackend({ threads: 2 });
const t0 = Date.now();
const model = await loadPretrained(dir, { backend: be, weights: 'as-stored' });
console.log(`loaded in ${(Date.now() - t0) / 1000} s, RSS ${rss()} MB, ${heap()}`);
const peft = getPeftModel(model, { r: 16, loraAlpha: 32, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
const opt = new AdamW(peft.parameters(), { lr: 1e-3 });
const T = 256, V = model.config.vocabSize;
const ids = Int32Array.from({ length: T }, (_, i) => (i * 7919 + 13) % V); // as bench/lora_torch.py
for (let s = 0; s < Number(stepsArg ?? 4); s++) {
  const t1 = Date.now();
  let loss = 0;
  await withScope(be, async () => {
    const x = tensor(ids, [1, T], 'int32', be);
    const out = peft.forward(x, { labels: x, fusedLoss: true, gradientCheckpointing: mode === 'ckpt' });
    out.loss.backward();
    opt.step(); opt.zeroGrad();
    loss = await out.loss.item();
  });
  console.log(`step ${s}: ${(Date.now() - t1) / 1000} s, loss ${loss.toFixed(4)}, RSS ${rss()} MB, ${heap()}`);
}
