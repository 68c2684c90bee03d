// sft's hostile data and options: "content": null, content as a list of parts (text joined, images refused),
// conversations without an assistant turn, shape options with --from (train and sft) — each a clear error or the
// right behaviour.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseChatJsonl, encodeChat } from '../../src/data/index.js';
import { InputError } from '../../src/core/errors.js';
import { trainByteLevelBPE } from '../../src/tokenizer/index.js';
import '../../src/tokenizer/node.js'; // the Jinja renderer
import { runCli, tinyCorpus } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-sftdata-'));
const jsonl = (dir: string, records: unknown[]) => {
  const p = join(dir, 'c.jsonl');
  writeFileSync(p, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
};
const isInput = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test((e as Error).message);

test('"content": null names the file and line (before: "chat template: Cannot perform operation on null values"); beside tool_calls it is kept', () => {
  const ok = { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] };
  const text = [ok, { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null }] }].map((r) => JSON.stringify(r)).join('\n');
  assert.throws(() => parseChatJsonl(text, 'c.jsonl'), isInput(/^c\.jsonl:2: "messages"\[1\] \(assistant\) has "content": null; give its text as a string/));
  const tools = parseChatJsonl(JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'f', arguments: {} } }] }] }), 'c.jsonl');
  assert.equal(tools[0]!.messages[1]!.content, null);
});

test('content as a list of parts: text parts joined (before: the literal JSON was trained on), other parts refused by name', () => {
  const parts = parseChatJsonl(JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 'What is ' }, { type: 'text', text: '2+2?' }] },
    { role: 'assistant', content: [{ type: 'text', text: '4' }] }] }), 'c.jsonl');
  assert.deepEqual(parts[0]!.messages.map((m) => m.content), ['What is 2+2?', '4']);
  const bpe = trainByteLevelBPE(['What is 2+2? 4 hello'], { vocabSize: 300, chat: true });
  const enc = encodeChat(bpe, parts[0]!);
  const shown = bpe.decode(Array.from(enc.inputIds));
  assert.ok(shown.includes('What is 2+2?') && !shown.includes('"type"'), shown);
  assert.throws(() => parseChatJsonl(JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }), 'c.jsonl'),
    isInput(/^c\.jsonl:1: "messages"\[0\]\.content\[0\] is a "image_url" part; only text parts/));
  assert.throws(() => parseChatJsonl(JSON.stringify({ messages: [{ role: 'user', content: 42 }] }), 'c.jsonl'), isInput(/has "content" a number; expected a string/));
});

test('a template error names the conversation\'s file and line', () => {
  const bpe = trainByteLevelBPE(['hello there'], { vocabSize: 300, chat: '{{ raise_exception("bad turn") }}' });
  const [ex] = parseChatJsonl('\n' + JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }), 'data.jsonl');
  assert.throws(() => encodeChat(bpe, ex!), isInput(/^data\.jsonl:2: this conversation could not be rendered: .*bad turn/));
});

test('sft: no conversation with an assistant turn says so (before: "raise --seq-len", "lower --batch-size")', async () => {
  const dir = tmp();
  const data = jsonl(dir, Array.from({ length: 6 }, (_, i) => ({ messages: [{ role: 'system', content: 'be nice' }, { role: 'user', content: `question ${i}` }] })));
  const r = await runCli(['sft', `--data=${data}`, `--out=${join(dir, 'run')}`, '--progress=false', '--backend=ref', '--steps=2', '--warmup=0']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /c\.jsonl: no training conversation has an assistant message \(role "assistant"\); sft learns the assistant's replies/);
  assert.doesNotMatch(r.err + r.out, /raise --seq-len|lower --batch-size/);
});

test('shape options with --from that disagree with its config.json are refused, not ignored (sft --dim, train --dim --layers)', async () => {
  const dir = tmp();
  const model = join(dir, 'model');
  mkdirSync(model);
  writeFileSync(join(model, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, intermediate_size: 192, vocab_size: 300 }));
  const sft = await runCli(['sft', `--from=${model}`, '--dim=32']);
  assert.equal(sft.code, 2);
  assert.match(sft.err, /--dim=32 with --from: the model's shape comes from --from's config\.json \(dim 64\), so this option shapes only a new model; drop it/);
  const train = await runCli(['train', `--data=${tinyCorpus(dir)}`, `--from=${model}`, '--dim=48', '--layers=3']);
  assert.equal(train.code, 2);
  assert.match(train.err, /--dim=48, --layers=3 with --from: .*\(dim 64, layers 2\), so these options shape only a new model; drop them/);
  // the model's own values spelled out are harmless (the run then stops later, at the missing tokenizer)
  const same = await runCli(['sft', `--from=${model}`, '--dim=64', '--layers=2']);
  assert.doesNotMatch(same.err, /with --from/);
  assert.match(same.err, /no tokenizer\.json/);
});
