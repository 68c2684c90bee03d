// Issue 15, options and commands: every option checked before any work, messages that name flags and files, and
// the command fixes (positional data path, eval on a run's own data, --from a run directory, --version, tokenizer
// --help, the progress bar's payload, samples without special tokens, tokenizer side files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { runCli as run, tinyCorpus as corpus } from './helpers.js';
import { type CommandOptions, type OptSpec, UsageError, parseAndCheck, rangeText } from '../../src/cli/options.js';
import { trainCommand, trainHelp, trainSchema } from '../../src/cli/train.js';
import { chatCommand, sftCommand, sftHelp } from '../../src/cli/sft.js';
import { evalCommand, generateCommand, helps, tokenizerTrainCommand } from '../../src/cli/commands.js';
import { MESSAGE_RULES, forCli } from '../../src/cli/messages.js';
import { modelDirOf } from '../../src/cli/shared.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-opts-'));

const small = ['--vocab-size=300', '--dim=16', '--layers=1', '--heads=2', '--kv-heads=1', '--seq-len=32', '--batch-size=2', '--steps=4',
  '--warmup=1', '--eval-every=2', '--eval-batches=1', '--sample-tokens=4', '--progress=false', '--backend=ref'];

const pkgVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

test('issue 15: out-of-range options are refused before any work, naming the flag and its range', async () => {
  const dir = tmp();
  const cases: [string[], RegExp][] = [
    [['train', '--temperature=-1'], /^llamatrain train: --temperature: must be ≥ 0, got -1 — /],
    [['train', '--sample-tokens=-1'], /^llamatrain train: --sample-tokens: must be ≥ 0, got -1 — /],
    [['train', '--threads=-3'], /^llamatrain train: --threads: must be in \[0, 1024\], got -3 — .*0 = all cores/],
    [['train', '--clip=-1'], /^llamatrain train: --clip: must be ≥ 0, got -1 — .*0 = off/],
    [['train', '--eval-every=-1'], /^llamatrain train: --eval-every: must be ≥ 0, got -1 — .*0 = only the final evaluation/],
    [['train', '--checkpoint-every=-1'], /^llamatrain train: --checkpoint-every: must be ≥ 0, got -1 — .*0 = only at the end/],
    [['train', '--validation-fraction=-0.5'], /^llamatrain train: --validation-fraction: must be in \(0, 1\), got -0\.5/],
    [['train', '--eval-batches=0'], /^llamatrain train: --eval-batches: must be ≥ 1, got 0/],
    [['train', '--steps=1e20'], /^llamatrain train: --steps: "1e20" is too large for an integer option/],
    [['train', '--lr=1e309'], /^llamatrain train: --lr: "1e309" is beyond the range of numbers/],
    [['train', '--seed=-1'], /^llamatrain train: --seed: must be in \[0, 4294967295\], got -1/],
    [['sft', '--temperature=-1'], /^llamatrain sft: --temperature: must be ≥ 0, got -1/],
    [['sft', '--eval-every=-1'], /^llamatrain sft: --eval-every: must be ≥ 0, got -1/],
    [['sft', '--lora-dropout=1'], /^llamatrain sft: --lora-dropout: must be in \[0, 1\), got 1/],
    [['eval', '--model=x', '--validation-fraction=2'], /^llamatrain eval: --validation-fraction: must be in \(0, 1\), got 2/],
    [['generate', '--model=x', '--temperature=-1'], /^llamatrain generate: --temperature: must be ≥ 0, got -1/],
    [['generate', '--model=x', '--top-p=0'], /^llamatrain generate: --top-p: must be in \(0, 1\], got 0/],
    [['generate', '--model=x', '--max-new-tokens=-1'], /^llamatrain generate: --max-new-tokens: must be ≥ 1, got -1/],
    [['chat', '--model=x', '--top-k=-2'], /^llamatrain chat: --top-k: must be ≥ 0, got -2/],
    [['tokenizer', 'train', '--vocab-size=100'], /^llamatrain tokenizer: --vocab-size: must be in \[257, 2097152\], got 100/],
  ];
  for (const [argv, re] of cases) {
    const out = join(dir, argv.join('_').replace(/[^a-z0-9_=.-]/gi, ''));
    const withOut = argv[0] === 'train' || argv[0] === 'sft' ? [...argv, `--out=${out}`] : argv;
    const r = await run(withOut);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, re, argv.join(' '));
    assert.equal(existsSync(out), false, `${argv.join(' ')} created its run directory before refusing`);
  }
  // a config file and a resumed run's saved options are checked the same way
  const cfg = join(dir, 'bad.json');
  writeFileSync(cfg, JSON.stringify({ 'eval-every': -1 }));
  assert.match((await run(['train', `--config=${cfg}`])).err, /--config .*bad\.json: "eval-every": must be ≥ 0, got -1/);
});

test('issue 15: --help shows each option\'s range, from the schema', () => {
  const commands = [[trainCommand, trainHelp], [sftCommand, sftHelp], [evalCommand, helps.eval], [generateCommand, helps.generate]] as unknown as [CommandOptions, string][];
  for (const [cmd, help] of commands) {
    for (const [k, spec] of Object.entries(cmd.schema) as [string, OptSpec][]) {
      if (spec.min === undefined && spec.max === undefined) continue;
      const name = k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
      assert.ok(help.includes(`--${name}=<${spec.type} ${rangeText(spec)}>`), `${cmd.name} --${name}`);
    }
  }
  assert.match(trainHelp, /--temperature=<number ≥ 0>/);
  assert.match(trainHelp, /--validation-fraction=<number in \(0, 1\)>/);
  assert.match(trainHelp, /Usage: llamatrain train \[<data file>\]/);
});

test('issue 15: a positional argument is the data file (train, sft, eval, tokenizer train), once', async () => {
  for (const cmd of [trainCommand, sftCommand, evalCommand, tokenizerTrainCommand] as unknown as CommandOptions[]) {
    assert.equal(parseAndCheck(cmd, ['my.jsonl']).values.data, 'my.jsonl', cmd.name);
    assert.throws(() => parseAndCheck(cmd, ['a.jsonl', 'b.jsonl']), (e: unknown) => e instanceof UsageError && /unexpected argument "b\.jsonl".*--data/.test(e.message), cmd.name);
    assert.throws(() => parseAndCheck(cmd, ['a.jsonl', '--data=b.jsonl']), /"a\.jsonl" and --data=b\.jsonl both give --data; give it once/, cmd.name);
  }
  const dir = tmp();
  const data = corpus(dir);
  const out = join(dir, 'run');
  const r = await run(['train', data, `--out=${out}`, ...small]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`data: ${data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, `));
  assert.equal(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8')).data, data);
  const missing = await run(['train', join(dir, 'my.jsonl'), `--out=${join(dir, 'r2')}`]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /--data: no such file '.*my\.jsonl'/);
  assert.equal(existsSync(join(dir, 'r2')), false);
});

test('issue 15: --vocab-size larger than the data supports warns with the size reached', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const out = join(dir, 'run');
  const r = await run(['train', `--data=${data}`, `--out=${out}`, ...small, '--vocab-size=1000000']);
  assert.equal(r.code, 0, r.err);
  const vocab = JSON.parse(readFileSync(join(out, 'model', 'config.json'), 'utf8')).vocab_size as number;
  assert.ok(vocab < 1000000);
  const m = /warning: --vocab-size=1000000 asked for 1,000,000 tokens, but the training text gives only ([\d,]+)/.exec(r.err); // a warning: on stderr
  assert.ok(m, r.err);
  assert.equal(Number(m[1]!.replace(/,/g, '')), vocab);
  const tok = await run(['tokenizer', 'train', data, '--vocab-size=100000', `--out=${join(dir, 'tok')}`]);
  assert.equal(tok.code, 0, tok.err);
  assert.match(tok.err, /warning: --vocab-size=100000 asked for 100,000 tokens, but the training text gives only/);
  // asking for what the data gives says nothing
  const quiet = await run(['tokenizer', 'train', data, `--vocab-size=${vocab}`, `--out=${join(dir, 'tok2')}`]);
  assert.doesNotMatch(quiet.out + quiet.err, /warning/);
});

test('issue 15: eval --model=<run> scores the run\'s own data and split; --from and --model take a run directory', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const out = join(dir, 'run');
  assert.equal((await run(['train', `--data=${data}`, `--out=${out}`, ...small])).code, 0);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));

  const ev = await run(['eval', `--model=${out}`, '--backend=ref']);
  assert.equal(ev.code, 0, ev.err);
  assert.ok(ev.out.startsWith(`eval: scoring the validation split of ${data} (the data ${out} trained on`), ev.out);
  assert.doesNotMatch(ev.out, /Brown/);
  // the same held-out documents, cut into rows of the run's --seq-len: the run's final validation token count
  const m = /validation of .*tiny\.jsonl \((\d+) tokens\)/.exec(ev.out);
  assert.ok(m, ev.out);
  assert.equal(Number(m[1]), summary.validationTokens);

  // --from=<run directory> fine-tunes its model/ with its tokenizer
  const tuned = join(dir, 'tuned');
  const ft = await run(['train', `--from=${out}`, `--data=${data}`, `--out=${tuned}`, ...small.filter((a) => !a.startsWith('--vocab-size'))]);
  assert.equal(ft.code, 0, ft.err);
  assert.deepEqual(readFileSync(join(tuned, 'tokenizer.json')), readFileSync(join(out, 'tokenizer.json')));
  assert.equal(JSON.parse(readFileSync(join(tuned, 'model', 'config.json'), 'utf8')).hidden_size, 16);
  assert.equal(await modelDirOf(out, '--from'), join(out, 'model'));
  assert.equal(await modelDirOf(join(out, 'model'), '--from'), join(out, 'model'));
  await assert.rejects(modelDirOf(join(dir, 'nope'), '--from'), /--from .*nope: no such directory/);
  await assert.rejects(modelDirOf(dir, '--model'), /--model .*: no config\.json there or in/);
  const bad = await run(['sft', `--from=${join(dir, 'nope')}`, `--out=${join(dir, 'sft')}`]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--from .*nope: no such directory/);
  assert.equal(existsSync(join(dir, 'sft')), false);
  assert.match((await run(['chat', `--model=${dir}`])).err, /^llamatrain chat: --model .*: no config\.json there/);
  // sft renders conversations with --from's chat template: a train run's BPE has none, refused before any work
  const noTemplate = await run(['sft', `--from=${out}`, `--out=${join(dir, 'sft2')}`]);
  assert.equal(noTemplate.code, 2);
  assert.match(noTemplate.err, /--from .*run\/model: the tokenizer has no chat template/);
  assert.equal(existsSync(join(dir, 'sft2')), false);
});

test('issue 15: library settings in errors reach the CLI user as flags', async () => {
  // every rule's library wording still exists in the library (a reworded message needs its rule updated)
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith('.ts') ? [join(d, n)] : []));
  const lib = walk('src').filter((f) => !f.startsWith(join('src', 'cli'))).map((f) => readFileSync(f, 'utf8')).join('\n');
  for (const r of MESSAGE_RULES) assert.ok(lib.includes(r.source), `no library message contains ${JSON.stringify(r.source)} any more`);
  assert.equal(forCli("step 3: the loss is NaN. Training stopped (lower the learning rate, check the data, or set onNonFinite: 'skip')."),
    'step 3: the loss is NaN. Training stopped (lower --lr or raise --warmup, or check --data).');
  assert.equal(forCli('DataLoader: x has 3 examples, fewer than batchSize 8, and dropLast is on, so an epoch has no batch; lower batchSize or turn dropLast off'),
    'DataLoader: x has 3 examples, fewer than batchSize 8, and dropLast is on, so an epoch has no batch; lower --batch-size (or --seq-len, which makes more rows), or give more data');
  assert.equal(forCli('warmupCosine: need 0 ≤ warmupSteps ≤ totalSteps, got 50 and 10'), '--warmup (50) must be at most --steps (10)');
  assert.equal(forCli('warmupCosine: minLrRatio must be in [0, 1], got 2'), '--min-lr-ratio must be in [0, 1], got 2');
  assert.equal(forCli(`getPeftModel: targetModules ["qproj"] match no Linear of the model; its Linear modules are down_proj, q_proj (or pass 'all-linear')`),
    '--target-modules: ["qproj"] match no Linear of the model; its Linear modules are down_proj, q_proj (or --target-modules=all-linear)');
  assert.throws(() => parseAndCheck(sftCommand, ['--target-modules=,']), /--target-modules: give at least one Linear name/);

  const dir = tmp();
  const data = corpus(dir);
  const noField = join(dir, 'nofield.jsonl');
  writeFileSync(noField, '{"body": "a"}\n{"body": "b"}\n');
  const field = await run(['train', noField, `--out=${join(dir, 'a')}`, ...small]);
  assert.equal(field.code, 1);
  assert.match(field.err, /line 1 has no field "text"; its fields are: body\. Pick the text field with --text-field/);
  const batch = await run(['train', data, `--out=${join(dir, 'b')}`, ...small, '--batch-size=1000']);
  assert.match(batch.err, /fewer than one batch of 1000; lower --batch-size or --seq-len/);
  assert.doesNotMatch(batch.err, /dropLast|batchSize/);
  // an lr this large overflows: the stop names --lr, not the Trainer's onNonFinite
  const nan = await run(['train', data, `--out=${join(dir, 'c')}`, ...small, '--lr=1e38', '--beta2=0', '--steps=8']);
  assert.equal(nan.code, 1, nan.out);
  assert.match(nan.err, /is (NaN|Infinity|-Infinity)\b.*Training stopped \(lower --lr/);
  assert.doesNotMatch(nan.err, /onNonFinite/);
});

test('issue 15: --version, -v, <command> --version and tokenizer --help', async () => {
  for (const argv of [['--version'], ['-v'], ['version'], ['train', '--version'], ['eval', '--version'], ['tokenizer', '--version']]) {
    const r = await run(argv);
    assert.equal(r.code, 0, argv.join(' '));
    assert.equal(r.out, `llamatrain ${pkgVersion}`, argv.join(' '));
  }
  for (const argv of [['tokenizer', '--help'], ['tokenizer', '-h'], ['tokenizer', 'help']]) {
    const r = await run(argv);
    assert.equal(r.code, 0, argv.join(' '));
    for (const sub of ['train', 'encode', 'decode']) assert.match(r.out, new RegExp(`llamatrain tokenizer ${sub} `));
  }
  const none = await run(['tokenizer']);
  assert.equal(none.code, 2);
  assert.match(none.err, /which subcommand\?.*tokenizer --help/);
  assert.match((await run(['--help'])).out, /llamatrain --version/);
});

test('issue 15: the progress bar keeps its numbers after an evaluation line (no literal {loss} | {lr})', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
  Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run(['train', data, `--out=${join(dir, 'run')}`, ...small.filter((a) => a !== '--progress=false')]);
  } finally {
    if (tty) Object.defineProperty(process.stderr, 'isTTY', tty); else delete (process.stderr as { isTTY?: boolean }).isTTY;
  }
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /eval @ step 2/); // a diagnostic: on stderr, between the bar's lines
  assert.match(r.err, /step \d+\/4 \|.*\| loss \d+\.\d+ \| lr \d\.\d+e[-+]\d+ \|/); // the bar was drawn with numbers
  assert.doesNotMatch(r.err, /\{loss\}|\{lr\}|\{tps\}/);
});

test('issue 15: samples and generate print text without literal special tokens', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const out = join(dir, 'run');
  // the prompt holds the end-of-text token itself, so the decoded sequence certainly contains it
  const r = await run(['train', data, `--out=${out}`, ...small, '--sample-prompt=<|endoftext|>the cat']);
  assert.equal(r.code, 0, r.err);
  const samples = readFileSync(join(out, 'samples.txt'), 'utf8');
  assert.match(samples, /--- step 2/);
  assert.match(samples, /\nthe cat/);
  assert.doesNotMatch(samples, /<\|endoftext\|>/);
  const gen = await run(['generate', `--model=${out}`, '--max-new-tokens=5', '--temperature=0', '--backend=ref', '<|endoftext|>the cat']);
  assert.equal(gen.code, 0, gen.err);
  assert.ok(gen.out.startsWith('the cat'), gen.out);
});

test('issue 15: train --tokenizer=<dir> copies tokenizer_config.json and special_tokens_map.json into model/', async () => {
  const dir = tmp();
  const data = corpus(dir);
  const tok = join(dir, 'tok');
  assert.equal((await run(['tokenizer', 'train', data, '--vocab-size=300', `--out=${tok}`])).code, 0);
  writeFileSync(join(tok, 'special_tokens_map.json'), JSON.stringify({ eos_token: '<|endoftext|>' }) + '\n');
  const out = join(dir, 'run');
  const r = await run(['train', data, `--tokenizer=${tok}`, `--out=${out}`, ...small]);
  assert.equal(r.code, 0, r.err);
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    assert.deepEqual(readFileSync(join(out, 'model', f)), readFileSync(join(tok, f)), f);
  }
  const missing = await run(['train', data, `--tokenizer=${join(dir, 'nope')}`, `--out=${join(dir, 'r2')}`]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /--tokenizer .*nope: no tokenizer\.json at/);
});

test('issue 15: parseAndCheck applies each command\'s own checks (chat takes no positional data)', () => {
  assert.throws(() => parseAndCheck(trainCommand, ['--heads=4', '--kv-heads=3']), /--kv-heads \(3\) must divide --heads \(4\)/);
  assert.throws(() => parseAndCheck(trainCommand, ['--steps=10', '--warmup=10']), /--warmup \(10\) must be smaller than --steps \(10\)/);
  assert.throws(() => parseAndCheck(chatCommand, ['hello']), /unexpected argument "hello": this command takes only options/);
  assert.equal(parseAndCheck(trainCommand, ['--seed=-0']).values.seed, 0);
  assert.ok(Object.is(parseAndCheck(trainCommand, ['--seed=-0']).values.seed, 0)); // -0 is 0
  assert.equal(trainSchema.temperature.min, 0);
});

test('--threads above the core count is capped at the cores, saying so (before: --threads=1024 held 8.4 GB for 85 s)', async () => {
  const { capThreads, selectBackend } = await import('../../src/cli/shared.js');
  const { shutdownWasmBackend } = await import('../../src/backends/wasm/index.js');
  const { availableParallelism } = await import('node:os');
  const notes: string[] = [];
  assert.equal(capThreads(1024, 2, 'wasm', (s) => notes.push(s)), 2);
  assert.equal(capThreads(2, 2, 'native', (s) => notes.push(s)), 2);
  assert.equal(capThreads(0, 2, 'auto', (s) => notes.push(s)), 0, '0 = all cores, as before');
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /--threads=1024 is more than the 2 cores here; using 2/);
  const log: string[] = [];
  await selectBackend('wasm', 1024, (s) => log.push(s));
  try {
    assert.match(log.join('\n'), new RegExp(`--threads=1024 is more than the ${availableParallelism()} cores here; using ${availableParallelism()}`));
  } finally {
    await shutdownWasmBackend();
  }
});
