// --gradient-checkpointing on the command line: recorded in the run's config, free to toggle on --resume (it changes
// no number), and a run with it ends on the same bytes as one without — train, and sft with LoRA dropout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli as run, tinyCorpus } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-ckpt-'));
const trainSmall = ['--vocab-size=300', '--dim=16', '--layers=2', '--heads=2', '--kv-heads=1', '--seq-len=32', '--batch-size=2',
  '--warmup=1', '--eval-every=0', '--eval-batches=1', '--sample-tokens=0', '--progress=false', '--backend=wasm', '--threads=1', '--baseline=false'];

test('train --gradient-checkpointing: in train_config.json, toggled on --resume, the same weights as without', async () => {
  const dir = tmp(), data = tinyCorpus(dir);
  const plain = join(dir, 'plain'), ck = join(dir, 'ck');
  const a = await run(['train', `--data=${data}`, `--out=${plain}`, '--steps=4', ...trainSmall]);
  assert.equal(a.code, 0, a.err);
  const b = await run(['train', `--data=${data}`, `--out=${ck}`, '--steps=2', '--checkpoint-every=2', '--gradient-checkpointing', ...trainSmall]);
  assert.equal(b.code, 0, b.err);
  const config = () => JSON.parse(readFileSync(join(ck, 'train_config.json'), 'utf8'));
  assert.equal(config().gradientCheckpointing, true);
  const c = await run(['train', `--resume=${ck}`, '--steps=4', '--gradient-checkpointing=false']);
  assert.equal(c.code, 0, `${c.out}\n${c.err}`);
  assert.equal(config().gradientCheckpointing, false, 'the resumed run records what it used');
  const metrics = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((m) => m.type === 'train').map((m) => [m.step, m.loss, m.grad_norm ?? m.gradNorm]);
  assert.deepEqual(metrics(ck), metrics(plain));
  assert.ok(readFileSync(join(ck, 'model', 'model.safetensors')).equals(readFileSync(join(plain, 'model', 'model.safetensors'))),
    'the same weights, byte for byte');
});

test('sft --gradient-checkpointing with LoRA dropout: in sft_config.json, the same adapter bytes as without', async () => {
  const base = join(tmp(), 'base');
  const small = ['--dim=32', '--layers=2', '--heads=2', '--kv-heads=1', '--vocab-size=400', '--seq-len=64', '--batch-size=2', '--warmup=1',
    '--eval-every=0', '--eval-batches=1', '--sample-tokens=0', '--progress=false', '--backend=wasm', '--threads=1'];
  const a = await run(['sft', `--out=${base}`, '--steps=1', ...small]);
  assert.equal(a.code, 0, a.err);
  const lora = async (ckpt: boolean) => {
    const out = join(tmp(), 'lora');
    const r = await run(['sft', `--from=${base}`, `--out=${out}`, '--steps=3', '--lora-r=4', '--lora-dropout=0.2', '--target-modules=all-linear',
      ...(ckpt ? ['--gradient-checkpointing'] : []), ...small]);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.equal(JSON.parse(readFileSync(join(out, 'sft_config.json'), 'utf8')).gradientCheckpointing, ckpt);
    return readFileSync(join(out, 'adapter', 'adapter_model.safetensors'));
  };
  assert.ok((await lora(true)).equals(await lora(false)), 'the same adapters, byte for byte');
});
