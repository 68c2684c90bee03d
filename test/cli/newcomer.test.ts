// What a newcomer hits first: chat on a terminal, step lines, advice, honest help, readable samples, quiet output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers.js';

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
