import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers.js';
import { helpText, parseCommandLine, parseOptions, UsageError, wantsHelp } from '../../src/cli/options.js';
import { trainHelp, trainSchema } from '../../src/cli/train.js';
import { generateSchema } from '../../src/cli/commands.js';
import { tokenByteLengths } from '../../src/cli/shared.js';
import { RNG, countBytes, trainByteLevelBPE } from '../../src/index.js';
import { loadCheckpoint, loadPretrained } from '../../src/node.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-cli-'));
/** The CLI in this process: stdout's lines (`out`), and stderr (`err`: the diagnostics) kept out of the test's output. */
const run = runCli;

/** A small JSONL corpus of simple English sentences. */
function corpus(dir: string): string {
  const words = ['the cat sat on the mat', 'a dog ran in the park', 'the sun is warm today', 'we read a good book', 'she likes green tea'];
  const lines = Array.from({ length: 60 }, (_, i) => JSON.stringify({ text: `${words[i % 5]} and ${words[(i * 3) % 5]}.` }));
  const p = join(dir, 'tiny.jsonl');
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

const small = ['--vocab-size=300', '--dim=16', '--layers=1', '--heads=2', '--kv-heads=1', '--seq-len=32', '--batch-size=2',
  '--warmup=1', '--eval-every=2', '--eval-batches=1', '--sample-tokens=4', '--progress=false', '--no-baseline'];

test('options: typed overrides, suggestions for typos, --no-flag, config values', () => {
  const { values } = parseOptions(trainSchema, ['--lr=0.01', '--steps', '7', '--no-tie'], { batch_size: 3 });
  assert.equal(values.lr, 0.01); assert.equal(values.steps, 7); assert.equal(values.tie, false); assert.equal(values.batchSize, 3);
  assert.throws(() => parseOptions(trainSchema, ['--stpes=3']), (e: unknown) => e instanceof UsageError && /did you mean --steps\?/.test(e.message));
  assert.throws(() => parseOptions(trainSchema, ['--steps=2.5']), /--steps: expected an integer, got "2.5"/);
  assert.throws(() => parseOptions(trainSchema, ['--lr=fast']), /--lr: expected a number, got "fast"/);
});

test('options: every spelling of a flag, booleans in four forms, values taken from the next argument', () => {
  const v = (argv: string[]) => parseCommandLine(trainSchema, argv).values;
  assert.equal(v(['--seq-len=64']).seqLen, 64);
  assert.equal(v(['--seq-len', '64']).seqLen, 64);
  assert.equal(v(['--seq_len', '64']).seqLen, 64);
  assert.equal(v(['--seqLen=64']).seqLen, 64);
  assert.throws(() => v(['--lr', '-0.5']), /--lr: must be > 0, got -0\.5/); // a negative number is a value (here out of range), not a flag
  assert.equal(v(['--no-tie']).tie, false);
  assert.equal(v(['--no-tie', '--tie']).tie, true); // the last one wins
  assert.equal(v(['--tie=false']).tie, false);
  assert.equal(v(['--tie', 'false']).tie, false);
  assert.equal(v(['--tie', 'no', '--steps=3']).tie, false);
  assert.equal(v(['--tie', '--steps=3']).tie, true);
  assert.equal(v(['--sample-prompt=--']).samplePrompt, '--');
  assert.equal(v(['--backend', 'ref']).backend, 'ref');
});

test('options: errors name the option, what it expects and what it got', () => {
  const err = (argv: string[], re: RegExp) =>
    assert.throws(() => parseCommandLine(trainSchema, argv), (e: unknown) => e instanceof UsageError && re.test(e.message), `${argv.join(' ')}`);
  err(['--steps=abc'], /^--steps: expected an integer, got "abc"$/);
  err(['--seq-len', '1.5'], /^--seq-len: expected an integer, got "1.5"$/);
  err(['--tie=maybe'], /^--tie: expected true or false, got "maybe"$/);
  err(['--backend=gpu'], /^--backend: expected one of auto, webgpu, native, wasm, ref, got "gpu"$/);
  err(['--steps'], /^--steps: missing value \(expected an integer\)$/);
  err(['--steps', '--lr=1'], /^--steps: missing value \(expected an integer\) before --lr=1; a value that starts with '--' is written --steps=<value>$/);
  err(['--stesp=3'], /^--stesp: unknown option \(did you mean --steps\?\); see --help$/);
  err(['--stesp', '3'], /did you mean --steps\?/);
  err(['--notie'], /did you mean --no-tie\?/);
  err(['--validation=0.1'], /did you mean --validation-fraction\?/); // the start of exactly one option
  err(['--frobnicate=1'], /^--frobnicate: unknown option; see --help$/);
  err(['--constructor=1'], /^--constructor: unknown option/); // not mistaken for an Object property
  err(['--no-steps'], /^--no-steps: --steps is not an on\/off option; give it a value \(--steps=<int>\)$/);
  err(['--no-tie=1'], /--no-tie takes no value; write --tie=1 instead/);
  err(['-s', '3'], /^-s: unknown option; options are long \(--key=value\)/);
  err(['data.txt'], /^unexpected argument "data\.txt": this command takes only options/);
});

test('options: positional arguments where a command takes them, and -- before ones that start with -', () => {
  const r = parseCommandLine(generateSchema, ['--model=m', 'the', 'cat', '--', '--not-a-flag', '-1'], { allowPositionals: true });
  assert.equal(r.values.model, 'm');
  assert.deepEqual(r.positional, ['the', 'cat', '--not-a-flag', '-1']);
  assert.throws(() => parseCommandLine(generateSchema, ['-1'], { allowPositionals: true }), /-1: unknown option; .*goes after --/);
  assert.equal(wantsHelp(['--model=m', '-h']), true);
  assert.equal(wantsHelp(['--', '--help']), false);
});

test('options: --config file.json beneath the flags; unknown keys named with suggestions; a resumed run beneath both', () => {
  const dir = tmp();
  const cfg = join(dir, 'run.json');
  writeFileSync(cfg, JSON.stringify({ steps: 50, 'seq-len': 64, batch_size: 4, tie: false, lr: '0.01' }));
  const { values } = parseCommandLine(trainSchema, [`--config=${cfg}`, '--steps=7']);
  assert.deepEqual([values.steps, values.seqLen, values.batchSize, values.tie, values.lr], [7, 64, 4, false, 0.01]);
  assert.equal(parseCommandLine(trainSchema, ['--steps=7', '--config', cfg]).values.steps, 7); // flags win wherever --config is

  const base = { values: { steps: 9, dim: 48, heads: 4 }, from: 'runs/x/train_config.json' };
  const resumed = parseCommandLine(trainSchema, [`--config=${cfg}`, '--heads=2'], { base }).values;
  assert.deepEqual([resumed.steps, resumed.dim, resumed.heads], [50, 48, 2]);
  assert.throws(() => parseCommandLine(trainSchema, [], { base: { values: { stpes: 1 }, from: 'runs/x/train_config.json' } }),
    /runs\/x\/train_config\.json: unknown key "stpes" \(did you mean "steps"\?\)/);

  const bad = (content: string, re: RegExp) => {
    writeFileSync(cfg, content);
    assert.throws(() => parseCommandLine(trainSchema, ['--config', cfg]), (e: unknown) => e instanceof UsageError && re.test(e.message), content);
  };
  bad(JSON.stringify({ stpes: 5, seq_lne: 3, 'kv-head': 1, zzz: 0 }),
    /unknown keys "stpes" \(did you mean "steps"\?\), "seq_lne" \(did you mean "seq_len"\?\), "kv-head" \(did you mean "kv-heads"\?\), "zzz"; see --help/);
  bad(JSON.stringify({ steps: 'many' }), /^--config .*run\.json: "steps": expected an integer, got "many"$/);
  bad('{ steps: 5 }', /^--config .*run\.json: not valid JSON/);
  bad('[1, 2]', /^--config .*run\.json: expected a JSON object of option values/);
  assert.throws(() => parseCommandLine(trainSchema, ['--config']), /--config: missing file name/);
  assert.throws(() => parseCommandLine(trainSchema, ['--config', '--steps=3']), /--config: missing file name/);
  assert.throws(() => parseCommandLine(trainSchema, [`--config=${join(dir, 'nope.json')}`]),
    /--config: .*nope\.json: no such file or directory \(while reading the config file\); check the path$/);
});

test('options: --help is generated from the schema, with types and defaults', () => {
  const h = helpText('demo', 'A demo.', {
    steps: { type: 'int', default: 5, help: 'how many' },
    tie: { type: 'boolean', default: true, help: 'tie it' },
    mode: { type: ['a', 'b'], default: 'a', help: 'which' },
    name: { type: 'string', default: '', help: 'a name' },
  });
  assert.equal(h, 'A demo.\n\nUsage: llamatrain demo [--config file.json] [--key=value ...]\n\nOptions:\n' +
    '  --steps=<int>\n      how many (default: 5)\n  --[no-]tie\n      tie it (default: true)\n' +
    '  --mode=<a|b>\n      which (default: "a")\n  --name=<string>\n      a name\n' +
    '  --config=<file.json>\n      a JSON object of option values (e.g. {"steps": 100, "seq-len": 64}); flags given on the command line override it\n');
  for (const [k, spec] of Object.entries(trainSchema)) {
    const name = k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
    assert.ok(trainHelp.includes(spec.type === 'boolean' ? `\n  --[no-]${name}\n` : `\n  --${name}=<`), k);
  }
  assert.match(trainHelp, /--seq-len=<int ≥ 2>\n {6}tokens per row T .*\(default: 128\)/);
});

test('train → eval → generate on a small JSONL corpus; metrics, plot, samples, checkpoints; resume extends the run', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const out = join(dir, 'run');
  const r = await run(['train', `--data=${data}`, `--out=${out}`, '--steps=4', '--checkpoint-every=2', ...small, '--baseline']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /final validation \(\d+ tokens\): loss \d+\.\d+ \| perplexity \d+(\.\d+)? \| bits per byte \d+\.\d+/);
  assert.match(r.out, /compressors on the same split \(bits per validation byte, the training text as context\): /);
  const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(metrics.filter((m) => m.type === 'train').map((m) => m.step), [1, 2, 3, 4]);
  assert.deepEqual(metrics.filter((m) => m.type === 'eval').map((m) => m.step), [2, 4]);
  assert.ok(metrics.every((m) => m.type !== 'train' || (Number.isFinite(m.loss) && m.lr >= 0 && m.tokensPerSec >= 0)));
  const svg = readFileSync(join(out, 'loss.svg'), 'utf8');
  assert.match(svg, /<svg[^>]*>/); assert.match(svg, /train loss/); assert.match(svg, /validation loss/);
  const references = (svg.match(/ bits\/byte\)</g) ?? []).length; // compressor lines, when measured by the end of the run
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2 + references);
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

  const moreConfig = join(dir, 'more.json'); // --config works with --resume too: saved options < file < flags
  writeFileSync(moreConfig, JSON.stringify({ steps: 5, 'sample-tokens': 3 }));
  const more = await run(['train', `--resume=${out}`, `--config=${moreConfig}`, '--steps=6']);
  assert.equal(more.code, 0, more.out);
  assert.match(more.out, /resuming at step 4/);
  const after = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(after.filter((m) => m.type === 'train').map((m) => m.step), [1, 2, 3, 4, 5, 6]);
  const resumedConfig = JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'));
  assert.deepEqual([resumedConfig.steps, resumedConfig.sampleTokens, resumedConfig.dim], [6, 3, 16]);
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
  const bad = await run(['train', `--data=${empty}`, ...small]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /empty\.txt/);
  const frob = await run(['frobnicate']), stesp = await run(['train', '--stesp=3']), pos = await run(['train', 'data.txt']);
  assert.deepEqual([frob.code, stesp.code, pos.code], [2, 2, 2]);
  assert.match(frob.err, /unknown command 'frobnicate'/);
  assert.match(stesp.err, /llamatrain train: --stesp: unknown option \(did you mean --steps\?\); see --help/);
  assert.match(pos.err, /llamatrain train: --data: no such file 'data\.txt'/); // a positional argument is the data file
  for (const c of [['train'], ['eval'], ['generate'], ['tokenizer', 'train'], ['tokenizer', 'encode']]) for (const flag of ['--help', '-h']) {
    const h = await run([...c, flag]);
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

test('compressor baseline: brotli streamed with a flush measures what two separate compressions do; cached for the next run', async () => {
  const { brotliBitsPerByte, gzipBitsPerByte, startCompressorBaseline } = await import('../../src/cli/compressor.js');
  const zlib = await import('node:zlib');
  const rng = new RNG(2);
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'dog', 'ran', 'park', 'sun', 'warm', 'read', 'book', 'green', 'tea'];
  const doc = () => Array.from({ length: 400 }, () => words[rng.int(words.length)]).join(' ');
  const trainDocs = Array.from({ length: 60 }, doc), valDocs = Array.from({ length: 5 }, doc);
  const train = Buffer.from(trainDocs.join('\n')), val = Buffer.from(valDocs.join('\n'));
  // two one-shot compressions: compress(train + "\n" + val) − compress(train)
  const q11 = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 } };
  const twoPass = ((zlib.brotliCompressSync(Buffer.concat([train, Buffer.from('\n'), val]), q11).length - zlib.brotliCompressSync(train, q11).length) * 8) / val.length;
  const streamed = await brotliBitsPerByte(train, val);
  assert.ok(Math.abs(streamed - twoPass) <= 0.05 * twoPass, `streamed ${streamed} vs two compressions ${twoPass}`);
  const gz = gzipBitsPerByte(train, val);
  assert.ok(streamed > 0 && streamed < gz && gz < 8, `brotli ${streamed} < gzip ${gz} < 8 bits per byte`);
  // the background measurement lands in the cache; a second start reads it at once
  const dir = tmp();
  const first = startCompressorBaseline(trainDocs, valDocs, dir, 0); // normal priority: a loaded test machine would starve nice 19
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000 && first.result()?.brotli == null) await new Promise((r) => setTimeout(r, 200));
  assert.ok(first.result()?.brotli != null, 'the background child measured brotli and cached it');
  const second = startCompressorBaseline(trainDocs, valDocs, dir, 0).result(); // from the cache, at once
  assert.ok(second?.brotli != null, 'a second start reads the cache');
  assert.equal(second!.gzip, gz);
  assert.equal(second!.brotli, streamed);
});
