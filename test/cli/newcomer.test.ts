// What a newcomer hits first: chat on a terminal, step lines, advice, honest help, readable samples, quiet output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startCompressorBaseline } from '../../src/cli/compressor.js';
import { main } from '../../src/cli/main.js';
import { lossCurveSvg } from '../../src/cli/plot.js';
import { runChat } from '../../src/cli/sft.js';
import { runCli, tinyCorpus } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-newcomer-'));
const BIN = join(process.cwd(), 'bin', 'llamatrain.js');
const tinySft = ['--steps=1', '--warmup=0', '--dim=32', '--layers=1', '--heads=2', '--kv-heads=1', '--seq-len=64', '--eval-every=0',
  '--sample-tokens=2', '--no-progress', '--backend=ref'];

/** A tiny chat model (an sft run of one step on the shipped conversations); its run directory. */
let chatRun: Promise<string> | null = null;
function chatModel(): Promise<string> {
  chatRun ??= (async () => {
    const dir = join(tmp(), 'sft');
    const r = await runCli(['sft', `--out=${dir}`, ...tinySft]);
    assert.equal(r.code, 0, r.err);
    return dir;
  })();
  return chatRun;
}

test('chat on a terminal: an empty line ends the command, with stdin still open', { skip: !existsSync('/usr/bin/script') && 'no script(1) for a pseudo-terminal' }, async () => {
  const dir = await chatModel();
  // script(1) gives the command a pseudo-terminal as stdin; our pipe into script stays open all along
  const child = spawn('/usr/bin/script', ['-qfec', `"${process.execPath}" "${BIN}" chat --model="${dir}" --backend=ref --max-new-tokens=2; echo CHAT-EXITED`, '/dev/null'],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const seen = (re: RegExp, ms: number) => new Promise<boolean>((resolve) => {
    const t = setTimeout(() => { child.stdout.off('data', on); resolve(false); }, ms);
    const on = () => { if (re.test(out)) { clearTimeout(t); child.stdout.off('data', on); resolve(true); } };
    child.stdout.on('data', on);
    on();
  });
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  try {
    assert.ok(await seen(/^> /m, 30_000), `the prompt: ${out}`);
    child.stdin.write('hi\n');
    assert.ok(await seen(/assistant: [^\n]*\n[^]*> /, 30_000), `a reply, then the prompt again: ${out}`);
    child.stdin.write('\n');
    assert.ok(await seen(/CHAT-EXITED/, 10_000), `chat should end at the empty line, while its terminal stays open; it printed:\n${out}`);
  } finally {
    child.stdin.end();
    child.kill();
  }
});

const trainSmall = ['--dim=16', '--layers=1', '--heads=2', '--kv-heads=1', '--vocab-size=300', '--seq-len=16', '--batch-size=4', '--warmup=1',
  '--eval-every=0', '--sample-tokens=4', '--no-baseline', '--backend=ref'];

test('--no-progress prints step lines, on a fresh run and on a resumed one (on stderr)', async () => {
  const dir = tmp(), data = tinyCorpus(dir), out = join(dir, 'run');
  const a = await runCli(['train', data, `--out=${out}`, '--steps=4', '--checkpoint-every=2', '--no-progress', ...trainSmall]);
  assert.equal(a.code, 0, a.err);
  assert.match(a.err, /^step 4\/4 \| loss \d/m);
  const b = await runCli(['train', `--resume=${out}`, '--steps=8', '--no-progress']);
  assert.equal(b.code, 0, b.err);
  for (const s of [6, 8]) assert.match(b.err, new RegExp(`^step ${s}/8 \\| loss \\d`, 'm'), `the resumed run's step ${s}:\n${b.err}`);
  assert.doesNotMatch(b.out, /^step \d/m, 'progress is a diagnostic: not on stdout');
});

test("sft's own advice for --data: a missing file, and 'brown' (plain text, not conversations)", async () => {
  const missing = await runCli(['sft', join(tmp(), 'nope.jsonl'), '--backend=ref']);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /no such file .*nope\.jsonl.*"messages".*"role": "user".*data\/chat\.jsonl/);
  assert.doesNotMatch(missing.err, /use 'brown'/);
  const brown = await runCli(['sft', '--data=brown', '--backend=ref']);
  assert.equal(brown.code, 2, brown.err);
  assert.match(brown.err, /--data brown: the Brown corpus is plain text, for train; sft reads conversations: a JSONL file/);
});

test('train --help: the parameter count is that of the default model, and no promised duration', async () => {
  const { newModel, trainSchema } = await import('../../src/cli/train.js');
  const defaults = Object.fromEntries(Object.entries(trainSchema).map(([k, s]) => [k, s.default])) as Parameters<typeof newModel>[0];
  const n = newModel(defaults, defaults.vocabSize).numParameters(); // the model train builds, counted by the model itself
  const h = await runCli(['train', '--help']);
  assert.equal(h.code, 0);
  assert.match(h.out, new RegExp(`a ${n.toLocaleString('en').replace(/,/g, ',')}-parameter model`));
  assert.doesNotMatch(h.out, /~\s*\d+ min|\d+M-parameter/);
});

test('the final train sample: the last evaluation\'s when it was at the last step, printed as indented lines under its settings', async () => {
  const dir = tmp(), data = tinyCorpus(dir), out = join(dir, 'run');
  // evaluations at steps 2 and 4 (the last): the final sample is the step-4 one, not a second draw of the same weights
  const r = await runCli(['train', data, `--out=${out}`, '--steps=4', '--no-progress', ...trainSmall.filter((a) => a !== '--eval-every=0'), '--eval-every=2',
    '--sample-tokens=24', '--temperature=1.5']);
  assert.equal(r.code, 0, r.err);
  const m = /^final sample \(step 4; temperature 1\.5, top-k 40\):\n((?: {4}.*(?:\n|$))+)/m.exec(r.out);
  assert.ok(m, r.out);
  const text = m[1]!.replace(/\n$/, '').split('\n').map((l) => l.slice(4)).join('\n'); // newlines stay newlines, each line indented
  const samples = readFileSync(join(out, 'samples.txt'), 'utf8');
  const at4 = /--- step 4 \(validation loss [\d.]+\) ---\n([^]*?)\n\n--- final/.exec(samples);
  assert.ok(at4, samples);
  assert.equal(text, at4[1], 'the final sample is the step-4 evaluation\'s');
  assert.ok(samples.endsWith(`--- final (step 4) ---\n${text}\n\n`));
  assert.match(r.err, /^ {2}sample \(temperature 1\.5, top-k 40\):\n {6}/m, 'evaluation samples: the same form, indented');
});

test('sft with its defaults does not warn about its own default vocabulary; an explicit --vocab-size larger than the data still warns', async () => {
  const a = await runCli(['sft', `--out=${join(tmp(), 'a')}`, ...tinySft]);
  assert.equal(a.code, 0, a.err);
  assert.doesNotMatch(a.out + a.err, /warning/);
  const b = await runCli(['sft', `--out=${join(tmp(), 'b')}`, '--vocab-size=5000', ...tinySft]);
  assert.equal(b.code, 0, b.err);
  assert.match(b.err, /warning: --vocab-size=5000 asked for 5,000 tokens, but the training text gives only/);
  assert.equal((await runCli(['sft', '--vocab-size=100'])).code, 2);
});

test('diagnostics on stderr, results on stdout: the backend line is short, its details with --verbose', async () => {
  const dir = await chatModel();
  const gen = await runCli(['generate', `--model=${dir}`, '--max-new-tokens=2', '--backend=auto', 'hi']);
  assert.equal(gen.code, 0, gen.err);
  const line = /^llamatrain: backend .*$/m.exec(gen.err);
  assert.ok(line, gen.err);
  assert.ok(line[0].length <= 100, `a short backend line: ${line[0]}`);
  assert.doesNotMatch(gen.out, /backend/);
  const verbose = await runCli(['generate', `--model=${dir}`, '--max-new-tokens=2', '--backend=auto', '--verbose', 'hi']);
  assert.match(verbose.err, /^llamatrain: backend \w+.*(auto: |GEMMs on )/m);
  // chat's stdout is the conversation only
  let said = '';
  const stderr = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await runChat([`--model=${dir}`, '--backend=auto', '--max-new-tokens=2'], (s) => { said += s; }, Readable.from(['hi\n']));
  } finally {
    process.stderr.write = stderr;
  }
  assert.ok(said.startsWith('assistant: '), JSON.stringify(said));
  // train and eval: the backend line on stderr too
  const data = tinyCorpus(tmp()), out = join(tmp(), 'run');
  const t = await runCli(['train', data, `--out=${out}`, '--steps=2', '--no-progress', ...trainSmall.filter((a) => a !== '--backend=ref'), '--backend=auto']);
  assert.equal(t.code, 0, t.err);
  assert.match(t.err, /^llamatrain: backend /m);
  assert.doesNotMatch(t.out, /^llamatrain: backend /m);
  const ev = await runCli(['eval', `--model=${out}`, '--backend=auto']);
  assert.equal(ev.code, 0, ev.err);
  assert.match(ev.err, /^llamatrain: backend /m);
  assert.doesNotMatch(ev.out, /^llamatrain: backend /m);
});

test('Ctrl-C while the progress bar is drawn: the message starts on a line of its own, on stderr', async () => {
  const dir = tmp(), data = tinyCorpus(dir), out = join(dir, 'run');
  const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
  Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
  const err: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  let sent = false;
  process.stderr.write = ((s: string | Uint8Array) => {
    err.push(String(s));
    if (!sent && /step [1-9]\d*\/400 \|/.test(String(s))) { sent = true; setImmediate(() => process.emit('SIGINT', 'SIGINT')); } // between two steps
    return true;
  }) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['train', data, `--out=${out}`, '--steps=400', ...trainSmall], () => {});
  } finally {
    process.stderr.write = orig;
    if (tty) Object.defineProperty(process.stderr, 'isTTY', tty); else delete (process.stderr as { isTTY?: boolean }).isTTY;
  }
  assert.equal(code, 130, err.join(''));
  const all = err.join('');
  const at = all.indexOf('llamatrain: SIGINT: stopping after the current step');
  assert.ok(at > 0, all);
  assert.equal(all[at - 1], '\n', `the message starts a line: …${JSON.stringify(all.slice(Math.max(0, at - 80), at + 20))}`);
});

test('loss.svg: the legend sits on its own box, drawn after every curve (a compressor line cannot cross its text)', () => {
  const svg = lossCurveSvg([
    { name: 'train loss', color: '#2563eb', points: [[0, 5], [100, 2]] },
    { name: 'gzip -9 (2.345 bits/byte)', color: '#9333ea', points: [[0, 4.9], [100, 4.9]], dashed: true }, // at the top, where the legend is
  ], 'title');
  const lines = svg.split('\n');
  const box = lines.findIndex((l) => l.startsWith('<rect class="legend"'));
  assert.ok(box > 0, 'a legend box');
  assert.ok(lines.every((l, i) => !l.startsWith('<polyline') || i < box), 'every curve is drawn before the box');
  const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((k) => Number(new RegExp(` ${k}="([\\d.]+)"`).exec(lines[box]!)![1]));
  assert.match(lines[box]!, /fill="white"/);
  for (const l of lines.slice(box + 1).filter((t) => t.startsWith('<text'))) {
    const tx = Number(/ x="([\d.]+)"/.exec(l)![1]), ty = Number(/ y="([\d.]+)"/.exec(l)![1]), name = />(.*)</.exec(l)![1]!;
    assert.ok(tx >= x! && tx + 7 * name.length <= x! + w! && ty - 12 >= y! && ty <= y! + h!, `"${name}" inside the box`);
  }
});

test('the test process has a private XDG_RUNTIME_DIR (else Dawn prints "error: XDG_RUNTIME_DIR is invalid or not set")', () => {
  const d = process.env.XDG_RUNTIME_DIR;
  assert.ok(d, 'tools/run-tests.mjs sets XDG_RUNTIME_DIR');
  const s = statSync(d);
  assert.ok(s.isDirectory() && (s.mode & 0o077) === 0, `${d}: a directory only its owner can use`);
});

/** The compressor children of this process (`ps`), by pid. */
function compressorChildren(): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes('--compressor-child')).map((l) => Number(l.trim().split(/\s+/)[0]));
}

test('compressor baseline: runs started together measure the same texts once; the others leave no child behind', { skip: process.platform !== 'linux' && 'ps --ppid' }, async () => {
  const dir = tmp();
  // a few MB of word salad: brotli -q 11 needs seconds for it, long enough to see who is still running
  let x = 1;
  const words = ['the', 'jury', 'said', 'county', 'election', 'produced', 'no', 'evidence', 'that', 'any', 'irregularities', 'took', 'place'];
  const doc = () => Array.from({ length: 2000 }, () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return words[(x >>> 8) % words.length] + String((x >>> 20) % 97); }).join(' ');
  const train = Array.from({ length: 150 }, doc), validation = [doc(), doc()];
  const started = [1, 2, 3, 4].map(() => startCompressorBaseline(train, validation, dir, 0));
  try {
    // wait for the gzip figure (a second or two); brotli takes longer
    for (let i = 0; i < 200 && started[3]!.result() === null; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(typeof started[3]!.result()?.gzip, 'number', 'every run sees the gzip figure, from the child or the cache');
    assert.equal(started[0]!.result()?.brotli, null, 'brotli is still measuring (else this test saw nothing)');
    const alive = compressorChildren();
    assert.equal(alive.length, 1, `one child measures, the others have exited; running: ${alive.length}`);
    assert.ok(readdirSync(dir).some((f) => f.endsWith('.lock')), 'it holds the lock');
  } finally {
    for (const pid of compressorChildren()) process.kill(pid);
  }
});
