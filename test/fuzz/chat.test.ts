// Fuzz suite for the chat surfaces: conversation JSONL (sft --data), adapter folders (adapter_config.json +
// adapter_model.safetensors), tokenizer_config.json chat templates. Each generated case must work — with valid
// output: token ids inside the vocabulary and labels that are ids or -100; an adapter whose forward pass is finite;
// a rendered string — or throw a LlamatrainError, within a time limit per case. (The CLI options of sft, chat and
// playground are fuzzed in options.test.ts.)
//
// Deterministic (a fixed seed, printed). npm test runs ≥ 2,000 cases; the long run multiplies them:
//   LLAMATRAIN_FUZZ_SCALE=5 LLAMATRAIN_FUZZ_SEED=7 node tools/run-tests.mjs fuzz/chat     (≥ 10,000 cases)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  LlamaForCausalLM, LlamatrainError, PeftModel, encodeChat, getPeftModel, loadTokenizerFile, noGrad, parseChatJsonl, refBackend,
  saveTokenizer, serializeSafetensors, tensor, trainByteLevelBPE,
} from '../../src/node.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SEED = Number(process.env.LLAMATRAIN_FUZZ_SEED ?? 20251208);
const SCALE = Number(process.env.LLAMATRAIN_FUZZ_SCALE ?? 1);
const CASE_LIMIT_MS = Number(process.env.LLAMATRAIN_FUZZ_CASE_MS ?? 5000);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
const params = (n: number) => ({ seed: SEED, numRuns: runs(n), endOnFailure: true });
let generated = 0;

/** One case: returns normally (then `check` runs) or throws a LlamatrainError with a useful message, in time. */
function oneCase<T>(what: string, input: () => string, fn: () => T, check?: (r: T) => void): void {
  generated++;
  const t0 = performance.now();
  let result: T;
  try {
    result = fn();
  } catch (e) {
    const ms = performance.now() - t0;
    assert.ok(ms < CASE_LIMIT_MS, `${what}: took ${ms.toFixed(0)} ms to fail on ${input()}`);
    if (!(e instanceof LlamatrainError)) assert.fail(`${what}: threw ${(e as Error)?.name ?? typeof e} — not one of our errors — on ${input()}:\n${(e as Error)?.stack ?? String(e)}`);
    assert.ok(e.message.length > 20 && !/undefined|\[object Object\]/.test(e.message), `${what}: an unhelpful message: ${e.message}`);
    return;
  }
  const ms = performance.now() - t0;
  assert.ok(ms < CASE_LIMIT_MS, `${what}: took ${ms.toFixed(0)} ms on ${input()}`);
  check?.(result);
}
const show = (v: unknown) => { const s = JSON.stringify(v) ?? String(v); return s.length > 300 ? `${s.slice(0, 300)}…` : s; };

let tmp = '';
test.before(() => { tmp = mkdtempSync(join(tmpdir(), 'llamatrain-fuzzchat-')); });
test.after(() => {
  rmSync(tmp, { recursive: true, force: true });
  console.log(`# fuzz/chat: ${generated} generated cases, seed ${SEED} (LLAMATRAIN_FUZZ_SEED), scale ${SCALE} (LLAMATRAIN_FUZZ_SCALE)`);
});

const BPE = trainByteLevelBPE(['The user asks a question and the assistant answers it.', 'What is 2 plus 3? The answer is 5.', 'Ünïcödé 東京 🙂'],
  { vocabSize: 320, chat: true });

// ---- conversation JSONL --------------------------------------------------------------------------------------------

const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1.5, '', ' ', '\uFDD0', '<|im_end|>', '{{ x }}', [], {}, [{}], [{ type: 'text' }], [{ type: 'image_url', image_url: {} }],
    [{ type: 'text', text: 'part' }, { type: 'text', text: 7 }]),
  fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }),
);
const role = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('user', 'assistant', 'system', 'tool') }, { weight: 1, arbitrary: oddValue });
const content = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 40 }) }, { weight: 1, arbitrary: oddValue },
  { weight: 1, arbitrary: fc.array(fc.record({ type: fc.constantFrom('text', 'image_url'), text: fc.oneof(fc.string({ maxLength: 10 }), oddValue) }), { maxLength: 3 }) });
const message = fc.oneof(
  { weight: 6, arbitrary: fc.record({ role, content }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.record({ role: fc.constant('assistant'), content: fc.constantFrom(null, ''), tool_calls: fc.oneof(fc.constant([{ type: 'function', function: { name: 'f', arguments: {} } }]), oddValue) }) },
  { weight: 1, arbitrary: oddValue },
);
const record = fc.oneof(
  { weight: 5, arbitrary: fc.record({ messages: fc.oneof(fc.array(message, { maxLength: 5 }), oddValue), tools: fc.option(oddValue) }, { requiredKeys: ['messages'] }) },
  { weight: 2, arbitrary: fc.record({ prompt: fc.oneof(fc.string({ maxLength: 30 }), fc.array(message, { maxLength: 2 }), oddValue),
    completion: fc.oneof(fc.string({ maxLength: 30 }), fc.array(message, { maxLength: 2 }), oddValue) }) },
  { weight: 1, arbitrary: oddValue },
);
const lineMutation = fc.oneof(
  fc.constant((l: string) => l), fc.constant((l: string) => l.slice(0, Math.floor(l.length / 2))), fc.constant((l: string) => `\uFEFF${l}`),
  fc.constant((l: string) => `${l}\r`), fc.constant(() => ''), fc.constant((l: string) => l.replace(/"/, '')),
);

test('fuzz: chat JSONL (records of every form, odd roles and contents, parts, truncated lines, BOM, CRLF) → valid ids and labels, or an InputError naming the line', () => {
  fc.assert(fc.property(fc.array(fc.tuple(record, lineMutation), { minLength: 1, maxLength: 4 }), (lines) => {
    const text = lines.map(([r, m]) => m(JSON.stringify(r) ?? 'null')).join('\n');
    oneCase('parseChatJsonl + encodeChat', () => show(text), () => parseChatJsonl(text, 'fuzz.jsonl').map((ex) => encodeChat(BPE, ex)), (encoded) => {
      for (const e of encoded) {
        assert.equal(e.inputIds.length, e.labels.length);
        for (let i = 0; i < e.inputIds.length; i++) {
          assert.ok(e.inputIds[i]! >= 0 && e.inputIds[i]! < BPE.vocabSize, `id ${e.inputIds[i]} outside the vocabulary`);
          assert.ok(e.labels[i] === -100 || e.labels[i] === e.inputIds[i], 'a label is its id or -100');
        }
      }
    });
  }), params(900));
});

// ---- adapter folders -----------------------------------------------------------------------------------------------

const BASE = new LlamaForCausalLM({ vocabSize: 32, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1 },
  { backend: refBackend, seed: 1 });
const GOOD = getPeftModel(new LlamaForCausalLM(BASE.config, { backend: refBackend, seed: 1 }), { r: 2, loraAlpha: 4, targetModules: ['q_proj', 'v_proj'], seed: 3 });
for (const p of GOOD.parameters()) { const d = p.dataSync(); for (let i = 0; i < d.length; i++) d[i] = Math.sin(i + 1) * 0.1; }
const GOOD_FILES = await GOOD.adapterFiles();
const GOOD_CONFIG = JSON.parse(GOOD_FILES.config) as Record<string, unknown>;
const GOOD_TENSORS = [...GOOD.namedParameters()].map(([k, t]) => [k, { dtype: 'float32' as const, shape: [...t.shape], data: Float32Array.from(t.dataSync()) }] as const);

const configMutation = fc.oneof(
  fc.record({ op: fc.constant('set'), key: fc.constantFrom('r', 'lora_alpha', 'lora_dropout', 'target_modules', 'use_rslora', 'peft_type', 'bias', 'fan_in_fan_out',
    'use_dora', 'alpha_pattern', 'rank_pattern', 'modules_to_save', 'layers_to_transform', 'layers_pattern', 'lora_bias', 'exclude_modules', 'task_type'),
  v: fc.oneof(oddValue, fc.constantFrom(1, 2, 4, '4', -1, 0.5, 1, 'all-linear', '.*q_proj', '(', ['q_proj'], ['k_proj'], ['q_proj', 'v_proj', 'o_proj'], [0], [1], 0, { q_proj: 2 }, 'LORA', 'none', 'all')) }),
  fc.record({ op: fc.constant('delete'), key: fc.constantFrom('r', 'lora_alpha', 'target_modules', 'peft_type', 'lora_dropout') }),
  fc.record({ op: fc.constant('whole'), v: oddValue }),
);
const tensorMutation = fc.oneof(
  fc.record({ op: fc.constant('drop'), i: fc.nat() }),
  fc.record({ op: fc.constant('rename'), i: fc.nat(), v: fc.constantFrom('base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', 'base_model.model.lm_head.lora_A.weight', 'x', 'base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight') }),
  fc.record({ op: fc.constant('shape'), i: fc.nat(), v: fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 3 }) }),
  fc.record({ op: fc.constant('value'), i: fc.nat(), at: fc.nat(), v: fc.constantFrom(NaN, Infinity, -Infinity, 1e30, 0) }),
  fc.record({ op: fc.constant('dtype'), i: fc.nat(), v: fc.constantFrom('float64', 'int32', 'float16') }),
);
const byteMutation = fc.oneof(
  fc.record({ op: fc.constant('none') }), fc.record({ op: fc.constant('truncate'), at: fc.nat() }),
  fc.record({ op: fc.constant('flip'), at: fc.nat(), v: fc.integer({ min: 1, max: 255 }) }),
);

test('fuzz: adapter_config.json + adapter_model.safetensors (mutated values, keys, tensors, bytes) → a finite adapted forward pass, or an InputError', () => {
  const ids = tensor(Int32Array.from([1, 5, 9]), [1, 3], 'int32', refBackend);
  fc.assert(fc.property(fc.array(configMutation, { maxLength: 3 }), fc.array(tensorMutation, { maxLength: 2 }), byteMutation, (cm, tm, bm) => {
    let config: unknown = structuredClone(GOOD_CONFIG);
    for (const m of cm) {
      if (m.op === 'whole') config = m.v;
      else if (config && typeof config === 'object' && !Array.isArray(config)) {
        if (m.op === 'set') (config as Record<string, unknown>)[m.key] = m.v; else delete (config as Record<string, unknown>)[m.key];
      }
    }
    const tensors: [string, { dtype: 'float32' | 'float64' | 'int32' | 'float16'; shape: number[]; data: ArrayLike<number> }][] =
      GOOD_TENSORS.map(([k, t]) => [k, { dtype: t.dtype, shape: [...t.shape], data: Float32Array.from(t.data) }]);
    for (const m of tm) {
      const e = tensors[m.i % tensors.length]!;
      if (m.op === 'drop') tensors.splice(m.i % tensors.length, 1);
      else if (m.op === 'rename') e[0] = m.v;
      else if (m.op === 'shape') { const n = m.v.reduce((a, b) => a * b, 1); e[1] = { ...e[1], shape: m.v, data: new Float32Array(n) }; }
      else if (m.op === 'value') { const d = e[1].data as Float32Array; if (d.length > 0) d[m.at % d.length] = m.v; }
      else e[1] = { ...e[1], dtype: m.v, data: m.v === 'int32' ? Int32Array.from(e[1].data, Math.round) : m.v === 'float64' ? Float64Array.from(e[1].data) : e[1].data };
    }
    let bytes: Uint8Array;
    try {
      bytes = serializeSafetensors(tensors as Parameters<typeof serializeSafetensors>[0]);
    } catch (e) {
      assert.ok(e instanceof LlamatrainError, `serializeSafetensors threw ${(e as Error).name}: ${(e as Error).message}`);
      return; // the writer refused a tensor list that cannot be a file (e.g. a duplicate name)
    }
    if (bm.op === 'truncate') bytes = bytes.subarray(0, bm.at % bytes.length);
    else if (bm.op === 'flip') { bytes = bytes.slice(); bytes[bm.at % bytes.length] ^= bm.v; }
    const base = new LlamaForCausalLM(BASE.config, { backend: refBackend, seed: 1 });
    oneCase('PeftModel.fromAdapterFiles', () => `${show(config)} ${show(tm)} ${show(bm)}`, () => PeftModel.fromAdapterFiles(base, config, bytes, 'fuzz'), (peft) => {
      assert.ok(peft.parameters().length > 0, 'an adapter with no tensors was accepted');
      const logits = noGrad(() => peft.forward(ids)).logits!.dataSync();
      for (let i = 0; i < logits.length; i++) assert.ok(Number.isFinite(logits[i]), `a loaded adapter computes ${logits[i]}`);
    });
  }), params(500));
});

// ---- chat templates from tokenizer_config.json -----------------------------------------------------------------------

const FRAGMENTS = [
  "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}",
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}", '{{ bos_token }}', '{{ eos_token }}',
  '{% for i in range(N) %}x{% endfor %}', '{% for i in range(N) %}{% for j in range(N) %}{{ i }}{% endfor %}{% endfor %}',
  "{% set ns = namespace(s='ab') %}{% for i in range(N) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
  '{{ messages[0].content }}', '{{ messages[99].content }}', '{{ raise_exception("no") }}', '{{ messages|tojson }}', '{{ tools }}',
  '{% generation %}{{ messages[-1].content }}{% endgeneration %}', '{% endgeneration %}', '{{ x.y.z }}', '{{ 1 / 0 }}', '{{ "a" + 1 }}',
  '{% for m in messages %}{{ m.content|upper }}{% endfor %}', '{{ (messages|length) * 1000000000000 }}', '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}',
  "{{ 'x'.center(N) }}", '{{ ', '{% if %}', '{% for %}', '}}', '{{ messages|map(attribute="content")|join(", ") }}', '{{ range(N)|length }}',
  "{{ 'x'.strip('x') }}", '\uFDD0', '{{ none.content }}',
];
const templateArb = fc.tuple(fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 1, maxLength: 4 }),
  fc.constantFrom('3', '1000', '100000', '100000000', '-5', '1e9', '"x"'))
  .map(([parts, n]) => parts.join('').replaceAll('range(N)', `range(${n})`).replaceAll('center(N)', `center(${n})`));

test('fuzz: tokenizer_config.json chat templates (loops, huge ranges, string doubling, recursion, syntax errors) → text, or an InputError naming the file', () => {
  const dir = join(tmp, 'tok');
  saveTokenizer(BPE, dir);
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = BPE.tokenizerConfig() as Record<string, unknown>;
  const msgs = [{ role: 'user', content: 'What is 2 plus 3?' }, { role: 'assistant', content: 'The answer is 5.' }];
  fc.assert(fc.property(templateArb, fc.boolean(), (template, mask) => {
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, chat_template: template }));
    let tok: ReturnType<typeof loadTokenizerFile>;
    try { tok = loadTokenizerFile(dir); } catch (e) { assert.ok(e instanceof LlamatrainError, String(e)); return; }
    oneCase('applyChatTemplate', () => show(template),
      () => {
        try {
          return tok.applyChatTemplate(msgs, { addGenerationPrompt: !mask, renderLimits: { maxSteps: 200_000 }, ...(mask ? { tokenize: true, returnAssistantTokensMask: true } : {}) });
        } catch (e) {
          if (e instanceof LlamatrainError && !e.message.includes('tokenizer_config.json')) throw new Error(`the error does not name the template's file: ${e.message}`);
          throw e;
        }
      },
      (r) => {
        if (typeof r === 'string') return;
        for (const id of r.inputIds) assert.ok(id >= 0 && id < tok.vocabSize);
        assert.equal(r.assistantMask!.length, r.inputIds.length);
      });
  }), params(700));
});

test('fuzz: the suite ran the cases it should', () => {
  assert.ok(generated >= runs(2000), `only ${generated} cases ran`);
});
