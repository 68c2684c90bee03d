// The run directory of `train`/`sft` under misuse and crashes: reuse of --out, two runs at once, failed runs,
// unwritable locations, Ctrl-C / SIGTERM / kill -9 at random moments (then a resume that ends on the same bytes as
// an uninterrupted run), damaged files, changed options on --resume, a collapsed run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { runCli as run, tinyCorpus as corpus } from './helpers.js';
import { CollapsedRun, stamp, watchForCollapse } from '../../src/cli/run.js';
import type { StepMetrics, Trainer } from '../../src/train/index.js';
import type { LlamaForCausalLM } from '../../src/nn/index.js';
import { RunDirectory, RunStopped, lockRunDirectory, stopOnSignals } from '../../src/cli/rundir.js';
import { UsageError } from '../../src/cli/options.js';
import { describeFsError } from '../../src/data/node-fs-errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-rundir-'));

const small = ['--vocab-size=300', '--dim=16', '--layers=1', '--heads=2', '--kv-heads=1', '--seq-len=32', '--batch-size=2',
  '--warmup=1', '--eval-every=5', '--eval-batches=1', '--sample-tokens=4', '--progress=false', '--backend=ref'];
const metrics = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const weights = (dir: string) => readFileSync(join(dir, 'model', 'model.safetensors'));

/** Starts the CLI as a child process (bin/llamatrain.js on the compiled code). */
function child(argv: string[]) {
  const p = spawn(process.execPath, ['bin/llamatrain.js', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { err += d; });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => p.on('exit', (code, signal) => res({ code, signal })));
  return { p, exit, out: () => out, err: () => err };
}

/** Waits until the run has logged at least `n` training steps (or the child ended). */
async function waitForSteps(dir: string, n: number, exited: () => boolean): Promise<void> {
  for (;;) {
    if (exited()) return;
    try {
      const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"type":"train"'));
      if (lines.length >= n) return;
    } catch { /* not written yet */ }
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An uninterrupted run's directory for these options (made once per option set). */
const references = new Map<string, string>();
async function reference(data: string, opts: string[]): Promise<string> {
  const key = opts.join(' ');
  if (!references.has(key)) {
    const out = join(tmp(), 'ref');
    const r = await run(['train', `--data=${data}`, `--out=${out}`, ...opts]);
    assert.equal(r.code, 0, r.err);
    references.set(key, out);
  }
  return references.get(key)!;
}

test('reusing --out for another run is refused, naming --out and --resume; the first run is untouched', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  assert.equal((await run(['train', `--data=${data}`, `--out=${out}`, '--steps=6', '--checkpoint-every=2', ...small])).code, 0);
  const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
  const r = await run(['train', `--data=${data}`, `--out=${out}`, '--steps=2', ...small]);
  assert.equal(r.code, 2);
  assert.match(r.err, /--out .*run already holds a run \(.*\); continue it with --resume=.*run, or give a new directory to --out/);
  assert.equal(readFileSync(join(out, 'metrics.jsonl'), 'utf8'), before, 'metrics.jsonl is not mixed');
  assert.equal(readFileSync(join(out, 'checkpoints', 'latest'), 'utf8').trim(), 'step-00000006');
  assert.ok(existsSync(join(out, 'checkpoints', 'step-00000006')));
  // a non-empty directory that is not a run is refused too; an empty one is fine
  const other = join(dir, 'other');
  mkdirSync(other);
  writeFileSync(join(other, 'notes.txt'), 'mine');
  const r2 = await run(['train', `--data=${data}`, `--out=${other}`, '--steps=2', ...small]);
  assert.equal(r2.code, 2);
  assert.match(r2.err, /--out .*other is not empty \(notes\.txt\); a run needs a new or empty directory/);
  assert.equal(readFileSync(join(other, 'notes.txt'), 'utf8'), 'mine');
});

test('default run names are unique: date, time to the millisecond and a random suffix', () => {
  const names = Array.from({ length: 50 }, () => stamp());
  for (const n of names) assert.match(n, /^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{3}-[0-9a-f]{4}$/);
  assert.equal(new Set(names).size, names.length, 'names made in the same millisecond differ');
});

test('the run directory is locked: a second run into it refuses; a dead owner\'s lock is taken over', async () => {
  const dir = join(tmp(), 'run');
  const a = await RunDirectory.open({ command: 'train', out: dir, resume: '', defaultName: 'x' });
  await assert.rejects(RunDirectory.open({ command: 'train', out: dir, resume: '', defaultName: 'x' }),
    (e: unknown) => e instanceof UsageError && /is in use by another run \(llamatrain train, pid \d+, since .*\): two runs cannot write into one directory.*another --out/.test(e.message));
  await assert.rejects(RunDirectory.open({ command: 'train', out: '', resume: dir, defaultName: 'x' }), /is in use by another run/);
  await a.close();
  assert.ok(!existsSync(join(dir, '.lock')), 'released');
  // a process that died holding the lock (kill -9): its pid is gone, so the lock is stale at once
  const dead = spawn(process.execPath, ['-e', '0']);
  const pid = dead.pid!;
  await new Promise((r) => dead.on('exit', r));
  mkdirSync(join(dir, '.lock'));
  writeFileSync(join(dir, '.lock-owner.json'), JSON.stringify({ pid, host: (await import('node:os')).hostname(), command: 'train', started: 'then' }));
  const b = await RunDirectory.open({ command: 'train', out: '', resume: dir, defaultName: 'x' });
  await b.close();
  assert.ok(!existsSync(join(dir, '.lock-owner.json')), 'the owner file goes with the lock');
});

test('a held lock survives its refreshes (the owner file must not change the lock directory\'s mtime)', async () => {
  const dir = join(tmp(), 'run');
  mkdirSync(dir);
  const lost: Error[] = [];
  // refreshed every second instead of every 10 s: the first refreshes used to report the lock lost
  const release = await lockRunDirectory(dir, 'train', { updateMs: 1000, onCompromised: (e) => lost.push(e) });
  await new Promise((r) => setTimeout(r, 3500));
  await release();
  assert.deepEqual(lost.map((e) => e.message), [], 'the lock was never reported lost');
  assert.deepEqual(readdirSync(dir), [], 'lock and owner file removed');
});

test('two trainings into the same --out at once: one runs, the other refuses with a clear message', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  const a = child(['train', `--data=${data}`, `--out=${out}`, '--steps=400', ...small]);
  let done = false;
  void a.exit.then(() => { done = true; });
  await waitForSteps(out, 1, () => done);
  const b = await run(['train', `--data=${data}`, `--out=${out}`, '--steps=2', ...small]);
  a.p.kill('SIGINT');
  await a.exit;
  assert.equal(b.code, 2);
  assert.match(b.err, /is in use by another run \(llamatrain train, pid \d+/);
});

test('a failed train leaves no directory behind (bad data, no --out: no runs/<stamp>/ either)', async () => {
  const dir = tmp();
  const one = join(dir, 'one.txt');
  writeFileSync(one, 'just one document');
  const out = join(dir, 'new', 'run');
  const r = await run(['train', `--data=${one}`, `--out=${out}`, '--steps=2', ...small]);
  assert.notEqual(r.code, 0);
  assert.ok(!existsSync(join(dir, 'new')), 'neither the run directory nor the parent it made are left');
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    assert.notEqual((await run(['train', `--data=${one}`, '--steps=2', ...small])).code, 0);
    assert.ok(!existsSync(join(dir, 'runs')), 'no runs/<stamp>/ holding only train_config.json');
    assert.notEqual((await run(['sft', `--data=${one}`, '--steps=2', '--progress=false', '--backend=ref'])).code, 0);
    assert.ok(!existsSync(join(dir, 'runs')), 'sft: the same');
  } finally {
    process.chdir(cwd);
  }
});

test('unwritable or impossible output locations: a message naming --out, not a raw EROFS / ENOENT', async () => {
  const dir = tmp(), data = corpus(dir);
  const r = await run(['train', `--data=${data}`, `--out=${join(data, 'run')}`, '--steps=2', ...small]);
  assert.equal(r.code, 2);
  assert.match(r.err, /^llamatrain train: --out .*tiny\.jsonl\/run: .*a part of the path is a file, not a directory \(while creating the run directory\)/);
  const ro = describeFsError('/mnt/ro/run', Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' }), 'creating the run directory');
  assert.equal(ro.message, '/mnt/ro/run: read-only file system (while creating the run directory); choose a writable location');
  const full = describeFsError('/x/model.safetensors', Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }), 'writing');
  assert.match(full.message, /^\/x\/model\.safetensors: no space left on the device \(while writing\)/);
});

test('Ctrl-C at a random step: a checkpoint, loss.svg, summary.json, how to resume, exit 130; the resumed run ends on the same bytes', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  const opts = ['--steps=60', '--checkpoint-every=1000', ...small];
  const ref = await reference(data, opts);
  const c = child(['train', `--data=${data}`, `--out=${out}`, ...opts]);
  let done = false;
  void c.exit.then(() => { done = true; });
  const at = 2 + Math.floor(Math.random() * 40);
  await waitForSteps(out, at, () => done);
  c.p.kill('SIGINT');
  const { code } = await c.exit;
  assert.equal(code, 130, c.err());
  assert.match(c.err(), /SIGINT: stopping after the current step to save a checkpoint \(press Ctrl-C again to quit at once\)/);
  assert.match(c.err(), /stopped by SIGINT at step (\d+) of 60; saved a checkpoint at step \1 .*loss\.svg and .*summary\.json\. Resume with: npx llamatrain train --resume=/);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.status, 'interrupted');
  assert.ok(summary.steps >= at && summary.steps < 60, `stopped at ${summary.steps} (signal after ${at})`);
  assert.ok(existsSync(join(out, 'loss.svg')));
  assert.ok(!existsSync(join(out, '.lock')), 'the lock is released');
  const r = await run(['train', `--resume=${out}`]);
  assert.equal(r.code, 0, r.err);
  assert.ok(weights(out).equals(weights(ref)), 'final weights byte for byte');
  assert.equal(readFileSync(join(out, 'samples.txt'), 'utf8'), readFileSync(join(ref, 'samples.txt'), 'utf8'), 'samples: the sampling RNG is checkpointed');
  const strip = (ms: Record<string, unknown>[]) => ms.filter((m) => m.type !== 'resume').map(({ tokensPerSec: _t, elapsedMs: _e, ...m }) => m);
  assert.deepEqual(strip(metrics(out)), strip(metrics(ref)), 'every logged value');
  const whole = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.deepEqual([whole.status, whole.steps, whole.segments], ['finished', 60, 2], 'summary.json covers the whole run');
});

test('SIGTERM: the same graceful stop, exit 143', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  const c = child(['train', `--data=${data}`, `--out=${out}`, '--steps=400', ...small]);
  let done = false;
  void c.exit.then(() => { done = true; });
  await waitForSteps(out, 3, () => done);
  c.p.kill('SIGTERM');
  assert.equal((await c.exit).code, 143, c.err());
  assert.match(c.err(), /stopped by SIGTERM at step \d+ of 400; saved a checkpoint/);
  assert.ok(existsSync(join(out, 'checkpoints', 'latest')));
});

test('a second Ctrl-C exits at once', async () => {
  const controller = new AbortController();
  const said: string[] = [];
  const s = stopOnSignals(controller, (m) => said.push(m));
  const exit = process.exit;
  const write = process.stderr.write;
  let exitedWith: number | undefined;
  process.exit = ((c?: number) => { exitedWith = c; }) as typeof process.exit;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    process.emit('SIGINT', 'SIGINT');
    assert.equal(controller.signal.reason, 'SIGINT');
    assert.equal(exitedWith, undefined);
    process.emit('SIGINT', 'SIGINT');
    assert.equal(exitedWith, 130);
  } finally {
    process.exit = exit;
    process.stderr.write = write;
    s.dispose();
  }
  assert.match(said[0]!, /stopping after the current step/);
  assert.ok(new RunStopped('x', 143).exitCode === 143);
});

for (const accum of [1, 2]) {
  test(`kill -9 at a random moment with --checkpoint-every=1${accum > 1 ? ' and --grad-accum=2' : ''}: the resumed run ends on the same bytes`, async () => {
    const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
    const opts = ['--steps=30', '--checkpoint-every=1', `--grad-accum=${accum}`, ...small];
    const ref = await reference(data, opts);
    const c = child(['train', `--data=${data}`, `--out=${out}`, ...opts]);
    let done = false;
    void c.exit.then(() => { done = true; });
    await waitForSteps(out, 2 + Math.floor(Math.random() * 24), () => done);
    await new Promise((r) => setTimeout(r, Math.random() * 20)); // anywhere in a step or a save
    c.p.kill('SIGKILL');
    await c.exit;
    const r = await run(['train', `--resume=${out}`]);
    assert.equal(r.code, 0, r.err);
    assert.ok(weights(out).equals(weights(ref)), 'final weights byte for byte');
    const steps = (ms: Record<string, unknown>[]) => ms.filter((m) => m.type === 'train').map((m) => [m.step, m.loss, m.gradNorm]);
    assert.deepEqual(steps(metrics(out)), steps(metrics(ref)));
  });
}

test('resume after a crash: truncated metrics line dropped with a warning; damaged latest → previous intact step; corrupt files named', async () => {
  const dir = tmp(), data = corpus(dir), base = join(dir, 'base');
  assert.equal((await run(['train', `--data=${data}`, `--out=${base}`, '--steps=6', '--checkpoint-every=2', ...small])).code, 0);
  const copy = (name: string) => { const d = join(dir, name); cpSync(base, d, { recursive: true }); rmSync(join(d, 'summary.json')); return d; };

  const t = copy('truncated');
  writeFileSync(join(t, 'metrics.jsonl'), readFileSync(join(t, 'metrics.jsonl'), 'utf8') + '{"type":"train","step":7,"lo');
  const rt = await run(['train', `--resume=${t}`, '--steps=8']);
  assert.equal(rt.code, 0, rt.err);
  assert.match(rt.err, /warning: .*metrics\.jsonl: dropped line \d+, not valid JSON/);
  assert.deepEqual(metrics(t).filter((m) => m.type === 'train').map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);

  const d = copy('damaged'); // one flipped byte in the newest checkpoint's weights
  const f = join(d, 'checkpoints', 'step-00000006', 'model.safetensors');
  const bytes = readFileSync(f); bytes[bytes.length - 3] ^= 1; writeFileSync(f, bytes);
  const rd = await run(['train', `--resume=${d}`, '--steps=8']);
  assert.equal(rd.code, 0, rd.err);
  assert.match(rd.err, /warning: .*step-00000006\/model\.safetensors: SHA-256 checksum mismatch .*using the previous intact checkpoint, .*step-00000004/);
  assert.match(rd.out, /resuming at step 4/);

  const m = copy('missing');
  writeFileSync(join(m, 'checkpoints', 'latest'), 'step-00000042\n');
  const rm_ = await run(['train', `--resume=${m}`, '--steps=8']);
  assert.equal(rm_.code, 0, rm_.err);
  assert.match(rm_.err, /step-00000042: missing — using the previous intact checkpoint, .*step-00000006/);

  const c = copy('config');
  writeFileSync(join(c, 'train_config.json'), '{"steps": 6, "dim"');
  const rc = await run(['train', `--resume=${c}`, '--steps=8']);
  assert.equal(rc.code, 2);
  assert.match(rc.err, /--resume .*config: .*config\/train_config\.json is not valid JSON/);

  const s = copy('state'); // damaged trainer_state.json in both checkpoints; without manifests the fields are checked
  for (const step of ['00000004', '00000006']) {
    rmSync(join(s, 'checkpoints', `step-${step}`, 'manifest.json'));
    writeFileSync(join(s, 'checkpoints', `step-${step}`, 'trainer_state.json'), '{"format":"llamatrain-checkpoint-1","step":6}');
  }
  const rs = await run(['train', `--resume=${s}`, '--steps=8']);
  assert.equal(rs.code, 1);
  assert.match(rs.err, /no intact checkpoint \(.*step-00000006\/trainer_state\.json: 'optimizer' must hold 'paramGroups'/);
});

test('--resume refuses changed data, geometry and shapes (listing them); --force goes on and records the truth; --out, --steps', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  assert.equal((await run(['train', `--data=${data}`, `--out=${out}`, '--steps=4', '--checkpoint-every=2', ...small])).code, 0);
  const config = () => readFileSync(join(out, 'train_config.json'), 'utf8');
  const before = config();
  const refuse = async (argv: string[], re: RegExp) => {
    const r = await run(['train', `--resume=${out}`, ...argv]);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, re, argv.join(' '));
    assert.equal(config(), before, `${argv.join(' ')}: train_config.json is not rewritten`);
  };
  await refuse(['--steps=8', '--seq-len=16', '--batch-size=4'], /these options differ from the run's \(train_config\.json\): --seq-len 16 \(was 32\), --batch-size 4 \(was 2\)\..*pass --force/);
  const other = join(dir, 'other.jsonl');
  writeFileSync(other, readFileSync(data, 'utf8').replace(/cat/g, 'bird'));
  await refuse(['--steps=8', `--data=${other}`], /--data .*other\.jsonl \(was .*tiny\.jsonl\)/);
  await refuse(['--steps=8', '--dim=32', '--force'], /--dim 32 \(was 16\): cannot change when a run is resumed/);
  await refuse(['--steps=8', `--out=${join(dir, 'elsewhere')}`], /--out .*elsewhere cannot be combined with --resume/);
  await refuse(['--steps=3'], /--steps=3 is below the 4 steps this run has done/);
  await refuse([], /this train run is complete \(4 steps\); to train further give a larger --steps/);
  writeFileSync(data, readFileSync(data, 'utf8').replace(/dog/g, 'fox')); // the same path, other contents
  await refuse(['--steps=8'], /the training data changed since the checkpoint/);

  const forced = await run(['train', `--resume=${out}`, '--steps=6', '--seq-len=16', '--force']);
  assert.equal(forced.code, 0, forced.err);
  assert.match(forced.err, /--force: resuming with --seq-len 16 \(was 32\), other training rows; the data loader starts a new pass/);
  assert.equal(JSON.parse(config()).seqLen, 16, 'train_config.json says what the run now uses');
  const resume = metrics(out).find((m) => m.type === 'resume');
  assert.deepEqual(resume.forced.seqLen, [32, 16]);
  assert.deepEqual(metrics(out).filter((m) => m.type === 'train').map((m) => m.step), [1, 2, 3, 4, 5, 6]);
});

test('watchForCollapse: gradient norm exactly 0 twice → collapsed; loss above 3 ln V three times → diverged; flukes and skipped steps do not count', () => {
  const watch = (steps: Partial<StepMetrics>[]) => {
    let handler: (m: StepMetrics) => void = () => {};
    const fake = { on: (_: string, fn: (m: StepMetrics) => void) => { handler = fn; } } as unknown as Trainer<LlamaForCausalLM>;
    const c = new AbortController();
    watchForCollapse(fake, 300, c, '--lr=1000000');
    steps.forEach((m, i) => handler({ step: i + 1, loss: 5, gradNorm: 1, skipped: false, targets: 10, ...m } as StepMetrics));
    return c.signal.aborted ? c.signal.reason as CollapsedRun : null;
  };
  const lnV = Math.log(300);
  const collapsed = watch([{}, { gradNorm: 0, loss: lnV }, { gradNorm: 0, loss: lnV }]);
  assert.ok(collapsed instanceof CollapsedRun && collapsed.status === 'collapsed');
  assert.match(collapsed.message, /^training collapsed at step 3: the gradient norm has been exactly 0 for 2 steps and the loss is stuck at 5\.704 = ln V \(V=300\).*likely cause is a learning rate far too high \(--lr=1000000\); lower it/);
  const diverged = watch([{ loss: 1e13 }, { loss: 20 }, { loss: 3e7 }]);
  assert.ok(diverged instanceof CollapsedRun && diverged.status === 'diverged');
  assert.match(diverged.message, /^training diverged at step 3: the loss has been above 3 × ln V = 17\.111 .* for 3 steps, now 3\.000e\+7/);
  assert.equal(watch([{ gradNorm: 0 }, {}, { gradNorm: 0 }, { loss: 30 }, { loss: 30 }, { loss: 9 }, { loss: 30 }]), null, 'not in a row');
  assert.equal(watch([{ gradNorm: 0, skipped: true }, { gradNorm: 0, targets: 0 }, { gradNorm: 0 }, { loss: 99, skipped: true }, { loss: 99 }, { loss: 99 }]), null,
    'skipped steps and steps without targets are left out');
});

test('--lr=1e6 without weight decay: a diverged run (finite loss of ~1e13) stops with a message and exit 1, not a finished run', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  const r = await run(['train', `--data=${data}`, `--out=${out}`, '--steps=20', '--lr=1e6', '--vocab-size=300', '--dim=32', '--layers=2', '--heads=2',
    '--kv-heads=1', '--seq-len=32', '--batch-size=4', '--warmup=1', '--eval-every=50', '--progress=false', '--backend=wasm', '--threads=1']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.err, /training diverged at step \d+: the loss has been above 3 × ln V = 17\.111 \(ln V: what guessing among V=300 tokens scores\) for 3 steps, now [\d.e+]+, so the weights have blown up\. The likely cause is a learning rate far too high \(--lr=1000000, --muon-lr=0\.03\); lower it/);
  assert.equal(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).status, 'diverged');
  const m = metrics(out).filter((x) => x.type === 'train');
  assert.ok(m.length < 20 && m.slice(-3).every((x) => (x.loss as number) > 3 * Math.log(300)), 'stopped after three steps above 3 ln V');
  assert.ok(!existsSync(join(out, 'model')), 'no exported model');
});

test('sft: the same run directory rules (reuse refused, --force with --resume only, changed geometry listed)', async () => {
  const dir = tmp(), out = join(dir, 'run');
  mkdirSync(out);
  writeFileSync(join(out, 'sft_config.json'), JSON.stringify({ seqLen: 128, batchSize: 8, steps: 10 }));
  const reuse = await run(['sft', `--out=${out}`, '--progress=false']);
  assert.equal(reuse.code, 2);
  assert.match(reuse.err, /--out .*run already holds a run \(sft_config\.json\); continue it with --resume=/);
  const force = await run(['sft', '--force', '--progress=false']);
  assert.equal(force.code, 2);
  assert.match(force.err, /--force goes with --resume/);
  const geo = await run(['sft', `--resume=${out}`, '--seq-len=64']);
  assert.equal(geo.code, 2);
  assert.match(geo.err, /these options differ from the run's \(sft_config\.json\): --seq-len 64 \(was 128\)/);
  const none = await run(['sft', `--resume=${out}`, '--steps=20']);
  assert.equal(none.code, 2);
  assert.match(none.err, /the run has no checkpoint to resume from/);
  assert.deepEqual(readdirSync(out), ['sft_config.json'], 'nothing written, the lock released');
});

test('--lr=0x10 is refused (decimal numbers only); a short run that blows up ends as diverged by its final evaluation, exit 1', async () => {
  const dir = tmp(), data = corpus(dir), out = join(dir, 'run');
  const hex = await run(['train', `--data=${data}`, `--out=${out}`, '--lr=0x10', ...small]);
  assert.equal(hex.code, 2);
  assert.match(hex.err, /--lr: expected a number written in decimal \(like 16, 0\.5 or 3e-4\), got "0x10"/);
  assert.ok(!existsSync(out));
  // two steps: fewer than the three the training-loss watch needs (before: exit 0 with a validation loss in the hundreds)
  const r = await run(['train', `--data=${data}`, `--out=${out}`, '--steps=2', '--lr=16', '--muon-lr=16', ...small.filter((x) => !x.startsWith('--warmup')), '--warmup=0']);
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.err, /training diverged: the final validation loss is [\d.e+]+|Infinity|NaN, above 3 × ln V = 17\.111 .*model is not exported.*--lr=16, --muon-lr=16/);
  assert.equal(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).status, 'diverged');
  assert.ok(!existsSync(join(out, 'model')), 'no exported model');
});
