// Byte-level BPE: merges on toy corpora worked out by hand, the GPT-2 byte table, round trips on the Brown corpus,
// and our tokenizer.json loaded by @huggingface/tokenizers giving identical ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BYTE_TO_UNICODE, ByteLevelBPE, trainByteLevelBPE } from '../../src/tokenizer/index.js';
import { loadTokenizer } from '../../src/hf-tokenizer.js';
import { loadTokenizerFile, saveTokenizer } from '../../src/tokenizer/node.js';
import { loadBrownCorpus } from '../../src/data/node.js';

const mergesOf = (t: ByteLevelBPE) => (t.toJSON().model as { merges: string[] }).merges;

test('GPT-2 byte table: printable bytes map to themselves, space → Ġ, newline → Ċ, 256 distinct symbols', () => {
  assert.equal(BYTE_TO_UNICODE[0x21], '!');
  assert.equal(BYTE_TO_UNICODE[0x41], 'A');
  assert.equal(BYTE_TO_UNICODE[0x20], 'Ġ'); // U+0120
  assert.equal(BYTE_TO_UNICODE[0x0a], 'Ċ'); // U+010A
  assert.equal(BYTE_TO_UNICODE[0x00], 'Ā'); // U+0100
  assert.equal(BYTE_TO_UNICODE[0xad], 'Ń'); // U+0143: soft hyphen is not printable, it is the 68th remapped byte
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
});

test('toy corpus: merges by hand — most frequent pair first, counts updated after each merge, minFrequency', () => {
  // pre-tokens: "ab", " ab", " ab", " abc" → pairs (a,b)=4, (Ġ,a)=3, (b,c)=1
  // merge 1: a+b → "ab" (id 256); then (Ġ,ab)=3, (ab,c)=1 → merge 2: Ġ+ab → "Ġab" (257); then (Ġab,c)=1 < 2: stop
  const t = trainByteLevelBPE(['ab ab ab abc'], { vocabSize: 300 });
  assert.deepEqual(mergesOf(t), ['a b', 'Ġ ab']);
  assert.equal(t.vocabSize, 259);
  assert.equal(t.tokenToId('ab'), 256);
  assert.equal(t.tokenToId('Ġab'), 257);
  assert.equal(t.tokenToId('<|endoftext|>'), 258);
  assert.equal(t.eosId, 258);
  // encode: "ab" → [256], " abc" → [257, 'c'=99]; the special token is kept whole
  assert.deepEqual(t.encode('ab abc<|endoftext|>'), [256, 257, 99, 258]);
  // minFrequency 1 and a vocab budget of exactly one more merge
  const t1 = trainByteLevelBPE(['ab ab ab abc'], { vocabSize: 260, minFrequency: 1 });
  assert.deepEqual(mergesOf(t1), ['a b', 'Ġ ab', 'Ġab c']);
  assert.deepEqual(t1.encode(' abc'), [258]);
});

test('ties: equal counts are broken by the smaller (left id, right id)', () => {
  // "ab", " cd": pairs (a,b), (Ġ,c), (c,d) all once. Smallest key first: (Ġ=32, c=99) → "Ġc" (256);
  // then (a=97, b=98) before (Ġc=256, d) → "ab" (257); then "Ġcd" (258).
  const t = trainByteLevelBPE(['ab cd'], { vocabSize: 1000, minFrequency: 1, specialTokens: [] });
  assert.deepEqual(mergesOf(t), ['Ġ c', 'a b', 'Ġc d']);
  assert.equal(t.vocabSize, 259);
  assert.equal(t.eosId, undefined);
});

test('errors: vocab too small, unknown EOS, empty corpus', () => {
  assert.throws(() => trainByteLevelBPE(['x'], { vocabSize: 256 }), /vocabSize must be an integer in \[257, /);
  assert.throws(() => trainByteLevelBPE(['x'], { vocabSize: 300, eosToken: '</s>' }), /eosToken "<\/s>" is not among specialTokens/);
  assert.throws(() => trainByteLevelBPE(['', '<|endoftext|>'], { vocabSize: 300 }), /the corpus has no text to learn from \(2 documents/);
});

test('Brown corpus: trained tokenizer round-trips every document; @huggingface/tokenizers gives identical ids', () => {
  const { train, validation } = loadBrownCorpus();
  const t0 = performance.now();
  const tok = trainByteLevelBPE(train, { vocabSize: 4096 });
  const trainMs = performance.now() - t0;
  assert.equal(tok.vocabSize, 4096);
  assert.equal(tok.eosId, 4095);
  // ours: decode(encode(doc)) === doc on the whole corpus
  let tokens = 0;
  for (const doc of [...train, ...validation]) {
    const ids = tok.encode(doc);
    tokens += ids.length;
    assert.equal(tok.decode(ids), doc);
  }
  // compression sanity: a 4096-token BPE on English needs well under one token per 3 bytes
  assert.ok(tokens < 6_000_000 / 3, `${tokens} tokens`);

  // HF: load the JSON text (as if from disk) and compare ids on the validation split and every 10th train doc
  const hf = loadTokenizer(JSON.stringify(tok.toJSON()), tok.tokenizerConfig());
  assert.equal(hf.vocabSize, 4096);
  assert.equal(hf.eosId, 4095);
  for (const doc of [...validation, ...train.filter((_, i) => i % 10 === 0)]) {
    const ours = tok.encode(doc);
    const theirs = hf.encode(doc);
    assert.deepEqual(theirs, ours);
    assert.equal(hf.decode(theirs), doc);
  }
  // text outside the corpus: bytes never seen, specials, whitespace runs, contractions, digits
  for (const s of ['Hello <|endoftext|> world\n\n  ünïcödé 😀 日本語 ', "it's   we'll\t\tx 12345 ...!!", '\u0000\u00ad\ufeff', '']) {
    assert.deepEqual(hf.encode(s), tok.encode(s));
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  // without a tokenizer_config.json, decode still does not "clean up" spaces (Tokenizers.js would by default)
  const bare = loadTokenizer(JSON.stringify(tok.toJSON()));
  const spaced = "word , word . it 's do n't ! ?";
  assert.equal(bare.decode(bare.encode(spaced)), spaced);
  console.log(`# BPE vocab 4096 trained on the Brown train split (${train.length} docs) in ${trainMs.toFixed(0)} ms`);
});

test('save → load from disk: tokenizer.json + tokenizer_config.json; fromJSON rebuilds our encoder', () => {
  const tok = trainByteLevelBPE(['the cat sat on the mat. the cat ate. ' .repeat(20)], { vocabSize: 280 });
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-tok-'));
  try {
    const p = saveTokenizer(tok, dir);
    const json = JSON.parse(readFileSync(p, 'utf8'));
    assert.equal(json.model.type, 'BPE');
    assert.equal(json.pre_tokenizer.type, 'ByteLevel');
    assert.deepEqual(json.added_tokens.map((t: { content: string; special: boolean }) => [t.content, t.special]), [['<|endoftext|>', true]]);
    const loaded = loadTokenizerFile(dir);
    assert.equal(loaded.eosId, tok.eosId);
    assert.equal(loaded.vocabSize, tok.vocabSize);
    const text = 'the cat sat on a hat';
    assert.deepEqual(loaded.encode(text), tok.encode(text));
    assert.deepEqual(ByteLevelBPE.fromJSON(json).encode(text), tok.encode(text));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
