// Chat templates: render a conversation with the model's Jinja template exactly as transformers'
// `apply_chat_template` does, tokenize it, and mark the tokens of the assistant's replies (for an assistant-only
// loss). Browser-safe: templates are rendered by `@huggingface/jinja` (pure JS).
//
// Rendering mirrors transformers (tokenization_utils_base.apply_chat_template + chat_template_utils):
// - the environment has trim_blocks and lstrip_blocks, `raise_exception`, `strftime_now` and a `tojson` filter
//   that is `json.dumps(x, ensure_ascii=False)` with `indent`, `separators`, `sort_keys` (@huggingface/jinja's);
// - the template sees `messages`, `tools` (null when not given), `documents` (null), `add_generation_prompt`,
//   the tokenizer's special tokens as strings (`bos_token`, `eos_token`, `unk_token`, `pad_token`, …,
//   `additional_special_tokens`; only those that are set), then every extra variable (which wins over a special
//   token of the same name);
// - tokenizing the rendered text adds no special tokens (a template that wants BOS writes it itself), so
//   `decode(inputIds)` is the rendered text.
//
// The assistant mask:
// - Template with `{% generation %}…{% endgeneration %}` blocks: as transformers. The characters rendered inside
//   each block form a span [start, end); start_token = the token holding character `start`, end_token = the token
//   holding character `end - 1`; tokens start_token … end_token are marked (to the end of the sequence if
//   end_token is 0 or missing; spans after one whose start has no token are ignored — transformers' `break`).
// - Template without them (most real ones): transformers returns an all-zero mask (with a warning). We derive each
//   assistant reply's span instead (`assistantSpans`):
//     1. the assistant header H = render(messages[:i], add_generation_prompt=true) minus
//        render(messages[:i], add_generation_prompt=false) — what the template writes before a reply;
//     2. walking the messages in order with a cursor in the rendered text, each message's content is found at or
//        after the cursor (as given, trimmed, or — for an assistant message that holds `<think>…</think>` — the
//        part after `</think>`), and the cursor moves past it, so one message's text is never taken for
//        another's;
//     3. for assistant message i, the span starts right after the first H at or after the cursor (so the role
//        header is never in it; whatever the template renders between the header and the end of the turn — a
//        reasoning block, the content, tool calls — is the reply) and ends after the first end-of-turn marker
//        (`endOfTurn`: the EOS token and the usual end-of-turn tokens `<|im_end|>`, `<|eot_id|>`, `<|eom_id|>`,
//        `<|end|>`, `<end_of_turn>`, …) at or after the end of its content. The text after the marker (ChatML's
//        "\n") is not in it. The content must lie inside the span, and the next message's content must not
//        start before the span ends; otherwise it throws (the template is one we cannot follow: give it
//        `{% generation %}` blocks).
//   Character spans become token spans with the same rule as for generation blocks.

import { InputError } from '../core/errors.js';

/** One message. `content` is usually a string; extra fields (`tool_calls`, `reasoning_content`, …) go to the template. */
export interface ChatMessage {
  role: string;
  content?: string | null | ChatContentPart[];
  [key: string]: unknown;
}

/** A multimodal-style content part (`{ type: 'text', text }`); only text parts are located for masks. */
export interface ChatContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the assistant header (`add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** false (default): return the rendered string; true: `{ inputIds, assistantMask? }`. */
  tokenize?: boolean;
  /** With `tokenize: true`, also return `assistantMask` (1 on the assistant's reply tokens). */
  returnAssistantTokensMask?: boolean;
  /** A template string, or the name of one of the tokenizer's named templates; overrides the tokenizer's. */
  chatTemplate?: string;
  /** Tool schemas (JSON objects) for templates that support tool use (`tools`). */
  tools?: unknown[] | null;
  /** Documents for RAG templates (`documents`). */
  documents?: unknown[] | null;
  /**
   * End-of-turn markers used to close an assistant span in templates without `{% generation %}` blocks.
   * Default: the EOS token and the well-known end-of-turn tokens that are in the vocabulary.
   */
  endOfTurn?: string | string[];
  /**
   * Bounds on one rendering (a template is untrusted input): evaluation steps, characters of text produced, time.
   * Past one, rendering stops with an InputError. Defaults: 2,000,000 steps, 50,000,000 characters, 10 s.
   */
  renderLimits?: ChatRenderLimits;
  /** Every other key is passed to the template as a variable (like transformers' **kwargs), e.g. `enable_thinking`. */
  [variable: string]: unknown;
}

/** Bounds on rendering one chat template (see ChatTemplateOptions.renderLimits). */
export interface ChatRenderLimits {
  maxSteps?: number;
  maxChars?: number;
  maxMs?: number;
}

export interface ChatEncoding {
  inputIds: number[];
  /** 1 on the tokens of the assistant's replies, 0 elsewhere (only with `returnAssistantTokensMask`). */
  assistantMask?: number[];
}

/** What `applyChatTemplate` needs from a tokenizer. Both HFTokenizer and ByteLevelBPE provide it. */
export interface ChatTokenizerLike {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean }): string;
  tokenToId(token: string): number | undefined;
  /** The tokenizer's chat template(s): one string, or named templates. */
  readonly chatTemplate?: string | Readonly<Record<string, string>> | undefined;
  /** The file the chat template came from (named in rendering errors), e.g. '…/tokenizer_config.json'. */
  readonly chatTemplateSource?: string;
  /** Special tokens as template variables (`bos_token`, `eos_token`, …, `additional_special_tokens`). */
  specialTokensMap(): Record<string, string | string[]>;
  /** UTF-8 bytes token `id` stands for in decoded text, when the tokenizer knows (byte-level BPE); else undefined. */
  tokenBytes?(id: number): Uint8Array | undefined;
}

const OPTION_KEYS = new Set(['addGenerationPrompt', 'tokenize', 'returnAssistantTokensMask', 'chatTemplate', 'tools', 'documents', 'endOfTurn', 'renderLimits']);

/** End-of-turn tokens of well-known templates (used when present in the vocabulary). */
export const END_OF_TURN_TOKENS = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<|end|>', '<end_of_turn>', '<|eot|>', '<|end_of_turn|>', '<|END_OF_TURN_TOKEN|>', '</s>', '<|endoftext|>', '<|end_of_text|>'];

/**
 * ChatML, the default template of our own byte-level BPE (`trainByteLevelBPE({ …, chat: true })`). Assistant
 * replies are inside `{% generation %}` blocks (the reply and its `<|im_end|>`, not the "\n" after it), so the
 * assistant mask is transformers' own.
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}" +
  "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/** The special tokens ChatML needs besides the tokenizer's own. */
export const CHATML_SPECIAL_TOKENS = ['<|im_start|>', '<|im_end|>'];

// ---------------------------------------------------------------------------------------------------------------
// Template selection and rendering

/**
 * The template to use, as transformers' `get_chat_template`: the override (a template string, or the name of one
 * of the tokenizer's named templates), else the tokenizer's single template, else its named template
 * "tool_use" (when tools are given) or "default".
 */
export function resolveChatTemplate(own: ChatTokenizerLike['chatTemplate'], override: string | undefined, tools: unknown): string {
  if (own !== undefined && typeof own === 'object') {
    if (override !== undefined) return own[override] ?? override;
    if (tools !== undefined && tools !== null && own.tool_use !== undefined) return own.tool_use;
    if (own.default !== undefined) return own.default;
    throw new InputError(`applyChatTemplate: the tokenizer has several chat templates and none is named "default"; pass chatTemplate: one of ${Object.keys(own).sort().join(', ')}`);
  }
  if (override !== undefined) return override;
  if (own !== undefined) return own;
  throw new InputError('applyChatTemplate: this tokenizer has no chat template (tokenizer_config.json has no "chat_template" and no chat_template.jinja was found); pass chatTemplate: a Jinja template string');
}

/** Normalises tokenizer_config.json's `chat_template`: a string, or a list of `{ name, template }`. */
export function parseChatTemplateField(value: unknown, source = 'tokenizer_config.json'): string | Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const out: Record<string, string> = {};
    value.forEach((t, i) => {
      if (!t || typeof t !== 'object' || typeof (t as any).name !== 'string' || typeof (t as any).template !== 'string') {
        throw new InputError(`${source}: chat_template[${i}] must be an object { "name": string, "template": string }`);
      }
      out[(t as any).name] = (t as any).template;
    });
    return out;
  }
  if (typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) if (typeof v !== 'string') throw new InputError(`${source}: chat_template.${k} must be a string`);
    return value as Record<string, string>;
  }
  throw new InputError(`${source}: chat_template must be a string or a list of { name, template }, got ${typeof value}`);
}

// Sentinels that stand for {% generation %} / {% endgeneration %} in the output (Unicode noncharacters: never in
// real text; a message that holds one is refused).
export const GEN_OPEN = '\uFDD0';
export const GEN_CLOSE = '\uFDD1';
const GENERATION_TAG = /\{%-?\s*generation\s*-?%\}/;

/** Renders a template; returns the text and the character spans of its `{% generation %}` blocks. */
export type ChatRenderer = (template: string, variables: Record<string, unknown>, limits?: ChatRenderLimits) => { text: string; generation: [number, number][] };

let renderer: ChatRenderer | null = null;

/**
 * Installs the Jinja renderer of chat templates. `llamatrain/chat` (and `llamatrain/node`) install
 * @huggingface/jinja's on import, so that the main entry loads no template engine.
 */
export function useChatRenderer(r: ChatRenderer): void {
  renderer = r;
}

/** Renders with the installed renderer (see useChatRenderer). */
export function renderTracked(template: string, variables: Record<string, unknown>, limits?: ChatRenderLimits, source?: string):
    { text: string; generation: [number, number][] } {
  if (!renderer) {
    throw new InputError("applyChatTemplate: no chat-template renderer is loaded; import 'llamatrain/chat' once (Node: 'llamatrain/node' does it)");
  }
  try {
    return renderer(template, variables, limits);
  } catch (e) {
    if (source === undefined) throw e;
    const msg = (e as Error).message;
    throw new InputError(`${source}: ${msg}`, { cause: e, source });
  }
}

function templateVariables(tok: ChatTokenizerLike, messages: readonly ChatMessage[], opts: ChatTemplateOptions, addGenerationPrompt: boolean): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) if (!OPTION_KEYS.has(k)) extra[k] = v;
  return {
    messages,
    tools: opts.tools ?? null,
    documents: opts.documents ?? null,
    add_generation_prompt: addGenerationPrompt,
    ...tok.specialTokensMap(),
    ...extra,
  };
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new InputError('applyChatTemplate: messages must be an array of { role, content } objects');
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || typeof m.role !== 'string') throw new InputError(`applyChatTemplate: messages[${i}] must be an object with a string "role"`);
  });
  const s = JSON.stringify(messages);
  if (s.includes(GEN_OPEN) || s.includes(GEN_CLOSE)) throw new InputError('applyChatTemplate: messages contain U+FDD0/U+FDD1 (Unicode noncharacters), which chat rendering reserves');
}

// ---------------------------------------------------------------------------------------------------------------
// Assistant spans for templates without generation blocks

function contentText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.filter((p) => p && typeof p.text === 'string').map((p) => p.text).join('');
  return '';
}

function candidates(m: ChatMessage): string[] {
  const c = contentText(m.content);
  const out = [c, c.trim()];
  if (m.role === 'assistant' && c.includes('</think>')) {
    const after = c.split('</think>').pop()!;
    out.push(after.replace(/^\n+/, ''), after.trim());
  }
  return [...new Set(out)].filter((s) => s.length > 0);
}

/** Earliest match of any candidate at or after `from`: [start, end], or null. Longer candidates win ties. */
function findContent(text: string, m: ChatMessage, from: number): [number, number] | null {
  let best: [number, number] | null = null;
  for (const c of candidates(m)) {
    const at = text.indexOf(c, from);
    if (at >= 0 && (best === null || at < best[0] || (at === best[0] && at + c.length > best[1]))) best = [at, at + c.length];
  }
  return best;
}

/**
 * Character spans [start, end) of each assistant reply in `text` (the rendering of `messages`), for templates
 * without `{% generation %}` blocks; see the file comment for the rule.
 */
export function assistantSpans(
  text: string,
  messages: readonly ChatMessage[],
  render: (prefix: readonly ChatMessage[], addGenerationPrompt: boolean) => string,
  endOfTurn: readonly string[],
): [number, number][] {
  if (endOfTurn.length === 0) throw new InputError('applyChatTemplate: no end-of-turn marker is known for this tokenizer; pass endOfTurn (e.g. "<|im_end|>")');
  const spans: [number, number][] = [];
  let cursor = 0;
  let lastSpan: [number, number] | null = null;
  // locate every message's content in order (non-assistant ones too, so that their text is skipped)
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role === 'assistant') {
      const header = assistantHeader(render, messages, i);
      // The generation prompt may carry whitespace the conversation does not have at that point (a template's
      // line break after the prompt): find its non-blank core, then take as much of what follows it in the
      // prompt as the text repeats.
      const core = header.trim();
      const h = core.length > 0 ? text.indexOf(core, cursor) : -1;
      if (h < 0) throw new InputError(`applyChatTemplate: cannot find the assistant header ${JSON.stringify(header)} of messages[${i}] in the rendered text; use a template with {% generation %} blocks for the assistant mask`);
      let start = h + core.length;
      for (let j = header.indexOf(core) + core.length; j < header.length && text[start] === header[j]; j++) start++;
      const content = contentText(m.content);
      let contentEnd = start;
      if (content.trim().length > 0) {
        const c = findContent(text, m, start);
        if (c === null) throw new InputError(`applyChatTemplate: the content of messages[${i}] (assistant) does not appear in the rendered text after its header; the template transforms it, so the reply's span cannot be found. Use a template with {% generation %} blocks for the assistant mask`);
        contentEnd = c[1];
      }
      let end = -1;
      for (const marker of endOfTurn) {
        const at = text.indexOf(marker, contentEnd);
        if (at >= 0 && (end < 0 || at + marker.length < end)) end = at + marker.length;
      }
      if (end < 0) throw new InputError(`applyChatTemplate: no end-of-turn marker (${endOfTurn.join(', ')}) follows the reply of messages[${i}]; pass endOfTurn`);
      spans.push([start, end]);
      cursor = end;
      lastSpan = [start, end];
    } else {
      const c = contentText(m.content).trim().length > 0 ? findContent(text, m, cursor) : null;
      if (c !== null) cursor = c[1];
      else if (lastSpan !== null && contentText(m.content).trim().length > 0 && findContent(text, m, lastSpan[0]) !== null) {
        throw new InputError(`applyChatTemplate: messages[${i}] starts before the end-of-turn marker that closes the assistant reply before it; pass endOfTurn, or use a template with {% generation %} blocks`);
      }
      lastSpan = null;
    }
  }
  return spans;
}

function assistantHeader(render: (prefix: readonly ChatMessage[], agp: boolean) => string, messages: readonly ChatMessage[], i: number): string {
  const prefix = messages.slice(0, i);
  const without = render(prefix, false);
  const withPrompt = render(prefix, true);
  if (!withPrompt.startsWith(without) || withPrompt.length === without.length) {
    throw new InputError(`applyChatTemplate: the template's generation prompt is not an addition at the end of the conversation (rendering messages[0:${i}] with and without add_generation_prompt); use a template with {% generation %} blocks for the assistant mask`);
  }
  return withPrompt.slice(without.length);
}

// ---------------------------------------------------------------------------------------------------------------
// Characters → tokens

const utf8 = new TextEncoder();

/**
 * Byte offsets where each token ends in the UTF-8 text: ends[k] = bytes covered by tokens 0…k. From the
 * tokenizer's per-token bytes when it knows them (byte-level BPE, added tokens) and they add up to the text;
 * otherwise by decoding growing prefixes (slower, for other tokenizers).
 */
export function tokenByteEnds(tok: ChatTokenizerLike, ids: readonly number[], text: string): Int32Array {
  const textBytes = utf8.encode(text);
  const ends = new Int32Array(ids.length);
  if (tok.tokenBytes) {
    let off = 0, ok = true;
    for (let k = 0; k < ids.length && ok; k++) {
      const b = tok.tokenBytes(ids[k]!);
      if (b === undefined) ok = false;
      else {
        for (let j = 0; j < b.length; j++) if (textBytes[off + j] !== b[j]) { ok = false; break; }
        off += b.length;
        ends[k] = off;
      }
    }
    if (ok && off === textBytes.length) return ends;
  }
  let prev = 0;
  for (let k = 0; k < ids.length; k++) {
    const s = tok.decode(ids.slice(0, k + 1), { cleanUpTokenizationSpaces: false });
    let n = 0;
    while (n < s.length && n < text.length && s.charCodeAt(n) === text.charCodeAt(n)) n++;
    const b = utf8.encode(text.slice(0, n)).length;
    prev = Math.max(prev, b);
    ends[k] = prev;
  }
  return ends;
}

/** Marks tokens of character spans as transformers does (see the file comment). */
export function spansToTokenMask(spans: readonly (readonly [number, number])[], text: string, ends: Int32Array): number[] {
  const n = ends.length;
  const mask = new Array<number>(n).fill(0);
  const byteAt = (c: number): number => utf8.encode(text.slice(0, c)).length;
  const charToToken = (c: number): number | null => {
    if (c < 0 || c >= text.length) return null;
    const b = byteAt(c);
    // first token whose end is past byte b
    let lo = 0, hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ends[mid]! > b) hi = mid;
      else lo = mid + 1;
    }
    return lo < n ? lo : null;
  };
  for (const [s, e] of spans) {
    const startToken = charToToken(s);
    const endToken = charToToken(e - 1);
    if (startToken === null) break; // transformers: "start_token is out of bounds maybe due to truncation"
    const stop = endToken ? endToken + 1 : n; // end_token 0 or None: to the end (transformers' truthiness test)
    for (let t = startToken; t < stop; t++) mask[t] = 1;
  }
  return mask;
}

/** Default end-of-turn markers of a tokenizer: its EOS, then the well-known ones it has. */
export function defaultEndOfTurn(tok: ChatTokenizerLike): string[] {
  const out: string[] = [];
  const eos = tok.specialTokensMap().eos_token;
  if (typeof eos === 'string') out.push(eos);
  for (const t of END_OF_TURN_TOKENS) if (!out.includes(t) && tok.tokenToId(t) !== undefined) out.push(t);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The entry point

/** Renders (and optionally tokenizes) a conversation; see `ChatTemplateOptions` and the file comment. */
export function applyChatTemplate(tok: ChatTokenizerLike, messages: readonly ChatMessage[], opts: ChatTemplateOptions & { tokenize: true }): ChatEncoding;
export function applyChatTemplate(tok: ChatTokenizerLike, messages: readonly ChatMessage[], opts?: ChatTemplateOptions & { tokenize?: false }): string;
export function applyChatTemplate(tok: ChatTokenizerLike, messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string | ChatEncoding;
export function applyChatTemplate(tok: ChatTokenizerLike, messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string | ChatEncoding {
  checkMessages(messages);
  const template = resolveChatTemplate(tok.chatTemplate, opts.chatTemplate, opts.tools);
  // errors name the file the template came from (a template given as an option is the caller's)
  const source = opts.chatTemplate !== undefined && typeof tok.chatTemplate !== 'object' ? 'chatTemplate option' : tok.chatTemplateSource;
  try {
    return renderAndMask(tok, messages, opts, template, source);
  } catch (e) {
    if (source === undefined || !(e instanceof InputError) || e.message.startsWith(source)) throw e;
    throw new InputError(`${source}: ${e.message}`, { cause: e, source });
  }
}

function renderAndMask(tok: ChatTokenizerLike, messages: readonly ChatMessage[], opts: ChatTemplateOptions, template: string, source: string | undefined): string | ChatEncoding {
  const agp = opts.addGenerationPrompt ?? false;
  const { text, generation } = renderTracked(template, templateVariables(tok, messages, opts, agp), opts.renderLimits, source);
  if (!opts.tokenize) {
    if (opts.returnAssistantTokensMask) throw new InputError('applyChatTemplate: returnAssistantTokensMask needs tokenize: true');
    return text;
  }
  const inputIds = tok.encode(text, { addSpecialTokens: false });
  if (!opts.returnAssistantTokensMask) return { inputIds };
  let spans: [number, number][];
  if (GENERATION_TAG.test(template)) spans = generation;
  else {
    const render = (prefix: readonly ChatMessage[], g: boolean): string => renderTracked(template, templateVariables(tok, prefix, opts, g), opts.renderLimits, source).text;
    const eot = opts.endOfTurn === undefined ? defaultEndOfTurn(tok) : typeof opts.endOfTurn === 'string' ? [opts.endOfTurn] : opts.endOfTurn;
    spans = assistantSpans(text, messages, render, eot);
  }
  const ends = tokenByteEnds(tok, inputIds, text);
  return { inputIds, assistantMask: spansToTokenMask(spans, text, ends) };
}
