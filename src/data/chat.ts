// Conversation datasets for supervised fine-tuning (browser-safe; reading files is in chat-node.ts).
//
// Records (one JSON object per line):
//   { "messages": [{ "role": "system"|"user"|"assistant"|"tool", "content": "…", … }, …], "tools"?: [...] }
//   { "prompt": "…", "completion": "…" }                    → user prompt, assistant completion
//   { "prompt": [messages…], "completion": [messages…] }    → the two lists concatenated (TRL's conversational form)
//
// Encoding (`encodeChat`): the tokenizer's chat template renders the conversation (`applyChatTemplate` with
// `tokenize: true, returnAssistantTokensMask: true`); labels are the ids where the assistant mask is 1 and -100
// elsewhere, so the loss only sees the assistant's replies (and the end-of-turn token that closes each).
//
// Truncation (`truncateConversation`): a conversation longer than `maxLength` keeps its first `maxLength`
// tokens. One whose kept part has no target left (no label ≠ -100 after the shift the loss applies, i.e. at
// positions 1 … n-1) is dropped: a row without a target would add nothing but padding. Both are counted in the
// report — never silent: `ConversationReport.truncated` and `.droppedNoTarget`, for the caller to show.
//
// Packing (`packConversations`): conversations are placed whole, one after another, into rows of `seqLen`
// tokens; one that does not fit in the rest of a row starts the next row (the rest is padded). Each conversation is
// a document of packing.ts: positions restart at 0, documentIds keep attention inside it, and the label of its
// first token is -100 (nothing from the previous conversation predicts it).
import { InputError } from '../core/errors.js';
import type { ChatEncoding, ChatMessage, ChatTemplateOptions } from '../tokenizer/chat.js';
import { iteratePackedRows, type PackedRow } from './packing.js';

export interface ChatExample {
  messages: ChatMessage[];
  /** Tool schemas for this conversation (passed to the template as `tools`). */
  tools?: unknown[];
  /** Where it was read ('file.jsonl:12'), named in errors of rendering it. */
  source?: string;
}

/** Anything with `applyChatTemplate` (HFTokenizer, ByteLevelBPE). */
export interface ChatEncoder {
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions & { tokenize: true }): ChatEncoding;
}

export interface EncodedChat {
  inputIds: Int32Array;
  /** ids where the assistant mask is 1, ignoreIndex elsewhere; unshifted (the loss shifts) */
  labels: Int32Array;
}

export interface ConversationReport {
  /** Conversations given. */
  conversations: number;
  /** Conversations kept (in rows). */
  kept: number;
  /** Kept conversations that were cut to the length limit. */
  truncated: number;
  /** Conversations dropped because no target was left (after truncation, or none to begin with). */
  droppedNoTarget: number;
  /** Tokens kept, and of them the scored targets (labels ≠ ignoreIndex, segment starts excluded). */
  tokens: number;
  targets: number;
}

function describe(v: unknown): string {
  return v === null ? 'null' : v === undefined ? 'nothing (the key is missing)' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function checkMessages(list: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(list) || list.length === 0) throw new InputError(`${where} must be a non-empty array of { role, content } messages, got ${Array.isArray(list) ? 'an empty array' : describe(list)}`);
  list.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new InputError(`${where}[${i}] is ${describe(m)}, expected a { role, content } object`);
    const r = (m as Record<string, unknown>).role;
    if (typeof r !== 'string') throw new InputError(`${where}[${i}] has no string "role" (got ${describe(r)})`);
  });
  return (list as ChatMessage[]).map((m, i) => normalizeContent(m, `${where}[${i}]`));
}

/**
 * A message's content as templates expect it: a string. A list of parts (the OpenAI / HF multimodal form) is joined
 * from its text parts; other parts (images, audio) are refused, never rendered as JSON text. No content (null or
 * missing) is accepted only beside `tool_calls` (an assistant turn that only calls tools).
 */
function normalizeContent(m: ChatMessage, where: string): ChatMessage {
  const c = m.content;
  if (typeof c === 'string') return m;
  if (c === null || c === undefined) {
    if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) return m;
    throw new InputError(`${where} (${m.role}) has ${c === null ? '"content": null' : 'no "content"'}; give its text as a string ` +
      '(only an assistant message with "tool_calls" may have none)');
  }
  if (Array.isArray(c)) {
    const texts = c.map((p, j) => {
      const part = p as unknown as Record<string, unknown> | null;
      if (part === null || typeof part !== 'object' || Array.isArray(part)) throw new InputError(`${where}.content[${j}] is ${describe(part)}, expected a { "type": "text", "text": … } part`);
      if (part.type !== 'text') {
        const kind = typeof part.type === 'string' ? `a ${JSON.stringify(part.type)} part` : 'a part without a string "type"';
        throw new InputError(`${where}.content[${j}] is ${kind}; only text parts ({ "type": "text", "text": … }) can be trained on — remove the others`);
      }
      if (typeof part.text !== 'string') throw new InputError(`${where}.content[${j}] is a text part without a string "text" (got ${describe(part.text)})`);
      return part.text;
    });
    return { ...m, content: texts.join('') };
  }
  throw new InputError(`${where} (${m.role}) has "content" ${describe(c)}; expected a string (or a list of text parts)`);
}

/** One JSONL line → a conversation, or null for a blank line. Errors name `source:line`. */
export function parseChatJsonlLine(line: string, lineNo: number, source: string): ChatExample | null {
  if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1); // a UTF-8 byte-order mark
  if (line.trim().length === 0) return null;
  const at = `${source}:${lineNo}`;
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (e) {
    throw new InputError(`${at}: invalid JSON (${(e as Error).message}); each line must be one JSON object with "messages" or "prompt"/"completion"`, { cause: e });
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new InputError(`${at}: the line is ${describe(obj)}, expected a JSON object with "messages" or "prompt"/"completion"`);
  const o = obj as Record<string, unknown>;
  const tools = o.tools === undefined || o.tools === null ? undefined : Array.isArray(o.tools) ? o.tools : (() => { throw new InputError(`${at}: "tools" is ${describe(o.tools)}, expected an array of tool schemas`); })();
  if ('messages' in o) return { messages: checkMessages(o.messages, `${at}: "messages"`), ...(tools ? { tools } : {}), source: at };
  if ('prompt' in o && 'completion' in o) {
    const p = o.prompt, c = o.completion;
    if (typeof p === 'string' && typeof c === 'string') return { messages: [{ role: 'user', content: p }, { role: 'assistant', content: c }], ...(tools ? { tools } : {}), source: at };
    if (Array.isArray(p) && Array.isArray(c)) {
      return { messages: [...checkMessages(p, `${at}: "prompt"`), ...checkMessages(c, `${at}: "completion"`)], ...(tools ? { tools } : {}), source: at };
    }
    throw new InputError(`${at}: "prompt" and "completion" must both be strings or both be message arrays, got ${describe(p)} and ${describe(c)}`);
  }
  throw new InputError(`${at}: no "messages" field and no "prompt"/"completion" pair; its fields are: ${Object.keys(o).join(', ') || '(none)'}`);
}

/** Whole JSONL text → conversations (blank lines skipped). */
export function parseChatJsonl(text: string, source: string): ChatExample[] {
  if (text.length === 0) throw new InputError(`${source}: file is empty (0 bytes); expected JSON lines with "messages" or "prompt"/"completion"`);
  const out: ChatExample[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const ex = parseChatJsonlLine(raw.endsWith('\r') ? raw.slice(0, -1) : raw, i + 1, source);
    if (ex !== null) out.push(ex);
  });
  if (out.length === 0) throw new InputError(`${source}: no conversations: the file has ${lines.length} line(s), all blank`);
  return out;
}

/**
 * Renders and tokenizes one conversation; labels = ids on the assistant's replies, `ignoreIndex` elsewhere.
 * `templateOptions` go to `applyChatTemplate` (e.g. `{ chatTemplate, enable_thinking: false }`).
 */
export function encodeChat(tok: ChatEncoder, example: ChatExample, options: { ignoreIndex?: number; templateOptions?: ChatTemplateOptions } = {}): EncodedChat {
  const ignoreIndex = options.ignoreIndex ?? -100;
  let enc: ChatEncoding;
  try {
    enc = tok.applyChatTemplate(example.messages, {
      ...(options.templateOptions ?? {}),
      ...(example.tools ? { tools: example.tools } : {}),
      tokenize: true,
      returnAssistantTokensMask: true,
    });
  } catch (e) {
    // name the conversation that did not render (the message names the template)
    if (example.source === undefined) throw e;
    throw new InputError(`${example.source}: this conversation could not be rendered: ${(e as Error).message}`, { cause: e, source: example.source });
  }
  const n = enc.inputIds.length;
  const inputIds = Int32Array.from(enc.inputIds);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = enc.assistantMask![i] === 1 ? inputIds[i]! : ignoreIndex;
  return { inputIds, labels };
}

/** Scored targets of a conversation placed alone: labels ≠ ignoreIndex at positions 1 … n-1 (the shift). */
function countTargets(labels: ArrayLike<number>, n: number, ignoreIndex: number): number {
  let c = 0;
  for (let i = 1; i < n; i++) if (labels[i] !== ignoreIndex) c++;
  return c;
}

/**
 * Cuts a conversation to `maxLength` tokens (its first ones). `targets` counts what is left to score; 0 means
 * the caller should drop it (see the file comment).
 */
export function truncateConversation(enc: EncodedChat, maxLength: number, ignoreIndex = -100): { example: EncodedChat; truncated: boolean; targets: number } {
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new InputError(`truncateConversation: maxLength must be an integer ≥ 2, got ${maxLength}`);
  if (enc.inputIds.length !== enc.labels.length) throw new InputError(`truncateConversation: ${enc.inputIds.length} ids but ${enc.labels.length} labels`);
  const truncated = enc.inputIds.length > maxLength;
  const example = truncated ? { inputIds: enc.inputIds.subarray(0, maxLength), labels: enc.labels.subarray(0, maxLength) } : enc;
  return { example, truncated, targets: countTargets(example.labels, example.inputIds.length, ignoreIndex) };
}

/**
 * Truncates conversations to `maxLength` and drops those left without a target, for padded batches
 * (`padCollate` takes the `{ inputIds, labels }` items as they are). Returns the kept items and the report.
 */
export function prepareConversations(encoded: Iterable<EncodedChat>, options: { maxLength: number; ignoreIndex?: number }): { examples: EncodedChat[]; report: ConversationReport } {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const report: ConversationReport = { conversations: 0, kept: 0, truncated: 0, droppedNoTarget: 0, tokens: 0, targets: 0 };
  const examples: EncodedChat[] = [];
  for (const enc of encoded) {
    report.conversations++;
    const t = truncateConversation(enc, options.maxLength, ignoreIndex);
    if (t.targets === 0) {
      report.droppedNoTarget++;
      continue;
    }
    if (t.truncated) report.truncated++;
    report.kept++;
    report.tokens += t.example.inputIds.length;
    report.targets += t.targets;
    examples.push(t.example);
  }
  return { examples, report };
}

export interface PackConversationsOptions {
  /** Row length T (also the length limit of one conversation). */
  seqLen: number;
  /** Filler of padded positions (never scored). */
  padId: number;
  ignoreIndex?: number;
  /** Drop the final partial row instead of padding it (default false). */
  dropRemainder?: boolean;
}

/**
 * Packs encoded conversations into rows of `seqLen` (see the file comment): whole conversations, document
 * boundaries (positions restart, no attention across, -100 at each start), truncation to `seqLen` and dropping of
 * conversations without a target, all reported.
 */
export function packConversations(encoded: Iterable<EncodedChat>, options: PackConversationsOptions): { rows: PackedRow[]; report: ConversationReport } {
  const { seqLen, padId, ignoreIndex = -100, dropRemainder = false } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new InputError(`packConversations: seqLen must be an integer ≥ 2, got ${seqLen}`);
  const { examples, report } = prepareConversations(encoded, { maxLength: seqLen, ignoreIndex });
  const rows = [...iteratePackedRows(examples, { seqLen, padId, ignoreIndex, splitDocuments: false, dropRemainder })];
  if (dropRemainder) {
    // recount what the rows really hold
    report.tokens = 0;
    report.targets = 0;
    for (const r of rows) {
      for (let t = 0; t < seqLen; t++) {
        if (r.documentIds[t]! >= 0) report.tokens++;
        if (r.labels[t] !== ignoreIndex) report.targets++;
      }
    }
  }
  return { rows, report };
}
