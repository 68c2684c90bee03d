// A closed stdout: `llamatrain train … | head -1` and `generate … | head -1`. Before: an unhandled
// `Error: write EPIPE` stack, exit 1, and a run directory left locked with no checkpoint. Now the run goes on to
// its end (model, summary.json) and releases its lock; generate ends quietly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tinyCorpus } from './helpers.js';

/** Runs the CLI with stdout into a pipe that is closed after its first line (as `| head -1` does). */
function headOne(argv: string[]): Promise<{ code: number | null; err: string; first: string }> {
  const p = spawn(process.execPath, ['bin/llamatrain.js', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '', first = '';
  p.stderr.on('data', (d) => { err += d; });
  p.stdout.on('data', (d) => {
    if (first) return;
    first = String(d).split('\n')[0]!;
    p.stdout.destroy(); // the reader is gone: the child's next writes fail with EPIPE
  });
  return new Promise((res) => p.on('exit', (code) => res({ code, err, first })));
}

test('train | head -1: the run finishes, exports its model and releases its lock; no EPIPE stack', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-epipe-')), out = join(dir, 'run');
  const r = await headOne(['train', `--data=${tinyCorpus(dir)}`, `--out=${out}`, '--steps=6', '--vocab-size=300', '--dim=16', '--layers=1', '--heads=2',
    '--kv-heads=1', '--seq-len=32', '--batch-size=2', '--warmup=1', '--eval-every=2', '--eval-batches=1', '--sample-tokens=4', '--progress=false', '--backend=ref']);
  assert.ok(r.first.length > 0, 'a first line was read');
  assert.equal(r.code, 0, r.err);
  assert.doesNotMatch(r.err, /EPIPE|Error:/);
  assert.ok(!existsSync(join(out, '.lock')), 'the lock is released');
  assert.ok(existsSync(join(out, 'model', 'model.safetensors')));
  assert.equal(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).status, 'finished');

  const g = await headOne(['generate', `--model=${out}`, '--max-new-tokens=40', '--backend=ref', 'the cat']);
  assert.equal(g.code, 0, g.err);
  assert.doesNotMatch(g.err, /EPIPE|Error:/);
});
