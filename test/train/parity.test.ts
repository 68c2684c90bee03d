// 30 optimizer steps of the `tiny` config, step for step equal to PyTorch (tools/pyref/train_ref.py): AdamW with
// weight-decay groups, warmup + cosine, 2 micro-batches per step with unequal valid-token counts, clipping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  AdamW, type Batch, LRScheduler, LlamaForCausalLM, Trainer, decayGroups, parseSafetensors, warmupCosine,
} from '../../src/index.js';
import { loadPretrained } from '../../src/node.js';
import { fixturePath } from '../helpers.js';
import { ListSource } from './util.js';

test('training parity with PyTorch: losses, grad norms and learning rates at every step', async () => {
  const dir = fixturePath('train-parity');
  const hyper = JSON.parse(readFileSync(`${dir}/hyper.json`, 'utf8'));
  const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8')).steps as { loss: number; grad_norm: number; lr: number; n_items: number }[];
  const raw = parseSafetensors(readFileSync(`${dir}/batches.safetensors`)).tensors;
  const batches: Batch[] = [];
  for (let s = 0; s < hyper.steps; s++) for (let m = 0; m < hyper.microBatches; m++) {
    const g = (k: string) => raw.get(`step${s}.micro${m}.${k}`)!.data as Int32Array;
    batches.push({ shape: [hyper.microBatchSize, hyper.seqLen], inputIds: g('input_ids'), attentionMask: g('attention_mask'), labels: g('labels') });
  }
  const model = await loadPretrained(dir);
  const optimizer = new AdamW(decayGroups(model.namedParameters(), hyper.weightDecay), { lr: hyper.lr, betas: hyper.betas, eps: hyper.eps });
  assert.equal(optimizer.paramGroups.length, 2);
  const { warmupSteps, totalSteps, minLrRatio } = hyper.schedule;
  const scheduler = new LRScheduler(optimizer, warmupCosine({ warmupSteps, totalSteps, minLrRatio }));
  const trainer = new Trainer({
    model, optimizer, scheduler, train: new ListSource(batches), gradAccumSteps: hyper.microBatches, maxSteps: hyper.steps,
    clipGradNorm: hyper.clipGradNorm,
  });
  let worstLoss = 0, worstNorm = 0;
  trainer.on('step', (m) => {
    const e = expected[m.step - 1]!;
    assert.equal(m.targets, e.n_items, `step ${m.step}: valid targets`);
    const dl = Math.abs(m.loss - e.loss) / e.loss, dn = Math.abs(m.gradNorm - e.grad_norm) / e.grad_norm;
    worstLoss = Math.max(worstLoss, dl); worstNorm = Math.max(worstNorm, dn);
    assert.ok(dl <= 1e-4, `step ${m.step}: loss ${m.loss} vs PyTorch ${e.loss} (rel ${dl})`);
    assert.ok(dn <= 1e-4, `step ${m.step}: grad norm ${m.gradNorm} vs PyTorch ${e.grad_norm} (rel ${dn})`);
    // exact, but for the last bit of cos (V8's Math.cos vs glibc's)
    assert.ok(Math.abs(m.lr - e.lr) <= 2 ** -52 * e.lr, `step ${m.step}: lr ${m.lr} vs PyTorch ${e.lr}`);
  });
  await trainer.train();
  assert.equal(trainer.step, 30);
  console.log(`# train parity: worst rel loss diff ${worstLoss.toExponential(2)}, worst rel grad-norm diff ${worstNorm.toExponential(2)}`);
});
