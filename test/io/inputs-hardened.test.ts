// Regression tests, one per input case of the "nothing lost, nothing silent" hardening: each of these once loaded
// silently, crashed deep inside, hung or gave garbage. Expected messages are written from the rules, not copied
// from our output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AUTO_DOCUMENT_CHARS, FileAccessError, HFTokenizer, InputError, LlamaForCausalLM, LlamatrainError, ModelTooLargeError,
  checkModelMemory, checkTrainingMemory, chunkText, configFromHF, configToHF, decodeText, llamaConfig, loadPretrained,
  loadTokenizerFile, parseSafetensors, parseTextSplit, readDocuments, readParquetText, refBackend, serializeSafetensors, splitTextDocuments,
  tensor, trainByteLevelBPE, zeros, type Backend, type LlamaConfig,
} from '../../src/node.js';
import { loadTextData } from '../../src/cli/shared.js';
import { runCli } from '../cli/helpers.js';
import { fixturePath } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'llamatrain-inputs-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const file = (name: string, content: string | Uint8Array): string => {
  const p = join(tmp, `${n++}-${name}`);
  writeFileSync(p, content);
  return p;
};

const TINY: LlamaConfig = llamaConfig({
  vocabSize: 32, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1, bosTokenId: 1, eosTokenId: 2,
});
const tinyModel = new LlamaForCausalLM(TINY, { backend: refBackend, seed: 1 });
const tinyWeights = () => [...tinyModel.namedParameters()].map(([name, p]) => [name, { dtype: 'float32' as const, shape: [...p.shape], data: Float32Array.from(p.dataSync()) }] as const);

function modelDir(config: Record<string, unknown>, st: Uint8Array): string {
  const d = join(tmp, `model-${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, 'config.json'), JSON.stringify(config));
  writeFileSync(join(d, 'model.safetensors'), st);
  return d;
}

/** A safetensors file whose header text is given as is (so a name can appear twice). */
function rawSafetensors(headerText: string, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

// ---- .txt files become documents -------------------------------------------------------------------------------------

const paragraph = (i: number) => `Paragraph ${i} says something about the weather, the town and the people in it. `.repeat(4).trim();
const book = Array.from({ length: 60 }, (_, i) => paragraph(i)).join('\n\n') + '\n';

test('.txt: a book becomes many documents (auto: paragraphs grouped up to AUTO_DOCUMENT_CHARS), so train can hold out a validation split', async () => {
  const p = file('book.txt', book);
  const docs = await readDocuments(p);
  // 60 paragraphs of ~330 characters, grouped into documents of at most 2000: 6 paragraphs (+ separators) each
  const per = Math.floor((AUTO_DOCUMENT_CHARS + 2) / (paragraph(10).length + 2));
  assert.equal(docs.length, Math.ceil(60 / per));
  assert.ok(docs.every((d) => d.length <= AUTO_DOCUMENT_CHARS));
  assert.equal(docs.join('\n\n'), book.trim()); // nothing lost, order kept
  const data = await loadTextData(p, 'text', 0.1);
  assert.ok(data.train.length >= 2 && data.validation.length >= 1);
});

test('.txt: other splits — paragraph, line, chunk:N (words kept whole, nothing lost), file', () => {
  assert.deepEqual(splitTextDocuments('a b\nc\n\nd', 'x.txt', 'paragraph'), ['a b\nc', 'd']);
  assert.deepEqual(splitTextDocuments('a b\nc\n\nd', 'x.txt', 'line'), ['a b', 'c', 'd']);
  assert.deepEqual(splitTextDocuments('a b\nc\n\nd', 'x.txt', 'file'), ['a b\nc\n\nd']);
  assert.deepEqual(chunkText('hello world again', 8), ['hello ', 'world ', 'again']);
  assert.deepEqual(chunkText('abcdefghij', 4), ['abcd', 'efgh', 'ij']);
  assert.deepEqual(chunkText('a🙂b', 2), ['a', '🙂', 'b']); // never half a surrogate pair
  // a text without blank lines or newlines still becomes several documents under auto
  const oneLine = 'word '.repeat(1000);
  assert.equal(splitTextDocuments(oneLine, 'x.txt').length, Math.ceil(oneLine.trim().length / AUTO_DOCUMENT_CHARS));
  assert.equal(parseTextSplit('chunk:500'), 'chunk:500');
  assert.throws(() => parseTextSplit('chunk:0', '--txt-split'), /^InputError: --txt-split: "chunk:0" is not a text split; use 'auto', 'paragraph', 'line', 'file' or 'chunk:N'/);
});

test('--txt-split: a bad value is a usage error naming the flag; one document is refused with what to do', async () => {
  const p = file('short.txt', 'only one short paragraph\n');
  await assert.rejects(loadTextData(p, 'text', 0.05, { txtSplit: 'words' }), (e: Error) => e.name === 'UsageError' && /--txt-split: "words" is not a text split/.test(e.message));
  await assert.rejects(loadTextData(p, 'text', 0.05), /found 1 document\(s\); need at least 2 to hold out a validation split \(--txt-split=auto made 1 from its text\); use more text, or a finer --txt-split/);
});

test('tokenizer train on a .txt file works: no validation split is needed for a tokenizer', async () => {
  const p = file('tok.txt', 'just one paragraph of text for a tokenizer, nothing else\n');
  const out = join(tmp, `tok-${n++}`);
  const r = await runCli(['tokenizer', 'train', `--data=${p}`, '--vocab-size=270', `--out=${out}`]); // its warning: on stderr, captured
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(out, 'tokenizer.json')));
  const data = await loadTextData(p, 'text', 0);
  assert.deepEqual(data, { train: ['just one paragraph of text for a tokenizer, nothing else'], validation: [], source: p });
});

test('binary content given as text is refused: NUL bytes, or not UTF-8', async () => {
  const bin = file('model.txt', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]));
  await assert.rejects(readDocuments(bin), /model\.txt: not a text file: it contains NUL bytes \(the first at byte 8\)/);
  const latin1 = file('latin1.txt', new Uint8Array([...new TextEncoder().encode('caf'), 0xe9, 0x20, 0x6e, 0x61, 0xef, 0x76, 0x65]));
  await assert.rejects(readDocuments(latin1), /latin1\.txt: not UTF-8 text: 2 invalid UTF-8 sequence\(s\) in 10 bytes/);
  // a UTF-16 file (NUL high bytes) is refused too
  await assert.rejects(readDocuments(file('utf16.txt', new Uint8Array([0xff, 0xfe, 0x68, 0x00, 0x69, 0x00]))), /not a text file: it contains NUL bytes/);
  // U+FFFD written in the file is text, not an invalid byte
  assert.equal(decodeText(new TextEncoder().encode('a\ufffdb'), 'x.txt'), 'a\ufffdb');
  // the JSONL reader says the same of a NUL
  await assert.rejects(readDocuments(file('bin.jsonl', new Uint8Array([0x7b, 0x00, 0x7d, 0x0a]))), /bin\.jsonl:1: line 1 contains a NUL byte/);
});

test('JSONL with a UTF-8 BOM is read (file stream and in-memory parser)', async () => {
  const p = file('bom.jsonl', '\ufeff{"text": "first"}\n{"text": "second"}\n');
  assert.deepEqual(await readDocuments(p), ['first', 'second']);
  const t = file('bom.txt', '\ufeffone\n\ntwo');
  assert.deepEqual(await readDocuments(t, { split: 'paragraph' }), ['one', 'two']);
});

test('.json files: an array of strings or records is read; JSON Lines named .json is read; anything else refused clearly', async () => {
  assert.deepEqual(await readDocuments(file('a.json', '["one", "two"]')), ['one', 'two']);
  assert.deepEqual(await readDocuments(file('r.json', '\ufeff[{"text": "one", "id": 1}, {"text": "two"}]')), ['one', 'two']);
  assert.deepEqual(await readDocuments(file('b.json', '[{"body": "one"}]'), { field: 'body' }), ['one']);
  assert.deepEqual(await readDocuments(file('l.json', '{"text": "one"}\n{"text": "two"}\n')), ['one', 'two']);
  await assert.rejects(readDocuments(file('o.json', '{"data": [{"text": "x"}], "version": 2}')),
    /o\.json: holds an object with the keys data, version; expected an array of strings or of objects with a "text" field/);
  await assert.rejects(readDocuments(file('m.json', '[{"text": "ok"}, {"txt": "no"}]')), /m\.json: record 1: has no field "text"; its fields are: txt/);
  await assert.rejects(readDocuments(file('e.json', '[]')), /e\.json: the JSON array is empty/);
  await assert.rejects(readDocuments(file('n.json', '[1, 2]')), /n\.json: record 0: is a number, expected a string or an object with a "text" field/);
});

test('Parquet: a page header missing a required field (found by the fuzz suite: the decoder looped forever) is refused at once', async () => {
  const b = new Uint8Array(readFileSync(fixturePath('data', 'docs.parquet')));
  b[49]! ^= 242; // inside the first data page header of the "text" column: its level byte lengths go missing
  const t0 = performance.now();
  await assert.rejects(readParquetText(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer, 'text', 'flip.parquet'),
    /^InputError: flip\.parquet: not a readable Parquet file: row group 0, column chunk 1: page 0 \(at byte 37\): data_page_header_v2\.definition_levels_byte_length is undefined/);
  assert.ok(performance.now() - t0 < 2000);
});

// ---- safetensors ------------------------------------------------------------------------------------------------------

test('safetensors: a tensor name twice in the header (non-overlapping, JSON.parse would keep the last) is refused', () => {
  const data = new Uint8Array(12);
  const header = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
    '"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
  assert.throws(() => parseSafetensors(rawSafetensors(header, data), 'dup.safetensors'),
    (e: Error) => e instanceof InputError && /^dup\.safetensors: the header names tensor "w" twice/.test(e.message));
  // a key twice inside one entry is refused too
  const inner = '{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}';
  assert.throws(() => parseSafetensors(rawSafetensors(inner, new Uint8Array(4)), 'k.safetensors'), /k\.safetensors: the header's entry "w" has the key "dtype" twice/);
  // escaped names are compared by value: "a" and "\u0061" are the same name
  const esc = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\\u0061":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}';
  assert.throws(() => parseSafetensors(rawSafetensors(esc, new Uint8Array(2)), 'e.safetensors'), /names tensor "a" twice/);
});

test('safetensors: NaN/Inf weights are refused at load, naming the tensor (allowNonFinite lets them through)', async () => {
  const w = tinyWeights();
  const i = w.findIndex(([name]) => name === 'model.layers.0.mlp.up_proj.weight');
  w[i]![1].data[5] = NaN;
  w[i]![1].data[7] = -Infinity;
  const dir = modelDir(configToHF(TINY), serializeSafetensors(w));
  await assert.rejects(loadPretrained(dir, { backend: refBackend }),
    (e: Error) => e instanceof InputError && e.message.includes('tensor "model.layers.0.mlp.up_proj.weight" holds 1 NaN and 1 infinite value(s) of 512 (first at element 5)'));
  const m = await loadPretrained(dir, { backend: refBackend, allowNonFinite: true });
  assert.ok(Number.isNaN(m.model.layers[0]!.mlp.upProj.weight.dataSync()[5]!));
});

test('config.json: bos/eos/pad ids outside the vocabulary are refused, naming the key', () => {
  const base = configToHF(TINY);
  assert.throws(() => configFromHF({ ...base, bos_token_id: 32 }, 'c.json'), /^InputError: c\.json: bos_token_id is 32, outside the vocabulary \(ids 0 … 31, vocab_size 32\)/);
  assert.throws(() => configFromHF({ ...base, eos_token_id: [2, 99] }, 'c.json'), /c\.json: eos_token_id\[1\] is 99, outside the vocabulary/);
  assert.throws(() => configFromHF({ ...base, pad_token_id: -1 }, 'c.json'), /c\.json: pad_token_id is -1, outside the vocabulary/);
  assert.throws(() => configFromHF({ ...base, eos_token_id: [] }, 'c.json'), /eos_token_id is an empty list/);
  assert.equal(configFromHF({ ...base, pad_token_id: null }).padTokenId, null);
  // HF's default ids (1, 2) are only used where the vocabulary has them
  assert.equal(llamaConfig({ vocabSize: 2, hiddenSize: 8, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2 }).eosTokenId, null);
});

test('config.json: a model too large is refused before anything is allocated, saying what and by how much', async () => {
  const base = configToHF(TINY);
  const st = serializeSafetensors(tinyWeights());
  const layers = modelDir({ ...base, num_hidden_layers: 1_000_000_000 }, st);
  const t0 = performance.now();
  await assert.rejects(loadPretrained(layers, { backend: refBackend }),
    (e: Error) => e instanceof ModelTooLargeError && /config\.json: model too large: .* parameters; its parameters need .* of float32, more than this machine's memory/.test(e.message) && /num_hidden_layers 1000000000/.test(e.message));
  assert.ok(performance.now() - t0 < 2000, 'refused at once');
  await assert.rejects(loadPretrained(modelDir({ ...base, vocab_size: 1e9 }, st), { backend: refBackend }),
    /model too large: its tensor model\.embed_tokens\.weight would hold 1\.60e10 elements, more than one tensor can \(4294967296 = 2\^32, the JS typed-array limit; 3\.7× too many\)/);
  await assert.rejects(loadPretrained(modelDir({ ...base, intermediate_size: 2 ** 31 }, st), { backend: refBackend }),
    /its tensor model\.layers\.0\.mlp\.gate_proj\.weight would hold 3\.44e10 elements/);
  // a backend with a memory limit of its own (as wasm's 4 GiB): the limit is named
  const small: Backend = { ...refBackend, name: 'small', memoryLimit: () => ({ bytes: 1000, what: "the test backend's memory" }) };
  assert.throws(() => new LlamaForCausalLM(TINY, { backend: small }),
    /model too large: \d+ parameters; its parameters need .* KiB of float32, more than the test backend's memory: 1000 bytes \(\d+\.\d× too much\)/);
  assert.equal(checkModelMemory(TINY, { backend: refBackend }), (32 * 16 * 2 + 16 * 16 + 2 * 16 * 8 + 16 * 16 + 3 * 16 * 32 + 3 * 16) * 4);
});

test('training memory: gradients and optimizer state that cannot fit are refused before the first step', () => {
  const ps = [zeros([1000]).requireGrad()];
  const small: Backend = { ...refBackend, name: 'small', memoryLimit: () => ({ bytes: 10_000, what: "the test backend's memory" }) };
  // 1000 float32 parameters: gradient + 2 Adam moments = 3 × 4000 bytes > 10000
  assert.throws(() => checkTrainingMemory(ps, small), /model too large to train: training needs 11\.7 KiB more \(gradients and optimizer state for 1000 trainable parameters, 3 × 3\.9 KiB\)/);
  checkTrainingMemory(ps, refBackend);
});

test('config.json: an impossible head count is refused at once (its divisors are not listed by trying 2^31 numbers)', () => {
  const t0 = performance.now();
  assert.throws(() => llamaConfig({ vocabSize: 8, hiddenSize: 8, intermediateSize: 8, numHiddenLayers: 1, numAttentionHeads: 2 ** 31, numKeyValueHeads: 3, headDim: 2 }),
    /num_key_value_heads \(3\) must divide num_attention_heads \(2147483648\).*use one of 1, 2, 4, 8, 16, 32, …, 536870912, 1073741824, 2147483648/);
  assert.ok(performance.now() - t0 < 500);
});

// ---- tokenizer.json ---------------------------------------------------------------------------------------------------

const BPE_JSON = trainByteLevelBPE(['hello world, hello there', 'the world is wide'], { vocabSize: 270 }).toJSON() as Record<string, any>;
const tokFile = (json: unknown): string => {
  const d = join(tmp, `tok-${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(json));
  return d;
};

test('tokenizer.json: a model.type that contradicts the contents is refused at load (it encoded to nulls)', () => {
  for (const type of ['WordPiece', 'WordLevel']) {
    const j = structuredClone(BPE_JSON); j.model.type = type;
    assert.throws(() => loadTokenizerFile(tokFile(j)), new RegExp(`tokenizer\\.json: model\\.type is ${type} but the model has "merges", which only BPE models have`));
  }
  const u = structuredClone(BPE_JSON); u.model.type = 'Unigram';
  assert.throws(() => loadTokenizerFile(tokFile(u)), /model\.type is Unigram, whose vocab is a list of \[token, score\] pairs, but model\.vocab is an object/);
  const wp = structuredClone(BPE_JSON); wp.model.type = 'WordPiece'; delete wp.model.merges;
  assert.throws(() => loadTokenizerFile(tokFile(wp)), /model\.unk_token .* is not in model\.vocab: a WordPiece model maps unknown words to it/);
  const x = structuredClone(BPE_JSON); x.model.type = 'Nonsense';
  assert.throws(() => loadTokenizerFile(tokFile(x)), /model\.type string "Nonsense" is not a tokenizer model this library can run/);
});

test('tokenizer.json: no vocab, no merges, merges of another vocabulary, bad ids → InputError, not a library TypeError', () => {
  const nov = structuredClone(BPE_JSON); delete nov.model.vocab;
  assert.throws(() => loadTokenizerFile(tokFile(nov)), (e: Error) => e instanceof InputError && /model\.vocab is missing: the tokenizer has no vocabulary/.test(e.message));
  const nom = structuredClone(BPE_JSON); delete nom.model.merges; nom.model.type = 'BPE';
  assert.throws(() => loadTokenizerFile(tokFile(nom)), /model\.merges must be a list of merges .* for a BPE model, found nothing/);
  const other = structuredClone(BPE_JSON); other.model.merges = [...other.model.merges, 'zz qq'];
  assert.throws(() => loadTokenizerFile(tokFile(other)), /uses the token "zz", which is not in model\.vocab/);
  const bad = structuredClone(BPE_JSON); bad.model.vocab.a = -3;
  assert.throws(() => loadTokenizerFile(tokFile(bad)), /model\.vocab\["a"\] must be an integer id/);
});

test('tokenizer: encode results are checked — an id that is not in the vocabulary is an InputError, never printed garbage', () => {
  const tok = new HFTokenizer(BPE_JSON, {}, 'checked/tokenizer.json');
  assert.ok(tok.encode('hello world').every((id) => Number.isInteger(id) && id >= 0 && id < tok.vocabSize));
  const inner = tok.inner as { encode: (t: string, o?: unknown) => { ids: unknown[] } };
  inner.encode = () => ({ ids: [3, undefined] }); // what a model.type/vocabulary mismatch produced
  assert.throws(() => tok.encode('x'), /checked\/tokenizer\.json: encoding gave undefined at position 1, not an id of the vocabulary/);
});

test('tokenizer.json with a UTF-8 BOM loads', () => {
  const d = join(tmp, `tok-${n++}`);
  mkdirSync(d);
  writeFileSync(join(d, 'tokenizer.json'), `\ufeff${JSON.stringify(BPE_JSON)}`);
  assert.ok(loadTokenizerFile(d).encode('hello').length > 0);
});

// ---- tensor shapes ----------------------------------------------------------------------------------------------------

test('tensor(): impossible shapes are refused ([-1, -1], [2.5, 2], NaN, too large)', () => {
  assert.throws(() => tensor([1], [-1, -1]), (e: Error) => e instanceof InputError && /tensor\(\): shape \[-1, -1\] has an invalid dimension -1 at index 0; dimensions must be integers >= 0/.test(e.message));
  assert.throws(() => tensor([1, 2, 3, 4, 5], [2.5, 2]), /shape \[2\.5, 2\] has an invalid dimension 2\.5 at index 0/);
  assert.throws(() => tensor([1], [NaN]), /invalid dimension NaN/);
  assert.throws(() => zeros([2 ** 20, 2 ** 20]), /full\(\): shape \[1048576, 1048576\] holds 1099511627776 elements, more than one tensor can \(4294967296/);
  assert.throws(() => tensor([2 ** 31], [1], 'int32'), /int32 data must be integers, found 2147483648 at index 0/);
  assert.deepEqual([...tensor([], [0, 3]).shape], [0, 3]);
});

test('errors are ours: every class above is a LlamatrainError; file-system errors are FileAccessError with the errno code', async () => {
  for (const C of [InputError, ModelTooLargeError, FileAccessError]) assert.ok(C.prototype instanceof LlamatrainError);
  await assert.rejects(readDocuments(join(tmp, 'nope.txt')), (e: Error) => e instanceof FileAccessError && e.code === 'ENOENT');
});
