// The README's API tour runs, in order, as one module importing 'llamatrain' by name (the built package).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { runCli } from './cli/helpers.js';

test('README tour: every ```js block runs and prints what its comments say', async () => {
  const md = readFileSync('README.md', 'utf8');
  const blocks = [...md.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 8, `expected the 8 tour blocks, found ${blocks.length}`);
  assert.match(md, /ends in \*\*`\.mjs`\*\*/, 'the README says how to run the tour (a .mjs file: top-level await and import)');
  const file = resolve('.readme-tour.test-tmp.mjs'); // in the repo root so that 'llamatrain' resolves to this package
  writeFileSync(file, blocks.join('\n'));
  // run in a temporary folder (what the tour writes, runs/readme-model, lands there), with the shipped data/ at hand
  const cwd = mkdtempSync(join(tmpdir(), 'llamatrain-readme-'));
  symlinkSync(resolve('data'), join(cwd, 'data'));
  let out: string;
  try {
    out = execFileSync(process.execPath, [file], { encoding: 'utf8', cwd });
  } finally {
    rmSync(file, { force: true });
  }
  // Each `console.log(...)  // expected` comment in the README is checked against the printed line.
  const expected = blocks.join('\n').split('\n').filter((l) => /console\.log\(/.test(l) && /\/\/ /.test(l))
    .map((l) => l.slice(l.lastIndexOf('// ') + 3).split(' = ')[0]!.split(' — ')[0]!.split(' (')[0]!.trim());
  // In order: each promise is the start of a later printed line than the previous one.
  const lines = out.trim().split('\n');
  let at = 0;
  for (const e of expected) {
    while (at < lines.length && !lines[at]!.startsWith(e)) at++;
    assert.ok(at < lines.length, `README promises "${e}" but the tour printed:\n${out}`);
    at++;
  }
  // what the tour saved is a model folder the CLI can use: the tokenizer went with the model
  const saved = join(cwd, 'runs', 'readme-model');
  assert.ok(existsSync(join(saved, 'config.json')) && existsSync(join(saved, 'tokenizer.json')), `the tour saves model and tokenizer into ${saved}`);
  const gen = await runCli(['generate', `--model=${saved}`, '--max-new-tokens=3', '--temperature=0', '--backend=ref', 'the cat']);
  assert.equal(gen.code, 0, gen.err);
  assert.ok(gen.out.startsWith('the cat'), gen.out);
  rmSync(cwd, { recursive: true, force: true });
});

test('no merge-conflict markers in tracked text files', () => {
  const files = execFileSync('git', ['ls-files', '*.md', '*.ts', '*.mjs', '*.json', '*.py', '*.sh', '.ci/*'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const marked: string[] = [];
  for (const f of files) {
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((l, i) => { if (/^(<{7}|>{7})( |$)|^={7}$/.test(l)) marked.push(`${f}:${i + 1}: ${l}`); });
  }
  assert.deepEqual(marked, [], `unresolved merge conflicts:\n${marked.join('\n')}`);
});
