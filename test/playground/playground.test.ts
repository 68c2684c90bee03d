// The playground's pure parts (parameter count, input checks, the anatomy's mean) and its server. The page itself
// runs in a real browser in browser.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaForCausalLM } from '../../src/index.js';
import { main } from '../../src/cli/main.js';
import { startPlaygroundServer } from '../../src/cli/playground.js';
import { PRESETS, type Settings, checkSettings, dimsOf, ffnWidth, parameterCount } from '../../playground/src/presets.js';
import { MAX_TEXT_BYTES, binaryReason, checkPastedText, checkTextFile, planFolder } from '../../playground/src/inputs.js';
import { countedMean } from '../../playground/src/anatomy.js';
import { readableText, readableUtf8 } from '../../playground/src/text.js';

test('playground: the live parameter count is what LlamaForCausalLM has (presets, untied, GQA, head_dim, biases)', () => {
  const cases: Parameters<typeof parameterCount>[0][] = [
    ...Object.values(PRESETS).map((p) => dimsOf(p.settings)),
    dimsOf({ ...PRESETS.tiny.settings, tie: false, ffn: 0, kvHeads: 2 }),
    { vocabSize: 300, hiddenSize: 48, intermediateSize: 100, numHiddenLayers: 3, numAttentionHeads: 6, numKeyValueHeads: 3, headDim: 16, tieWordEmbeddings: false },
    { vocabSize: 300, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 1, numAttentionHeads: 4, numKeyValueHeads: 2, tieWordEmbeddings: true, attentionBias: true, mlpBias: true },
  ];
  for (const d of cases) {
    const model = new LlamaForCausalLM(d, { seed: 0 });
    assert.equal(parameterCount(d), model.numParameters(), JSON.stringify(d));
  }
  // the CLI's default model, as `llamatrain train` builds it (src/cli/train.ts: 8/3·dim rounded up to 32)
  assert.equal(ffnWidth(PRESETS.cli.settings), 512);
});

test('playground: settings problems are named', () => {
  const ok: Settings = { ...PRESETS.tiny.settings };
  assert.deepEqual(checkSettings(ok), []);
  assert.match(checkSettings({ ...ok, kvHeads: 3 }).join(), /KV heads \(3\) must divide heads \(4\)/);
  assert.match(checkSettings({ ...ok, dim: 66 }).join(), /hidden size \(66\) must be a multiple of heads \(4\)/);
  assert.match(checkSettings({ ...ok, dim: 12, heads: 4, kvHeads: 4 }).join(), /must be even/);
  assert.match(checkSettings({ ...ok, layers: NaN }).join(), /layers must be a whole number > 0 \(got nothing\)/);
  assert.match(checkSettings({ ...ok, vocabSize: 100 }).join(), /at least 260/);
  assert.match(checkSettings({ ...ok, warmup: 600 }).join(), /warmup \(600\) must be smaller than steps \(600\)/);
});

test('playground: bad data files are refused with a message (empty, too large, not text, wrong kind)', () => {
  assert.deepEqual(checkTextFile('a.txt', 10), { kind: 'txt' });
  assert.deepEqual(checkTextFile('B.JSONL', 10), { kind: 'jsonl' });
  const err = (r: ReturnType<typeof checkTextFile>) => ('error' in r ? r.error : '');
  assert.match(err(checkTextFile('empty.txt', 0)), /empty\.txt is empty \(0 bytes\)/);
  assert.match(err(checkTextFile('big.txt', 200 * 1024 * 1024)), /big\.txt is 200\.0 MB; the playground takes text files up to 50\.0 MB.*npx llamatrain train --data=big\.txt/);
  assert.deepEqual(checkTextFile('edge.txt', MAX_TEXT_BYTES), { kind: 'txt' });
  assert.match(err(checkTextFile('model.bin', 10)), /\.txt or \.jsonl/);
  const utf8 = new TextEncoder().encode('Grüße, 世界 — plain text\n');
  assert.equal(binaryReason('t.txt', utf8), null);
  assert.equal(binaryReason('t.txt', utf8.subarray(0, 4)), null, 'a character cut at the end of the sample is still text');
  assert.match(binaryReason('x.txt', Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 8, 0]))!, /does not look like text: .* NUL byte/);
  assert.match(binaryReason('x.txt', Uint8Array.from([0x41, 0xff, 0xfe, 0x41]))!, /not valid UTF-8/);
  assert.match(checkPastedText('  \n ')!, /empty/);
  assert.equal(checkPastedText('Some text.'), null);
});

test('playground: a Hugging Face folder needs config.json, model.safetensors and tokenizer.json', () => {
  const f = (...names: string[]) => names.map((n) => ({ path: `m/${n}`, size: 10 }));
  const plan = planFolder(f('config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'));
  assert.ok('plan' in plan);
  assert.deepEqual(plan.plan, { config: 'm/config.json', weights: ['m/model.safetensors'], index: null, tokenizer: 'm/tokenizer.json', tokenizerConfig: 'm/tokenizer_config.json' });
  const err = (r: ReturnType<typeof planFolder>) => ('error' in r ? r.error : '');
  assert.match(err(planFolder(f('model.safetensors', 'tokenizer.json'))), /not a Hugging Face model folder: it has no config\.json/);
  assert.match(err(planFolder(f('config.json', 'pytorch_model.bin', 'tokenizer.json'))), /found pytorch_model\.bin: PyTorch pickles are not read/);
  assert.match(err(planFolder([])), /The folder is empty/);
  const sharded = planFolder(f('config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'tokenizer.json'));
  assert.ok('plan' in sharded && sharded.plan.weights.length === 2 && sharded.plan.index === 'm/model.safetensors.index.json');
  // an unpacked export zip: the files sit one folder down
  const nested = planFolder(['config.json', 'model.safetensors', 'tokenizer.json'].map((n) => ({ path: `dl/llamatrain-model/${n}`, size: 5 })));
  assert.ok('plan' in nested && nested.plan.config === 'dl/llamatrain-model/config.json');
});

test('playground: the anatomy mean counts only targets that are not -100', () => {
  const losses = [1, 2, 0, 4, 0, 6];
  const targets = [5, 7, -100, 9, -100, 3];
  assert.deepEqual(countedMean(losses, targets), { mean: 13 / 4, count: 4 });
  assert.deepEqual(countedMean(losses, targets, 3, 6), { mean: 5, count: 2 });
  assert.ok(Number.isNaN(countedMean([0], [-100]).mean));
});

test('playground server: cross-origin isolation headers, index, 404, no path escape', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-pg-'));
  mkdirSync(join(dir, 'site'));
  writeFileSync(join(dir, 'site', 'index.html'), '<!doctype html><p>hi</p>');
  writeFileSync(join(dir, 'site', 'worker.js'), 'postMessage(1)');
  writeFileSync(join(dir, 'secret.txt'), 'no');
  const pg = await startPlaygroundServer({ dir: join(dir, 'site'), port: 0 });
  try {
    const r = await fetch(pg.url);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match(r.headers.get('content-type')!, /text\/html/);
    assert.match(await r.text(), /hi/);
    const js = await fetch(`${pg.url}worker.js`);
    assert.match(js.headers.get('content-type')!, /text\/javascript/);
    assert.equal(js.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.equal((await fetch(`${pg.url}nope.js`)).status, 404);
    assert.equal((await fetch(`${pg.url}..%2Fsecret.txt`)).status, 403);
    assert.equal((await fetch(pg.url, { method: 'POST' })).status, 405);
  } finally {
    await pg.close();
  }
  await assert.rejects(startPlaygroundServer({ dir: join(dir, 'missing'), port: 0 }), /the playground is not built: .*index\.html is missing.*npm run build:playground/);
  const lines: string[] = [];
  assert.equal(await main(['playground', '--help'], (s) => lines.push(s)), 0);
  assert.match(lines.join('\n'), /--port[\s\S]*--open/);
});

test('playground: token bytes that make no complete UTF-8 character read as ⟨XX⟩, not U+FFFD; split characters come out whole', () => {
  const euro = [0xe2, 0x82, 0xac]; // €
  assert.equal(readableUtf8(Uint8Array.from([0x68, 0x69, ...euro])), 'hi€');
  assert.equal(readableUtf8(Uint8Array.from([0x68, 0xe2, 0x82])), 'h⟨E2⟩⟨82⟩', 'a character cut short');
  assert.equal(readableUtf8(Uint8Array.from([0x82, 0x41, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff])), '⟨82⟩A⟨C0⟩⟨AF⟩⟨ED⟩⟨A0⟩⟨80⟩⟨FF⟩', 'stray, overlong, surrogate, invalid');
  assert.equal(readableUtf8(Uint8Array.from([0xf0, 0x9f, 0x98, 0x80])), '😀');
  // a tokenizer whose tokens are single bytes: the € spread over three tokens is one character of the sequence
  const tok = { decode: (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids)), tokenBytes: (id: number) => Uint8Array.of(id) };
  assert.equal(readableText(tok, [0x61, ...euro]), 'a€');
  assert.equal(readableText(tok, [euro[0]!]), '⟨E2⟩');
  for (let b = 0; b < 256; b++) assert.ok(!readableText(tok, [b]).includes('\uFFFD'), `byte ${b}`);
});
