// Writes the inputs of the training-parity fixture (test/fixtures/train-parity): the initial weights of the `tiny`
// config saved by us, the batches exported by us, and the hyper-parameters. tools/pyref/train_ref.py then runs
// the same steps in PyTorch and writes expected.json. Run: npm run build && node tools/make-train-parity.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
import { LlamaForCausalLM, RNG, serializeSafetensors } from '../dist/src/index.js';
import { savePretrained } from '../dist/src/node.js';

const dir = 'test/fixtures/train-parity';
mkdirSync(dir, { recursive: true });
// `tiny` (bench/train.ts): dim 64, 2 layers, 4 heads, 2 KV heads, vocab 512, seq 128; SwiGLU 192 (llama rule), tied.
const config = {
  vocabSize: 512, hiddenSize: 64, intermediateSize: 192, numHiddenLayers: 2, numAttentionHeads: 4,
  numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: true, maxPositionEmbeddings: 128,
  initializerRange: 0.02,
};
const model = new LlamaForCausalLM(config, { seed: 1234 });
await savePretrained(model, dir);

const hyper = {
  steps: 30, microBatches: 2, microBatchSize: 2, seqLen: 128,
  optimizer: 'AdamW', lr: 3e-3, betas: [0.9, 0.95], eps: 1e-8,
  // two groups: weight decay on matrices (≥ 2-D), none on 1-D parameters (norm weights)
  weightDecay: 0.1, noDecay: '1-D parameters',
  schedule: { kind: 'warmup-cosine', warmupSteps: 5, totalSteps: 30, minLrRatio: 0.1 },
  clipGradNorm: 1.0,
  lossNormalisation: 'each micro-batch: sum of token losses / valid targets of the whole step (numItemsInBatch)',
};
writeFileSync(`${dir}/hyper.json`, JSON.stringify(hyper, null, 2) + '\n');

const rng = new RNG(99);
const tensors = {};
const { steps, microBatches, microBatchSize: b, seqLen: T } = hyper;
for (let s = 0; s < steps; s++) {
  for (let m = 0; m < microBatches; m++) {
    const ids = new Int32Array(b * T), mask = new Int32Array(b * T), labels = new Int32Array(b * T);
    for (let r = 0; r < b; r++) {
      // unequal valid-token counts: micro-batch 0 is nearly full, micro-batch 1 is heavily padded
      const len = m === 0 ? T - rng.int(16) : 16 + rng.int(64);
      for (let t = 0; t < T; t++) {
        const i = r * T + t;
        const real = t < len;
        // a skewed distribution (low ids likelier) so the loss has something to learn
        ids[i] = real ? Math.min(511, Math.floor(512 * rng.uniform() ** 3)) : 0;
        mask[i] = real ? 1 : 0;
        labels[i] = real ? ids[i] : -100;
      }
    }
    const p = `step${s}.micro${m}`;
    tensors[`${p}.input_ids`] = { dtype: 'int32', shape: [b, T], data: ids };
    tensors[`${p}.attention_mask`] = { dtype: 'int32', shape: [b, T], data: mask };
    tensors[`${p}.labels`] = { dtype: 'int32', shape: [b, T], data: labels };
  }
}
writeFileSync(`${dir}/batches.safetensors`, serializeSafetensors(tensors));
console.log(`wrote ${dir}: model.safetensors, config.json, batches.safetensors, hyper.json`);
