// Writes randomly initialised BF16 checkpoints in the real shapes of Llama-3.2-1B-Instruct and Qwen3-1.7B (two
// shards, real config.json and tokenizer) into a Hugging Face cache, for `--from=org/name` tests and benches
// (bench/real-shape.ts says how). Never commit the output. Needs `npm run build` first.
//   node tools/make-real-shape.mjs [--hf-home DIR] [--model llama-3.2-1b|qwen3-1.7b|all] [--layers N] [--seed S]
// --hf-home defaults to $HF_HOME, else ./.cache/huggingface (not your real cache: these weights are random).
import { join } from 'node:path';
import { makeRealShapeCheckpoint, REAL_SHAPES } from '../dist/bench/real-shape.js';

const USAGE = 'usage: node tools/make-real-shape.mjs [--hf-home DIR] [--model llama-3.2-1b|qwen3-1.7b|all] [--layers N] [--seed S]';
const args = process.argv.slice(2);
const opts = { hfHome: process.env.HF_HOME ?? join('.cache', 'huggingface'), model: 'all', layers: undefined, seed: 0 };
for (let i = 0; i < args.length; i++) {
  const [key, inline] = args[i].split('=', 2);
  const value = () => inline ?? args[++i];
  if (key === '--hf-home') opts.hfHome = value();
  else if (key === '--model') opts.model = value();
  else if (key === '--layers') opts.layers = Number(value());
  else if (key === '--seed') opts.seed = Number(value());
  else if (key === '--help' || key === '-h') { console.log(USAGE); process.exit(0); }
  else { console.error(`unknown argument ${args[i]}\n${USAGE}`); process.exit(2); }
}
const names = opts.model === 'all' ? REAL_SHAPES : [opts.model];
for (const name of names) {
  if (!REAL_SHAPES.includes(name)) { console.error(`unknown --model ${name}; expected one of ${REAL_SHAPES.join(', ')} or all`); process.exit(2); }
  const t0 = performance.now();
  const r = await makeRealShapeCheckpoint({ hfHome: opts.hfHome, name, layers: opts.layers, seed: opts.seed });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`${r.repo}: ${(r.parameters / 1e9).toFixed(3)} B parameters, ${(r.bytes / 1e9).toFixed(2)} GB BF16 in ${r.files.join(' + ')} (${s} s)\n  ${r.snapshot}`);
}
console.log(`use it offline: HF_HOME=${opts.hfHome} HF_HUB_OFFLINE=1 npx llamatrain sft --from=<org/name> …`);
