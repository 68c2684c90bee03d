// The tokenizer.json loader (a thin adapter over @huggingface/tokenizers) on a hand-written WordLevel/BPE file,
// special-token discovery, byte counting for bits per byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bitsPerByte, bitsPerByteFromMeanLoss, countBytes, totalBytes } from '../../src/tokenizer/index.js';
import { loadTokenizer } from '../../src/hf-tokenizer.js';
import { loadTokenizerFile } from '../../src/tokenizer/node.js';

// A LLaMA-like (SentencePiece-style BPE with ▁ and byte fallback) tokenizer.json, small enough to reason about.
const llamaLike = {
  version: '1.0',
  added_tokens: [
    { id: 0, content: '<unk>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    { id: 1, content: '<s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    { id: 2, content: '</s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
  ],
  normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
  },
  model: {
    type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true,
    vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3, h: 4, i: 5, '▁h': 6, '▁hi': 7 },
    merges: ['▁ h', '▁h i'],
  },
};

test('a LLaMA-style tokenizer.json: ids, BOS only when asked, special ids from the added tokens, decode', () => {
  const tok = loadTokenizer(llamaLike);
  assert.equal(tok.vocabSize, 8);
  assert.deepEqual([tok.bosId, tok.eosId, tok.padId], [1, 2, undefined]);
  assert.deepEqual(tok.encode('hi hi'), [7, 7]);
  assert.deepEqual(tok.encode('hi hi', { addSpecialTokens: true }), [1, 7, 7]);
  assert.equal(tok.decode([1, 7, 7, 2], { skipSpecialTokens: true }), 'hi hi');
  assert.equal(tok.decode([]), '');
  assert.throws(() => tok.decode([8]), /id 8 is outside the vocabulary \(0 … 7\)/);
});

test('tokenizer_config.json overrides special tokens; a file path or its directory loads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-hf-'));
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(llamaLike));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: { content: '</s>' }, pad_token: '<unk>' }));
    for (const p of [dir, join(dir, 'tokenizer.json')]) {
      const tok = loadTokenizerFile(p);
      assert.deepEqual([tok.bosId, tok.eosId, tok.padId], [1, 2, 0]);
    }
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|nope|>' }));
    assert.throws(() => loadTokenizerFile(dir), /eos_token "<\|nope\|>" is not in the vocabulary/);
    writeFileSync(join(dir, 'tokenizer.json'), '');
    assert.throws(() => loadTokenizerFile(dir), /tokenizer\.json: file is empty/);
    assert.throws(() => loadTokenizerFile(join(dir, 'missing')), /missing: no such file or directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => loadTokenizer('{"model": '), /tokenizer\.json: invalid JSON/);
  assert.throws(() => loadTokenizer({ version: '1.0' }), /no "model" section/);
});

test('countBytes equals the UTF-8 length (Buffer.byteLength), including surrogate pairs and lone surrogates', () => {
  assert.equal(countBytes('a'), 1);
  assert.equal(countBytes('é'), 2);
  assert.equal(countBytes('€'), 3);
  assert.equal(countBytes('😀'), 4);
  assert.equal(countBytes('\ud800x'), 4); // lone high surrogate → U+FFFD (3) + 'x'
  let seed = 7;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % n);
  for (let k = 0; k < 200; k++) {
    const s = String.fromCharCode(...Array.from({ length: rand(30) }, () => [rand(128), rand(0x800), rand(0x10000)][rand(3)]!));
    assert.equal(countBytes(s), Buffer.byteLength(s, 'utf8'), JSON.stringify(s));
  }
  assert.equal(totalBytes(['ab', 'é', '']), 4);
});

test('bits per byte: nats → bits, per byte of text', () => {
  // 1000 bytes scored with total NLL 1000·ln 2 nats = 1000 bits → 1 bit per byte
  assert.ok(Math.abs(bitsPerByte(1000 * Math.LN2, 1000) - 1) < 1e-12);
  // mean loss 2 nats/token, 250 tokens over 1000 bytes → 500 nats / ln2 / 1000
  assert.ok(Math.abs(bitsPerByteFromMeanLoss(2, 250, 1000) - 500 / Math.LN2 / 1000) < 1e-15);
  assert.throws(() => bitsPerByte(1, 0), /bytes must be positive/);
});
