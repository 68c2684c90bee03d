// `llamatrain sft` and `llamatrain chat` end to end on the shipped conversation file: assistant-only loss, a new
// model from scratch, checkpoints and resume, LoRA on it in PEFT's format, the merged export, streaming chat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { main } from '../../src/cli/main.js';
import { runCli } from './helpers.js';
import { EXAMPLE_CHAT, runChat } from '../../src/cli/sft.js';
import { parseSafetensors } from '../../src/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-sft-'));
/** The CLI in this process: stdout's lines (`out`), and stderr (`err`: the diagnostics) kept out of the test's output. */
const run = runCli;
const metrics = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const small = ['--lr=0.01', '--dim=32', '--layers=1', '--heads=2', '--kv-heads=1', '--vocab-size=400', '--seq-len=128', '--batch-size=4', '--warmup=2',
  '--eval-every=6', '--eval-batches=1', '--sample-tokens=6', '--checkpoint-every=6', '--progress=false', '--backend=ref'];

test('sft: a new model on the shipped conversations, loss on the assistant tokens only, resume, then LoRA and chat', async () => {
  assert.ok(existsSync(EXAMPLE_CHAT), `the package ships ${EXAMPLE_CHAT}`);
  const dir = join(tmp(), 'run');
  const a = await run(['sft', `--out=${dir}`, '--steps=12', ...small]);
  assert.equal(a.code, 0, a.out);
  assert.match(a.out, /what the loss sees \(⟦counted⟧, the rest is context\), first training conversation:\n<\|im_start\|>user\n.*<\|im_end\|>\n<\|im_start\|>assistant\n⟦The answer is .*<\|im_end\|>⟧/s);
  assert.match(a.out, /1800 training conversations → \d+ rows × 128 tokens \(1800 kept, 0 cut to --seq-len, 0 dropped/);
  const m = metrics(dir).filter((x) => x.type === 'train');
  assert.equal(m.length, 12);
  assert.ok(m[11].loss < m[0].loss - 1, `the assistant-only loss falls: ${m.map((x) => x.loss.toFixed(2))}`);
  for (const f of ['model/config.json', 'model/model.safetensors', 'model/tokenizer.json', 'model/tokenizer_config.json', 'loss.svg', 'samples.txt', 'summary.json']) {
    assert.ok(existsSync(join(dir, f)), f);
  }
  // resume from the step-12 checkpoint to 18 steps: the history is kept, the run goes on
  const b = await run(['sft', `--resume=${dir}`, '--steps=18', '--warmup=2']);
  assert.equal(b.code, 0, b.out);
  assert.match(b.out, /resuming at step 12/);
  assert.deepEqual(metrics(dir).filter((x) => x.type === 'train').map((x) => x.step), Array.from({ length: 18 }, (_, i) => i + 1));

  // LoRA on the trained model (the run directory stands for its model/): adapters in PEFT's format, a merged HF export
  const lora = join(tmp(), 'lora');
  const c = await run(['sft', `--from=${dir}`, `--out=${lora}`, '--steps=6', '--lora-r=4', '--target-modules=q_proj,v_proj', ...small]);
  assert.equal(c.code, 0, c.out);
  assert.match(c.out, /LoRA r=4 α=32 on q_proj, v_proj: [\d,]+ trainable of [\d,]+ parameters/);
  const cfg = JSON.parse(readFileSync(join(lora, 'adapter', 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.peft_type, 'LORA');
  assert.equal(cfg.r, 4);
  const keys = [...parseSafetensors(readFileSync(join(lora, 'adapter', 'adapter_model.safetensors'))).tensors.keys()];
  assert.deepEqual(keys.sort(), ['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight', 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight']);
  assert.ok(existsSync(join(lora, 'checkpoints', 'step-00000006', 'adapter_model.safetensors')), 'LoRA checkpoints hold the adapters');
  assert.ok(!existsSync(join(lora, 'checkpoints', 'step-00000006', 'model.safetensors')), 'not the frozen base');

  // chat: each line a user message, replies streamed through the template
  let out = '';
  await runChat([`--model=${join(dir, 'model')}`, `--adapter=${join(lora, 'adapter')}`, '--temperature=0', '--max-new-tokens=8', '--backend=ref'],
    (s) => { out += s; }, Readable.from(['What is 2 plus 3?\n', 'And 4 * 4 = ?\n']));
  const replies = out.split('\n').filter((l) => l.startsWith('assistant: '));
  assert.equal(replies.length, 2, out);
});

test('sft: clear errors for options and data', async () => {
  const bad = await run(['sft', '--lora-r=0']);
  assert.equal(bad.code, 2);
  const noFile = await run(['sft', `--data=${join(tmp(), 'nope.jsonl')}`, '--progress=false', '--backend=ref', `--out=${join(tmp(), 'x')}`]);
  assert.equal(noFile.code, 2); // refused before any work
  const chat = await run(['chat']);
  assert.equal(chat.code, 2);
});

test('sft --lora-dropout=0.3 killed with -9 and resumed ends on the adapter bytes of an unbroken run (the dropout RNG is in the checkpoint)', async () => {
  const base = join(tmp(), 'base');
  assert.equal((await run(['sft', `--out=${base}`, '--steps=3', ...small])).code, 0);
  const lora = ['--steps=8', '--lora-r=2', '--lora-dropout=0.3', '--checkpoint-every=1', ...small.filter((o) => !o.startsWith('--checkpoint-every'))];
  const ref = join(tmp(), 'ref');
  const a = await run(['sft', `--from=${base}`, `--out=${ref}`, ...lora]);
  assert.equal(a.code, 0, a.out);
  const out = join(tmp(), 'run');
  const p = spawn(process.execPath, ['bin/llamatrain.js', 'sft', `--from=${base}`, `--out=${out}`, ...lora], { stdio: 'ignore' });
  const exited = new Promise((res) => p.on('exit', res));
  const at = 2 + Math.floor(Math.random() * 4);
  for (;;) { // kill -9 once `at` steps are checkpointed
    if (existsSync(join(out, 'checkpoints', `step-${String(at).padStart(8, '0')}`))) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  p.kill('SIGKILL');
  await exited;
  const b = await run(['sft', `--resume=${out}`]);
  assert.equal(b.code, 0, b.out);
  const bytes = (d: string) => readFileSync(join(d, 'adapter', 'adapter_model.safetensors'));
  assert.ok(bytes(out).equals(bytes(ref)), `killed after step ${at}: the resumed adapter equals the unbroken run's byte for byte`);
});
