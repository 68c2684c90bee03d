import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { parseOptions, UsageError } from '../../src/cli/options.js';
import { trainSchema } from '../../src/cli/train.js';
import { tokenByteLengths } from '../../src/cli/shared.js';
import { countBytes, trainByteLevelBPE } from '../../src/index.js';
import { loadCheckpoint, loadPretrained } from '../../src/node.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-cli-'));
async function run(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
}

/** A small JSONL corpus of simple English sentences. */
function corpus(dir: string): string {
  const words = ['the cat sat on the mat', 'a dog ran in the park', 'the sun is warm today', 'we read a good book', 'she likes green tea'];
  const lines = Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `${words[i % 5]} and ${words[(i * 3) % 5]}.` }));
  const p = join(dir, 'tiny.jsonl');
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

const small = ['--vocab-size=300', '--dim=16', '--layers=1', '--heads=2', '--kv-heads=1', '--seq-len=32', '--batch-size=2',
  '--warmup=1', '--eval-every=2', '--eval-batches=1', '--sample-tokens=4', '--progress=false'];

test('options: typed overrides, suggestions for typos, --no-flag, config values', () => {
  const { values } = parseOptions(trainSchema, ['--lr=0.01', '--steps', '7', '--no-tie'], { batch_size: 3 });
  assert.equal(values.lr, 0.01); assert.equal(values.steps, 7); assert.equal(values.tie, false); assert.equal(values.batchSize, 3);
  assert.throws(() => parseOptions(trainSchema, ['--stpes=3']), (e: unknown) => e instanceof UsageError && /did you mean --steps\?/.test(e.message));
  assert.throws(() => parseOptions(trainSchema, ['--steps=2.5']), /--steps: expected an integer, got "2.5"/);
  assert.throws(() => parseOptions(trainSchema, ['--lr=fast']), /--lr: expected a number, got "fast"/);
});

test('train → eval → generate on a small JSONL corpus; metrics, plot, samples, checkpoints; resume extends the run', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const out = join(dir, 'run');
  const r = await run(['train', `--data=${data}`, `--out=${out}`, '--steps=4', '--checkpoint-every=2', ...small]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /final validation \(\d+ tokens\): loss \d+\.\d+ \| perplexity \d+(\.\d+)? \| bits per byte \d+\.\d+/);
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(metrics.filter((m) => m.type === 'train').map((m) => m.step), [1, 2, 3, 4]);
  assert.deepEqual(metrics.filter((m) => m.type === 'eval').map((m) => m.step), [2, 4]);
  assert.ok(metrics.every((m) => m.type !== 'train' || (Number.isFinite(m.loss) && m.lr >= 0 && m.tokensPerSec >= 0)));
  const svg = readFileSync(join(out, 'loss.svg'), 'utf8');
  assert.match(svg, /<svg[^>]*>/); assert.match(svg, /train loss/); assert.match(svg, /validation loss/);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
  assert.match(readFileSync(join(out, 'samples.txt'), 'utf8'), /--- step 2/);
  const { state } = await loadCheckpoint(join(out, 'checkpoints'));
  assert.equal(state.step, 4);
  const model = await loadPretrained(join(out, 'model'));
  assert.equal(model.config.hiddenSize, 16);

  const ev = await run(['eval', `--model=${out}`, `--data=${data}`, '--seq-len=32']);
  assert.equal(ev.code, 0, ev.out);
  assert.match(ev.out, /validation of .*tiny\.jsonl \(\d+ tokens\): loss \d+\.\d+ \| perplexity [\d.]+ \| bits per byte \d+\.\d+/);
  const gen = await run(['generate', `--model=${out}`, '--max-new-tokens=5', '--temperature=0', 'the cat']);
  assert.equal(gen.code, 0, gen.out);
  assert.ok(gen.out.startsWith('the cat'), gen.out);

  const more = await run(['train', `--resume=${out}`, '--steps=6']);
  assert.equal(more.code, 0, more.out);
  assert.match(more.out, /resuming at step 4/);
  const after = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(after.filter((m) => m.type === 'train').map((m) => m.step), [1, 2, 3, 4, 5, 6]);
});

test('tokenizer train / encode / decode round trip', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const tdir = join(dir, 'tok');
  assert.equal((await run(['tokenizer', 'train', `--data=${data}`, '--vocab-size=280', `--out=${tdir}`])).code, 0);
  assert.ok(existsSync(join(tdir, 'tokenizer.json')));
  const enc = await run(['tokenizer', 'encode', `--tokenizer=${tdir}`, 'the cat sat']);
  const ids = JSON.parse(enc.out) as number[];
  assert.ok(ids.length > 0 && ids.every((x) => Number.isInteger(x) && x < 280));
  const dec = await run(['tokenizer', 'decode', `--tokenizer=${tdir}`, ids.join(',')]);
  assert.equal(dec.out, 'the cat sat');
});

test('bad input: a missing data file, an empty file, a typo, help everywhere', async () => {
  const dir = tmp();
  const r = await run(['train', `--data=${join(dir, 'nope.txt')}`]);
  assert.equal(r.code, 2);
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, '');
  const stderr: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => { stderr.push(String(s)); return true; }) as typeof process.stderr.write;
  try {
    assert.notEqual((await run(['train', `--data=${empty}`, ...small])).code, 0);
    assert.equal((await run(['frobnicate'])).code, 2);
  } finally {
    process.stderr.write = orig;
  }
  assert.match(stderr.join(''), /empty\.txt/);
  assert.match(stderr.join(''), /unknown command 'frobnicate'/);
  for (const c of [['train'], ['eval'], ['generate'], ['tokenizer', 'train'], ['tokenizer', 'encode']]) {
    const h = await run([...c, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.out, /Usage: llamatrain/);
  }
});

test('bits per byte: token byte lengths add up to the UTF-8 size of the text', () => {
  const texts = ['Héllo wörld — naïve café', 'plain ascii text', 'emoji 🙂 and 漢字'];
  const bpe = trainByteLevelBPE(texts, { vocabSize: 300 });
  const lens = tokenByteLengths(bpe);
  for (const t of texts) {
    const ids = bpe.encode(t);
    assert.equal(ids.reduce((s, id) => s + lens[id]!, 0), countBytes(t));
  }
  assert.equal(lens[bpe.eosId!], 0);
});
