// Data paths that are not regular files: a FIFO with no writer, /dev/zero, /dev/urandom, a directory. Each is
// refused by its file type before it is opened (before: a read that blocked or never ended, 35–65 s until killed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readChatJsonl, readDocuments } from '../../src/data/node.js';
import { FileAccessError } from '../../src/core/errors.js';
import { runCli } from '../cli/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'llamatrain-special-'));
const fifo = join(dir, 'pipe.jsonl');
execFileSync('mkfifo', [fifo]);
const cases: [string, RegExp][] = [
  [fifo, /is a FIFO \(named pipe\), not a regular file/],
  ['/dev/zero', /is a character device, not a regular file/],
  ['/dev/urandom', /is a character device, not a regular file/],
];

/** Fails the test instead of hanging when a read blocks. */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms: the read blocked`)), ms); });
  try { return await Promise.race([p, limit]); } finally { clearTimeout(timer); }
}

test('the library readers refuse FIFOs and devices at once, naming the file', async () => {
  for (const [path, re] of cases) {
    await assert.rejects(within(3000, readDocuments(path)), (e: unknown) => e instanceof FileAccessError && re.test((e as Error).message) && (e as Error).message.startsWith(path));
    assert.throws(() => readChatJsonl(path), (e: unknown) => e instanceof FileAccessError && re.test((e as Error).message));
  }
});

test('train and sft: --data naming a FIFO, a device or a directory is a usage error (exit 2) before any work', async () => {
  for (const command of ['train', 'sft']) {
    for (const [path, re] of [...cases, [dir, /is a directory/] as [string, RegExp]]) {
      const r = await within(5000, runCli([command, `--data=${path}`, `--out=${join(dir, 'out')}`, '--progress=false', '--backend=ref']));
      assert.equal(r.code, 2, `${command} ${path}: ${r.err}`);
      assert.match(r.err, new RegExp(`--data ${path.replace(/[/.]/g, '\\$&')}: ${re.source}`));
      assert.ok(!existsSync(join(dir, 'out')));
    }
  }
});
