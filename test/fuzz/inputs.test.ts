// Fuzz suite for the files llamatrain reads: property-based tests (fast-check) that mutate valid inputs — safetensors
// headers and bytes, config.json, tokenizer.json, text / JSONL / JSON / Parquet data, tensor shapes — and check that
// each case either works (and what it gives is valid) or throws one of our errors (`LlamatrainError`): never a
// TypeError/RangeError/SyntaxError from deep inside, never a hang (every case is timed), never a model with NaN
// weights loaded silently.
//
// Deterministic: a fixed seed (printed). Explore with other seeds and more cases:
//   LLAMATRAIN_FUZZ_SEED=123 LLAMATRAIN_FUZZ_SCALE=25 node tools/run-tests.mjs fuzz/inputs
// (SCALE multiplies every property's number of cases.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  HFTokenizer, LlamaForCausalLM, LlamatrainError, ModelTooLargeError, checkModelMemory, configFromHF, configToHF, decodeText,
  llamaConfig, loadPretrained, modelSize, noGrad, parseJsonDocuments, parseJsonl, parseSafetensors, parseTextSplit, readDocuments,
  readParquetText, refBackend, serializeSafetensors, splitTextDocuments, tensor, trainByteLevelBPE, type LlamaConfig,
} from '../../src/node.js';
import { fixturePath } from '../helpers.js';

const SEED = Number(process.env.LLAMATRAIN_FUZZ_SEED ?? 20250515);
const SCALE = Number(process.env.LLAMATRAIN_FUZZ_SCALE ?? 1);
/** A case that takes longer than this is a failure (a hang in the making); generous for a loaded 2-core machine. */
const CASE_LIMIT_MS = Number(process.env.LLAMATRAIN_FUZZ_CASE_MS ?? 5000);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** LLAMATRAIN_FUZZ_TRACE=1 writes each case to stderr before it runs (to find a case that hangs). */
const TRACE = process.env.LLAMATRAIN_FUZZ_TRACE === '1';
let total = 0; // oneCase calls (some properties run several per generated input)
let generated = 0; // generated inputs, over all properties

/** Runs one case: it must return normally or throw a LlamatrainError, within CASE_LIMIT_MS. */
async function oneCase<T>(what: string, input: () => string, fn: () => T | Promise<T>, check?: (r: T) => void | Promise<void>): Promise<void> {
  total++;
  if (TRACE) process.stderr.write(`fuzz case ${total}: ${what}: ${input()}\n`);
  const t0 = performance.now();
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    const ms = performance.now() - t0;
    assert.ok(ms < CASE_LIMIT_MS, `${what}: took ${ms.toFixed(0)} ms to fail (limit ${CASE_LIMIT_MS}) on ${input()}`);
    if (!(e instanceof LlamatrainError)) {
      assert.fail(`${what}: threw ${(e as Error)?.name ?? typeof e} — not one of our errors — on ${input()}:\n${(e as Error)?.stack ?? String(e)}`);
    }
    assert.ok(e.message.length > 20, `${what}: an error message too short to help: ${e.message}`);
    return;
  }
  const ms = performance.now() - t0;
  assert.ok(ms < CASE_LIMIT_MS, `${what}: took ${ms.toFixed(0)} ms (limit ${CASE_LIMIT_MS}) on ${input()}`);
  await check?.(result);
}

const params = (n: number) => ({ seed: SEED, numRuns: runs(n), endOnFailure: true });
const show = (v: unknown): string => {
  const s = JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x));
  return s === undefined ? String(v) : s.length > 400 ? `${s.slice(0, 400)}…` : s;
};

// ---- fixtures: a tiny model, its config and safetensors, a tokenizer ---------------------------------------------

const TINY: LlamaConfig = llamaConfig({
  vocabSize: 64, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, numKeyValueHeads: 1,
  bosTokenId: 1, eosTokenId: 2, maxPositionEmbeddings: 64,
});
const tinyModel = new LlamaForCausalLM(TINY, { backend: refBackend, seed: 3 });
const tinyEntries = [...tinyModel.namedParameters()].map(([n, p]) => [n, { dtype: 'float32' as const, shape: [...p.shape], data: p.dataSync() as Float32Array }] as const);
const TINY_BYTES = serializeSafetensors(tinyEntries, { metadata: { format: 'pt' } });
const TINY_CONFIG = configToHF(TINY);
const headerLen = Number(new DataView(TINY_BYTES.buffer).getBigUint64(0, true));
const TINY_HEADER = JSON.parse(new TextDecoder().decode(TINY_BYTES.subarray(8, 8 + headerLen))) as Record<string, any>;
const TINY_DATA = TINY_BYTES.subarray(8 + headerLen);

const CORPUS = [
  'The quick brown fox jumps over the lazy dog.', 'Pack my box with five dozen liquor jugs!', 'Ünïcödé: naïve café, 東京, emoji 🙂.',
  'Numbers 12345 and symbols #$%&*() are text too.', 'Sphinx of black quartz, judge my vow.',
];
const BPE = trainByteLevelBPE(CORPUS, { vocabSize: 300 });
const BPE_JSON = BPE.toJSON() as Record<string, any>;

let tmp = '';
test.before(() => { tmp = mkdtempSync(join(tmpdir(), 'llamatrain-fuzz-')); });
test.after(() => {
  rmSync(tmp, { recursive: true, force: true });
  console.log(`# fuzz/inputs: ${generated} generated cases (${total} checked calls), seed ${SEED} (LLAMATRAIN_FUZZ_SEED), scale ${SCALE} (LLAMATRAIN_FUZZ_SCALE)`);
});
let dirNo = 0;
function modelDir(config: unknown, bytes: Uint8Array, configText?: string): string {
  const d = join(tmp, `m${dirNo++}`);
  mkdirSync(d);
  writeFileSync(join(d, 'config.json'), configText ?? JSON.stringify(config));
  writeFileSync(join(d, 'model.safetensors'), bytes);
  return d;
}

/** After a successful load: every weight is finite and the model runs a forward pass. */
async function checkLoadedModel(m: LlamaForCausalLM): Promise<void> {
  for (const [name, p] of m.namedParameters()) {
    const d = await p.data();
    for (let i = 0; i < d.length; i++) assert.ok(Number.isFinite(d[i]), `loaded model has a non-finite weight in ${name}[${i}]`);
  }
  const ids = tensor(Int32Array.from([0, Math.min(1, m.config.vocabSize - 1)]), [1, 2], 'int32', m.backend);
  const out = noGrad(() => m.forward(ids));
  assert.deepEqual([...out.logits!.shape], [1, 2, m.config.vocabSize]);
}

// ---- safetensors -------------------------------------------------------------------------------------------------

type Entry = [string, unknown];
const oddNumber = fc.oneof(
  fc.integer({ min: -5, max: 5000 }), fc.double({ noNaN: false }), fc.constantFrom(-1, 0, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e300, -0),
);
const oddValue: fc.Arbitrary<unknown> = fc.oneof(oddNumber, fc.constantFrom(null, true, 'F32', '', [], {}, [1], '12'), fc.jsonValue({ maxDepth: 2 }));

/** One mutation of the header's entries (a list, so a name can appear twice). */
const headerMutation = fc.oneof(
  fc.record({ op: fc.constant('dtype'), i: fc.nat(), v: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I32', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'f32', 'X'), oddValue) }),
  fc.record({ op: fc.constant('shape'), i: fc.nat(), v: fc.oneof(fc.array(oddNumber, { maxLength: 4 }), oddValue) }),
  fc.record({ op: fc.constant('dim'), i: fc.nat(), k: fc.nat(3), v: oddNumber }),
  fc.record({ op: fc.constant('offsets'), i: fc.nat(), v: fc.oneof(fc.tuple(oddNumber, oddNumber), fc.array(oddNumber, { maxLength: 3 }), oddValue) }),
  fc.record({ op: fc.constant('shiftOffsets'), i: fc.nat(), a: fc.integer({ min: -16, max: 16 }), b: fc.integer({ min: -16, max: 16 }) }),
  fc.record({ op: fc.constant('duplicate'), i: fc.nat(), j: fc.nat() }),
  fc.record({ op: fc.constant('copyEntry'), i: fc.nat() }),
  fc.record({ op: fc.constant('delete'), i: fc.nat() }),
  fc.record({ op: fc.constant('rename'), i: fc.nat(), v: fc.string({ maxLength: 12 }) }),
  fc.record({ op: fc.constant('entry'), i: fc.nat(), v: oddValue }),
  fc.record({ op: fc.constant('metadata'), v: oddValue }),
  fc.record({ op: fc.constant('dropField'), i: fc.nat(), k: fc.constantFrom('dtype', 'shape', 'data_offsets') }),
);
type HeaderMutation = typeof headerMutation extends fc.Arbitrary<infer T> ? T : never;

function mutateHeader(entries: Entry[], m: HeaderMutation): void {
  const n = entries.length;
  const at = (i: number) => entries[i % n]!;
  const fields = (i: number): Record<string, unknown> | null => {
    const v = at(i)[1];
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  };
  switch (m.op) {
    case 'dtype': { const f = fields(m.i); if (f) f.dtype = m.v; break; }
    case 'shape': { const f = fields(m.i); if (f) f.shape = m.v; break; }
    case 'dim': { const f = fields(m.i); if (f && Array.isArray(f.shape) && f.shape.length) (f.shape as unknown[])[m.k % f.shape.length] = m.v; break; }
    case 'offsets': { const f = fields(m.i); if (f) f.data_offsets = m.v; break; }
    case 'shiftOffsets': {
      const f = fields(m.i);
      if (f && Array.isArray(f.data_offsets) && f.data_offsets.length === 2) f.data_offsets = [Number(f.data_offsets[0]) + m.a, Number(f.data_offsets[1]) + m.b];
      break;
    }
    case 'duplicate': at(m.j)[0] = at(m.i)[0]; break;
    case 'copyEntry': entries.push([at(m.i)[0], structuredClone(at(m.i)[1])]); break;
    case 'delete': if (n > 1) entries.splice(m.i % n, 1); break;
    case 'rename': at(m.i)[0] = m.v; break;
    case 'entry': at(m.i)[1] = m.v; break;
    case 'metadata': entries.unshift(['__metadata__', m.v]); break;
    case 'dropField': { const f = fields(m.i); if (f) delete f[m.k]; break; }
  }
}

function buildSafetensors(entries: Entry[], data: Uint8Array, headerLenOverride?: number): Uint8Array {
  const text = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${show(v) === 'undefined' ? 'null' : JSON.stringify(v) ?? 'null'}`).join(',')}}`;
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLenOverride ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

const byteMutation = fc.oneof(
  fc.record({ op: fc.constant('truncate'), at: fc.nat() }),
  fc.record({ op: fc.constant('flip'), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('flips'), at: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), v: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ op: fc.constant('append'), v: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('length'), v: fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 32, 2 ** 53 - 1, headerLen - 1, headerLen + 1)) }),
  fc.record({ op: fc.constant('nonFinite'), at: fc.nat(), v: fc.constantFrom(NaN, Infinity, -Infinity) }),
);

function mutateBytes(src: Uint8Array, m: typeof byteMutation extends fc.Arbitrary<infer T> ? T : never): Uint8Array {
  const b = src.slice();
  switch (m.op) {
    case 'truncate': return b.subarray(0, m.at % b.length);
    case 'flip': b[m.at % b.length] ^= m.v || 1; return b;
    case 'flips': for (const a of m.at) b[a % b.length] ^= m.v; return b;
    case 'append': { const o = new Uint8Array(b.length + m.v.length); o.set(b); o.set(m.v, b.length); return o; }
    case 'length': if (b.length >= 8) new DataView(b.buffer, b.byteOffset).setBigUint64(0, BigInt(m.v), true); return b;
    case 'nonFinite': {
      const dataStart = 8 + headerLen;
      const floats = Math.floor((b.length - dataStart) / 4);
      if (floats <= 0) return b; // truncated before the data: nothing to overwrite
      new DataView(b.buffer, b.byteOffset).setFloat32(dataStart + 4 * (m.at % floats), m.v, true);
      return b;
    }
  }
}

const baseEntries = (): Entry[] => Object.entries(structuredClone(TINY_HEADER));

test('fuzz: safetensors header mutations → a loaded file whose tensors match their shapes, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.array(headerMutation, { minLength: 1, maxLength: 3 }), fc.option(fc.integer({ min: -8, max: 8 })), async (muts, dataDelta) => {
    generated++;
    const entries = baseEntries();
    for (const m of muts) mutateHeader(entries, m);
    let data = TINY_DATA;
    if (dataDelta !== null) data = dataDelta < 0 ? data.subarray(0, data.length + dataDelta) : new Uint8Array([...data, ...new Uint8Array(dataDelta)]);
    const bytes = buildSafetensors(entries, data);
    await oneCase('parseSafetensors', () => `mutations ${show(muts)}, data ${dataDelta}`, () => parseSafetensors(bytes, 'fuzz.safetensors'), (r) => {
      const names = entries.map(([k]) => k).filter((k) => k !== '__metadata__');
      assert.equal(new Set(names).size, names.length, `a header with a duplicated name was accepted: ${show(muts)}`);
      for (const [name, t] of r.tensors) assert.equal(t.data.length, t.shape.reduce((a, d) => a * d, 1), `${name}: data length ≠ shape`);
    });
  }), params(200));
});

test('fuzz: safetensors byte mutations (truncation, flipped bytes, lying lengths, NaN/Inf) → loadPretrained works with finite weights, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.array(byteMutation, { minLength: 1, maxLength: 2 }), async (muts) => {
    generated++;
    let bytes: Uint8Array = TINY_BYTES;
    for (const m of muts) bytes = mutateBytes(bytes, m);
    await oneCase('parseSafetensors(bytes)', () => show(muts), () => parseSafetensors(bytes, 'fuzz.safetensors'));
    const dir = modelDir(TINY_CONFIG, bytes);
    await oneCase('loadPretrained', () => `${dir}: ${show(muts)}`, () => loadPretrained(dir, { backend: refBackend }), checkLoadedModel);
  }), params(120));
});

test('fuzz: safetensors header mutations through loadPretrained → a working model or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.array(headerMutation, { minLength: 1, maxLength: 2 }), async (muts) => {
    generated++;
    const entries = baseEntries();
    for (const m of muts) mutateHeader(entries, m);
    const dir = modelDir(TINY_CONFIG, buildSafetensors(entries, TINY_DATA));
    await oneCase('loadPretrained', () => `${dir}: ${show(muts)}`, () => loadPretrained(dir, { backend: refBackend }), checkLoadedModel);
  }), params(60));
});

// ---- config.json ---------------------------------------------------------------------------------------------------

const CONFIG_KEYS = [...Object.keys(TINY_CONFIG), 'rope_type', 'unknown_key'];
const configMutation = fc.record({
  key: fc.constantFrom(...CONFIG_KEYS),
  v: fc.oneof(fc.constant(undefined), oddValue, fc.integer({ min: -2, max: 130 }), fc.constantFrom(1e6, 1e9, 2 ** 31, 2 ** 40),
    fc.record({ rope_type: fc.constantFrom('default', 'linear', 'llama3', 'yarn', 5), factor: oddNumber, low_freq_factor: oddNumber,
      high_freq_factor: oddNumber, original_max_position_embeddings: oddNumber, rope_theta: oddNumber }, { requiredKeys: [] })),
});

test('fuzz: config.json mutations (every field missing, mistyped, negative, huge, float, contradicting) → a consistent config, or an InputError / ModelTooLargeError before allocating', async () => {
  await fc.assert(fc.asyncProperty(fc.array(configMutation, { minLength: 1, maxLength: 3 }), async (muts) => {
    generated++;
    const json: Record<string, unknown> = structuredClone(TINY_CONFIG);
    for (const { key, v } of muts) { if (v === undefined) delete json[key]; else json[key] = v; }
    await oneCase('configFromHF + model', () => show(muts), () => {
      const cfg = configFromHF(json, 'fuzz/config.json');
      checkModelMemory(cfg, { backend: refBackend, source: 'fuzz/config.json' });
      return cfg;
    }, async (cfg) => {
      // what an accepted config must satisfy (the model's construction relies on it)
      for (const k of ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHiddenLayers', 'numAttentionHeads', 'numKeyValueHeads', 'headDim'] as const) {
        assert.ok(Number.isSafeInteger(cfg[k]) && cfg[k] > 0, `${k} = ${cfg[k]} accepted`);
      }
      assert.equal(cfg.numAttentionHeads % cfg.numKeyValueHeads, 0);
      assert.equal(cfg.headDim % 2, 0);
      for (const id of [cfg.bosTokenId, cfg.padTokenId, ...(Array.isArray(cfg.eosTokenId) ? cfg.eosTokenId : [cfg.eosTokenId])]) {
        assert.ok(id === null || (Number.isInteger(id) && id >= 0 && id < cfg.vocabSize), `special id ${id} outside vocab ${cfg.vocabSize} accepted`);
      }
      assert.ok(Number.isFinite(cfg.rmsNormEps) && cfg.rmsNormEps > 0 && Number.isFinite(cfg.ropeTheta) && cfg.ropeTheta > 0);
      if (modelSize(cfg).parameters <= 300_000) {
        await oneCase('build + forward', () => show(muts), () => new LlamaForCausalLM(cfg, { backend: refBackend }), async (m) => {
          const ids = tensor(Int32Array.from([0, cfg.vocabSize - 1]), [1, 2], 'int32', refBackend);
          const out = noGrad(() => m.forward(ids));
          assert.deepEqual([...out.logits!.shape], [1, 2, cfg.vocabSize]);
        });
      }
    });
  }), params(160));
});

test('fuzz: config.json text (truncated, flipped bytes, BOM) through loadPretrained → a working model or our error', async () => {
  const text = JSON.stringify(TINY_CONFIG, null, 2);
  await fc.assert(fc.asyncProperty(fc.oneof(
    fc.record({ op: fc.constant('truncate'), at: fc.nat() }),
    fc.record({ op: fc.constant('flip'), at: fc.nat(), c: fc.string({ minLength: 1, maxLength: 2, unit: 'binary' }) }),
    fc.record({ op: fc.constant('bom'), at: fc.constant(0) }),
  ), async (m) => {
    generated++;
    const t = m.op === 'truncate' ? text.slice(0, m.at % text.length) : m.op === 'bom' ? `\ufeff${text}` : text.slice(0, m.at % text.length) + m.c + text.slice((m.at % text.length) + 1);
    const dir = modelDir(null, TINY_BYTES, t);
    await oneCase('loadPretrained(config text)', () => show(m), () => loadPretrained(dir, { backend: refBackend }), checkLoadedModel);
  }), params(40));
});

// ---- tokenizer.json -------------------------------------------------------------------------------------------------

const tokMutation = fc.oneof(
  fc.record({ op: fc.constant('type'), v: fc.oneof(fc.constantFrom('BPE', 'WordPiece', 'WordLevel', 'Unigram', undefined, 'bpe'), oddValue) }),
  fc.record({ op: fc.constant('modelField'), k: fc.constantFrom('vocab', 'merges', 'unk_token', 'continuing_subword_prefix', 'end_of_word_suffix', 'byte_fallback', 'dropout', 'ignore_merges', 'unk_id'),
    v: fc.oneof(fc.constant(undefined), oddValue) }),
  fc.record({ op: fc.constant('vocabId'), i: fc.nat(), v: oddValue }),
  fc.record({ op: fc.constant('dropVocab'), i: fc.nat() }),
  fc.record({ op: fc.constant('merge'), i: fc.nat(), v: fc.oneof(oddValue, fc.string({ maxLength: 6 })) }),
  fc.record({ op: fc.constant('added'), v: fc.oneof(oddValue, fc.array(fc.record({ id: oddNumber, content: fc.oneof(fc.string({ maxLength: 5 }), oddValue), special: fc.boolean() }, { requiredKeys: [] }), { maxLength: 3 })) }),
  fc.record({ op: fc.constant('section'), k: fc.constantFrom('normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model'), v: oddValue }),
  fc.record({ op: fc.constant('unigram'), n: fc.nat(20) }),
);

test('fuzz: tokenizer.json mutations (model.type swaps, missing vocab/merges, wrong types, ids out of range) → encodes to valid ids, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.array(tokMutation, { minLength: 1, maxLength: 3 }), fc.array(fc.string({ maxLength: 12, unit: 'binary' }), { minLength: 1, maxLength: 3 }), async (muts, texts) => {
    generated++;
    const json = structuredClone(BPE_JSON);
    for (const m of muts) {
      const model = json.model && typeof json.model === 'object' ? json.model : null;
      switch (m.op) {
        case 'type': if (model) { if (m.v === undefined) delete model.type; else model.type = m.v; } break;
        case 'modelField': if (model) { if (m.v === undefined) delete model[m.k]; else model[m.k] = m.v; } break;
        case 'vocabId': if (model?.vocab && typeof model.vocab === 'object') { const ks = Object.keys(model.vocab); if (ks.length) model.vocab[ks[m.i % ks.length]!] = m.v; } break;
        case 'dropVocab': if (model?.vocab && typeof model.vocab === 'object') { const ks = Object.keys(model.vocab); if (ks.length) delete model.vocab[ks[m.i % ks.length]!]; } break;
        case 'merge': if (Array.isArray(model?.merges) && model.merges.length) model.merges[m.i % model.merges.length] = m.v; break;
        case 'added': json.added_tokens = m.v; break;
        case 'section': json[m.k] = m.v; break;
        case 'unigram': if (model) { model.type = 'Unigram'; model.vocab = Object.keys(BPE_JSON.model.vocab).slice(0, m.n).map((t, i) => [t, -i]); delete model.merges; } break;
      }
    }
    await oneCase('HFTokenizer', () => show(muts), () => new HFTokenizer(json, {}, 'fuzz/tokenizer.json'), async (tok) => {
      assert.ok(Number.isSafeInteger(tok.vocabSize) && tok.vocabSize > 0);
      for (const t of texts) {
        await oneCase('encode/decode', () => `${show(muts)} text ${show(t)}`, () => tok.encode(t), (ids) => {
          for (const id of ids) assert.ok(Number.isInteger(id) && id >= 0 && id < tok.vocabSize, `encode gave ${id} (vocab ${tok.vocabSize})`);
          assert.equal(typeof tok.decode(ids), 'string');
        });
      }
    });
  }), params(140));
});

// ---- data files -----------------------------------------------------------------------------------------------------

const splitArb = fc.oneof(fc.constantFrom('auto', 'paragraph', 'line', 'file', 'paragraphs', 'lines', 'chunk:0', 'chunk:', 'Chunk:5', 'words'),
  fc.integer({ min: 1, max: 300 }).map((n) => `chunk:${n}`), oddValue);
const textArb = fc.oneof(
  fc.string({ maxLength: 300, unit: 'binary' }),
  fc.array(fc.oneof(fc.string({ maxLength: 40, unit: 'grapheme' }), fc.constantFrom('\n', '\n\n', '\r\n', '\r\n\r\n', '  \n \t\n', '\u0000', '\ufeff', '\ud83d', '\ude00')), { maxLength: 30 }).map((a) => a.join('')),
);

test('fuzz: text files (random bytes, binary, BOM, blank lines, every split) → non-empty documents, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 400 }), textArb.map((s) => new TextEncoder().encode(s))), splitArb, async (bytes, split) => {
    generated++;
    await oneCase('decodeText + splitTextDocuments', () => `${show(Array.from(bytes.subarray(0, 60)))} split ${show(split)}`, () => {
      const s = parseTextSplit(split, 'split');
      return { s, docs: splitTextDocuments(decodeText(bytes, 'fuzz.txt'), 'fuzz.txt', s) };
    }, ({ s, docs }) => {
      assert.ok(docs.length >= 1);
      for (const d of docs) {
        assert.ok(typeof d === 'string' && d.trim().length > 0, `an empty document from split ${s}`);
        assert.ok(!d.includes('\u0000'), 'a NUL byte passed as text');
      }
      const chunk = /^chunk:(\d+)$/.exec(s);
      if (chunk) for (const d of docs) assert.ok(d.length <= Math.max(2, Number(chunk[1])), `a ${d.length}-character document from ${s}`);
    });
  }), params(120));
});

const recordArb = fc.oneof(
  fc.record({ text: fc.string({ maxLength: 30, unit: 'grapheme' }) }),
  fc.record({ text: oddValue }, { requiredKeys: [] }),
  fc.record({ body: fc.string({ maxLength: 10 }) }),
  oddValue,
  fc.string({ maxLength: 20 }),
);

test('fuzz: JSONL (BOM, blank lines, CRLF, wrong field types, truncated) → strings, or an InputError naming the line', async () => {
  await fc.assert(fc.asyncProperty(fc.array(recordArb, { maxLength: 8 }), fc.constantFrom('\n', '\r\n', '\n\n'), fc.boolean(), fc.option(fc.nat()), async (records, eol, bom, cut) => {
    generated++;
    let text = (bom ? '\ufeff' : '') + records.map((r) => JSON.stringify(r) ?? '').join(eol);
    if (cut !== null) text = text.slice(0, cut % (text.length + 1));
    await oneCase('parseJsonl', () => show(text), () => parseJsonl(text, 'text', 'fuzz.jsonl'), (docs) => {
      assert.ok(docs.length >= 1 && docs.every((d) => typeof d === 'string'));
    });
  }), params(80));
});

test('fuzz: JSON data files (arrays of strings/records, objects, scalars, JSON Lines named .json, truncated) → strings, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.oneof(
    fc.array(recordArb, { maxLength: 6 }).map((a) => JSON.stringify(a)),
    fc.array(recordArb, { maxLength: 6 }).map((a) => a.map((r) => JSON.stringify(r) ?? 'null').join('\n')),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
    fc.record({ data: fc.array(recordArb, { maxLength: 3 }) }).map((v) => JSON.stringify(v)),
  ), fc.boolean(), fc.option(fc.nat()), async (text0, bom, cut) => {
    generated++;
    let text = (bom ? '\ufeff' : '') + text0;
    if (cut !== null) text = text.slice(0, cut % (text.length + 1));
    await oneCase('parseJsonDocuments', () => show(text), () => parseJsonDocuments(text, 'text', 'fuzz.json'), (docs) => {
      assert.ok(docs.length >= 1 && docs.every((d) => typeof d === 'string'));
    });
  }), params(80));
});

const PARQUET = new Uint8Array(readFileSync(fixturePath('data', 'docs.parquet')));

test('fuzz: Parquet files (truncated, flipped bytes) → strings, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.oneof(
    fc.record({ op: fc.constant('truncate'), at: fc.nat() }),
    fc.record({ op: fc.constant('flips'), at: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), v: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ op: fc.constant('tailFlip'), at: fc.nat(40), v: fc.integer({ min: 1, max: 255 }) }),
  ), async (m) => {
    generated++;
    let b = PARQUET.slice();
    if (m.op === 'truncate') b = b.slice(0, m.at % b.length);
    else if (m.op === 'flips') for (const a of m.at) b[a % b.length] ^= m.v;
    else b[b.length - 1 - (m.at % b.length)] ^= m.v; // the footer: metadata and its length
    await oneCase('readParquetText', () => show(m), () => readParquetText(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer, 'text', 'fuzz.parquet'), (docs) => {
      assert.ok(docs.every((d) => typeof d === 'string'));
    });
  }), params(60));
});

test('fuzz: data files read from disk by extension (.txt/.jsonl/.json/.parquet/.bin) → documents, or our error', async () => {
  await fc.assert(fc.asyncProperty(fc.constantFrom('.txt', '.jsonl', '.json', '.parquet', '.bin'), fc.oneof(
    textArb.map((s) => new TextEncoder().encode(s)),
    fc.array(recordArb, { maxLength: 4 }).map((a) => new TextEncoder().encode(a.map((r) => JSON.stringify(r) ?? '').join('\n'))),
    fc.uint8Array({ maxLength: 200 }),
    fc.constant(PARQUET), fc.constant(TINY_BYTES.subarray(0, 300)),
  ), fc.boolean(), async (ext, bytes, bom) => {
    generated++;
    const p = join(tmp, `d${dirNo++}${ext}`);
    writeFileSync(p, bom ? new Uint8Array([0xef, 0xbb, 0xbf, ...bytes]) : bytes);
    await oneCase('readDocuments', () => `${p} ${show(Array.from(bytes.subarray(0, 40)))}`, () => readDocuments(p), (docs) => {
      assert.ok(docs.every((d) => typeof d === 'string' && !d.startsWith('\ufeff')));
    });
  }), params(60));
});

// ---- tensor() ------------------------------------------------------------------------------------------------------

test('fuzz: tensor() shapes (negative, fractional, NaN, huge, mismatched) → a tensor of that shape, or an InputError', async () => {
  await fc.assert(fc.asyncProperty(fc.array(fc.oneof(fc.integer({ min: -2, max: 6 }), fc.double(), fc.constantFrom(NaN, Infinity, 2.5, -0, 2 ** 32, 2 ** 53)), { maxLength: 4 }),
    fc.integer({ min: 0, max: 48 }), fc.constantFrom('float32', 'int32', 'float64'), async (shape, n, dtype) => {
      generated++;
      await oneCase('tensor()', () => `${show(shape)} with ${n} ${dtype} values`, () => tensor(new Array(n).fill(1), shape, dtype as 'float32', refBackend), (t) => {
        assert.ok(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0), `shape ${show(t.shape)} accepted`);
        assert.equal(t.size, n);
      });
    }), params(60));
});

test('fuzz: the suite ran the cases it should', () => {
  assert.ok(generated >= runs(700), `only ${generated} cases ran`);
});

test('a model too large is refused before allocating (ModelTooLargeError, in milliseconds)', () => {
  const t0 = performance.now();
  assert.throws(() => new LlamaForCausalLM({ ...TINY, numHiddenLayers: 1_000_000_000 }, { backend: refBackend }), ModelTooLargeError);
  assert.ok(performance.now() - t0 < 1000);
});
