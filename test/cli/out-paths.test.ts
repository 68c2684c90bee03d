// Output paths that cannot be made: /proc/nope, /sys/nope, an existing file. `tokenizer train --out` and
// `PeftModel.savePretrained` / `saveAdapter` end with a message naming the path (before: spun forever under /proc,
// raw EEXIST / EPERM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaForCausalLM, getPeftModel, saveAdapter, LlamatrainError } from '../../src/node.js';
import { runCli, tinyCorpus } from './helpers.js';

/** Fails instead of hanging. */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms); });
  try { return await Promise.race([p, limit]); } finally { clearTimeout(timer); }
}

test('tokenizer train --out onto /proc/nope, /sys/nope or a file: exit 2 naming --out, at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-outp-'));
  const data = tinyCorpus(dir);
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  for (const [out, re] of [['/proc/nope', /--out: \/proc\/nope/], ['/sys/nope', /--out: \/sys\/nope/], [file, /a-file is a file, not a directory/], [join(file, 'sub'), /a-file\/sub: a part of the path is a file, not a directory/]] as const) {
    const r = await within(10_000, runCli(['tokenizer', 'train', `--data=${data}`, `--out=${out}`, '--vocab-size=300']));
    assert.equal(r.code, 2, `${out}: ${r.err}`);
    assert.match(r.err, re);
  }
});

test('PeftModel.savePretrained and saveAdapter onto /proc/nope or a file: a LlamatrainError naming the path, at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-outp-'));
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  const peft = getPeftModel(new LlamaForCausalLM({ vocabSize: 16, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2 }), { r: 2 });
  for (const [out, re] of [['/proc/nope', /\/proc\/nope/], ['/sys/nope/deeper', /\/sys\/nope/], [join(file, 'sub'), /a-file\/sub: a part of the path is a file, not a directory \(while saving the adapter\)/], [file, /a-file: is a file, not a directory \(while saving the adapter\)/]] as const) {
    await assert.rejects(within(10_000, peft.savePretrained(out)), (e: unknown) => e instanceof LlamatrainError && re.test((e as Error).message));
    await assert.rejects(within(10_000, saveAdapter(peft, out)), (e: unknown) => e instanceof LlamatrainError && re.test((e as Error).message));
  }
});
