import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { LlamaForCausalLM, NonFiniteError } from '../../src/index.js';
import { loadCheckpoint } from '../../src/node.js';
import { ListSource, cfg, makeTrainer, randomBatches } from './util.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-ckpt-'));

test('gradient accumulation: K micro-batches with numItemsInBatch give the full batch step', async () => {
  // The same 4 rows as one micro-batch of 4 or as 2 micro-batches of 2 (unequal valid counts).
  const rows = randomBatches(1, 4, 10, 48, 5)[0]!;
  const half = (a: Int32Array, i: number) => a.slice(i * 20, i * 20 + 20);
  const split = [0, 1].map((i) => ({ shape: [2, 10] as const, inputIds: half(rows.inputIds, i), labels: half(rows.labels, i), attentionMask: half(rows.attentionMask!, i) }));
  const a = new LlamaForCausalLM(cfg, { seed: 1 }), b = new LlamaForCausalLM(cfg, { seed: 1 });
  const ta = makeTrainer(a, new ListSource([rows]), { gradAccumSteps: 1 });
  const tb = makeTrainer(b, new ListSource(split), { gradAccumSteps: 2 });
  for (let s = 0; s < 3; s++) {
    const [ma, mb] = [(await ta.trainStep())!, (await tb.trainStep())!];
    assert.ok(Math.abs(ma.loss - mb.loss) < 1e-6 * ma.loss, `step ${s}: loss ${ma.loss} vs ${mb.loss}`);
    assert.ok(Math.abs(ma.gradNorm - mb.gradNorm) < 1e-5 * ma.gradNorm);
    assert.equal(ma.targets, mb.targets);
  }
  const wa = a.model.layers[1]!.mlp.downProj.weight.dataSync(), wb = b.model.layers[1]!.mlp.downProj.weight.dataSync();
  for (let i = 0; i < wa.length; i++) assert.ok(Math.abs(wa[i]! - wb[i]!) < 1e-6);
});

test('training lowers the loss; metrics are reported per step with the lr of that step', async () => {
  const model = new LlamaForCausalLM(cfg, { seed: 2 });
  const batches = randomBatches(1, 4, 12, 8, 3); // tiny vocabulary subset: learnable
  const trainer = makeTrainer(model, new ListSource(batches), { maxSteps: 8, gradAccumSteps: 1 });
  const seen: { step: number; loss: number; lr: number }[] = [];
  trainer.on('step', (m) => seen.push(m));
  await trainer.train();
  assert.deepEqual(seen.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(seen[0]!.lr, 0); // warmup starts at 0 (HF / LambdaLR semantics)
  assert.ok(Math.abs(seen[1]!.lr - 5e-3) < 1e-15);
  assert.ok(seen[7]!.loss < seen[1]!.loss - 0.3, `loss ${seen[1]!.loss} → ${seen[7]!.loss}`);
});

test('resume from a checkpoint at step k gives bit-identical losses to an uninterrupted run', async () => {
  const batches = randomBatches(5, 2, 9, 48, 11);
  const full = makeTrainer(new LlamaForCausalLM(cfg, { seed: 4 }), new ListSource(batches));
  const lossesFull: number[] = [];
  full.on('step', (m) => lossesFull.push(m.loss));
  await full.train();

  const root = tmp();
  const first = makeTrainer(new LlamaForCausalLM(cfg, { seed: 4 }), new ListSource(batches));
  const lossesA: number[] = [];
  first.on('step', (m) => lossesA.push(m.loss));
  await first.train(3);
  await first.saveCheckpoint(root);

  const { model, state } = await loadCheckpoint(root);
  assert.equal(state.step, 3);
  const resumed = makeTrainer(model, new ListSource(batches));
  resumed.loadState(state);
  const lossesB: number[] = [];
  resumed.on('step', (m) => lossesB.push(m.loss));
  await resumed.train();
  assert.deepEqual([...lossesA, ...lossesB], lossesFull);
});

test('a NaN in a gradient stops training with a message naming the step and the parameter', async () => {
  const model = new LlamaForCausalLM(cfg, { seed: 5 });
  const trainer = makeTrainer(model, new ListSource(randomBatches(2, 2, 8, 48, 1)));
  trainer.on('afterBackward', ({ step, model: m }) => {
    if (step !== 3) return;
    const g = m.model.layers[1]!.selfAttn.vProj.weight.grad!;
    const d = g.dataSync(); d[7] = NaN; g.storage = g.backend.upload(d);
  });
  await assert.rejects(() => trainer.train(), (e: unknown) => {
    assert.ok(e instanceof NonFiniteError);
    assert.match(e.message, /step 3: the gradient norm is NaN; the first parameter with a non-finite gradient is model\.layers\.1\.self_attn\.v_proj\.weight/);
    return true;
  });
  assert.equal(trainer.step, 2, 'no update happened at the poisoned step');
  // skip mode drops the update and goes on
  const m2 = new LlamaForCausalLM(cfg, { seed: 5 });
  const t2 = makeTrainer(m2, new ListSource(randomBatches(2, 2, 8, 48, 1)), { onNonFinite: 'skip', maxSteps: 4 });
  const before = new Map<number, Float32Array>();
  t2.on('afterBackward', ({ step, model: m }) => {
    if (step !== 3) return;
    before.set(step, m.model.norm.weight.dataSync() as Float32Array);
    const g = m.model.norm.weight.grad!; const d = g.dataSync(); d[0] = Infinity; g.storage = g.backend.upload(d);
  });
  const skipped: boolean[] = [];
  t2.on('step', (m) => { skipped.push(m.skipped); if (m.step === 3) assert.deepEqual(m2.model.norm.weight.dataSync(), before.get(3)); });
  await t2.train();
  assert.deepEqual(skipped, [false, false, true, false]);
  assert.ok(m2.parameters().every((p) => p.dataSync().every(Number.isFinite)));
});

test('kill -9 during a checkpoint write leaves the previous checkpoint loadable', async () => {
  const root = tmp();
  const child = spawn(process.execPath, [join('dist', 'test', 'train', 'checkpoint-child.js'), root], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('WRITING step 2')) { child.kill('SIGKILL'); resolve(); }
    });
    child.on('exit', (code) => { if (!out.includes('WRITING step 2')) reject(new Error(`child exited early (${code}): ${out}`)); });
  });
  await new Promise((r) => child.on('exit', r));
  assert.ok(readdirSync(root).some((n) => n.startsWith('.tmp-step-00000002')), 'the interrupted save left only a temporary directory');
  assert.ok(!existsSync(join(root, 'step-00000002')));
  const { model, state } = await loadCheckpoint(root);
  assert.equal(state.step, 1);
  assert.equal(model.config.vocabSize, 48);
});
