// Byte-level BPE (GPT-2 style): a trainer and an encoder, and the tokenizer.json they save, which
// `@huggingface/tokenizers` loads back with identical ids (tested on the Brown corpus).
//
// Vocabulary layout: ids 0…255 are the 256 bytes (id b = byte b, as its byte-level symbol), then one id per merge
// in the order learned, then the special tokens (by default only "<|endoftext|>", the EOS). So `vocabSize` is
// exactly the number of ids, specials included.
//
// Training (Sennrich et al. / HF's BpeTrainer): pre-tokenize with the GPT-2 regex, count unique words, count
// adjacent symbol pairs weighted by word frequency, then repeatedly merge the most frequent pair (ties: smaller
// left id, then smaller right id). Pair counts are updated incrementally, only in the words that contain the
// merged pair (an index pair → words), and the best pair comes from a max-heap with lazy re-validation: a popped
// entry whose count went down since it was pushed is pushed back with its current count. Counts of existing pairs
// only ever go down (a merge consumes symbols); pairs with the new symbol are pushed when they are created.
//
// Encoding: split out special tokens, pre-tokenize, and in each pre-token repeatedly apply the merge of lowest
// rank (leftmost on ties) until none applies — the same rule as HF's BPE model. Results are cached per pre-token.
import { BYTE_TO_UNICODE, GPT2_PATTERN, fromByteLevel } from './byte-level.js';
import type { DecodeOptions, EncodeOptions, TextTokenizer } from './types.js';
import { CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE, applyChatTemplate, type ChatEncoding, type ChatMessage, type ChatTemplateOptions, type ChatTokenizerLike } from './chat.js';

const KEY_MUL = 2 ** 21; // pair key = left · 2^21 + right (ids < 2^21)
const MAX_VOCAB = KEY_MUL;

export const ENDOFTEXT = '<|endoftext|>';

export interface TrainBPEOptions {
  /** Total number of ids, specials included (≥ 256 + number of specials). */
  vocabSize: number;
  /** Special tokens, appended after the merges. Default ["<|endoftext|>"]. Never split, never merged. */
  specialTokens?: string[];
  /** Which special token is the EOS (default "<|endoftext|>" when present). */
  eosToken?: string;
  /** Stop early when the best pair occurs fewer times than this (default 2). The vocab is then smaller. */
  minFrequency?: number;
  /** Called every 256 merges and at the end. */
  onProgress?: (done: number, target: number) => void;
  /**
   * Make a chat tokenizer: add ChatML's special tokens "<|im_start|>" and "<|im_end|>" (after `specialTokens`,
   * unless already there) and use `CHATML_TEMPLATE` as its chat template (or this string, if one is given).
   */
  chat?: boolean | string;
}

/** Max-heap of (count, key): larger count first, then smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.counts.length;
  }
  private better(i: number, j: number): boolean {
    const ci = this.counts[i]!, cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { count: number; key: number } | undefined {
    const n = this.counts.length;
    if (n === 0) return undefined;
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    if (n > 1) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      const m = n - 1;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < m && this.better(l, best)) best = l;
        if (r < m && this.better(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/** Splits text around special tokens: [text, special, text, …]; specials are flagged. */
function splitSpecials(text: string, specials: RegExp | null): { text: string; special: boolean }[] {
  if (!specials) return [{ text, special: false }];
  const out: { text: string; special: boolean }[] = [];
  let last = 0;
  specials.lastIndex = 0;
  for (const m of text.matchAll(specials)) {
    if (m.index! > last) out.push({ text: text.slice(last, m.index), special: false });
    out.push({ text: m[0], special: true });
    last = m.index! + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), special: false });
  return out;
}

function specialsPattern(specials: readonly string[]): RegExp | null {
  if (specials.length === 0) return null;
  const sorted = [...specials].sort((a, b) => b.length - a.length); // longest first
  return new RegExp(sorted.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g');
}

const utf8 = new TextEncoder();

/** Trains a byte-level BPE tokenizer on `texts` (see the file comment). Deterministic for a given input. */
export function trainByteLevelBPE(texts: Iterable<string>, options: TrainBPEOptions): ByteLevelBPE {
  const specials = [...(options.specialTokens ?? [ENDOFTEXT])];
  if (options.chat) for (const t of CHATML_SPECIAL_TOKENS) if (!specials.includes(t)) specials.push(t);
  const minFrequency = options.minFrequency ?? 2;
  const { vocabSize } = options;
  if (new Set(specials).size !== specials.length) throw new Error(`trainByteLevelBPE: specialTokens has duplicates: ${specials.join(', ')}`);
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specials.length || vocabSize > MAX_VOCAB) {
    throw new Error(`trainByteLevelBPE: vocabSize must be an integer in [${256 + specials.length}, ${MAX_VOCAB}] (256 bytes + ${specials.length} special tokens + merges), got ${vocabSize}`);
  }
  const eosToken = options.eosToken ?? (specials.includes(ENDOFTEXT) ? ENDOFTEXT : undefined);
  if (eosToken !== undefined && !specials.includes(eosToken)) throw new Error(`trainByteLevelBPE: eosToken ${JSON.stringify(eosToken)} is not among specialTokens`);

  // 1. unique pre-tokens and their counts
  const counts = new Map<string, number>();
  const specialRe = specialsPattern(specials);
  let nTexts = 0;
  for (const text of texts) {
    nTexts++;
    for (const part of splitSpecials(text, specialRe)) {
      if (part.special) continue;
      for (const m of part.text.matchAll(GPT2_PATTERN)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
    }
  }
  if (counts.size === 0) throw new Error(`trainByteLevelBPE: the corpus has no text to learn from (${nTexts} documents, all empty or only special tokens)`);

  // 2. words as byte-id arrays; pair counts and the pair → words index
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, c] of counts) {
    words.push(Array.from(utf8.encode(w)));
    freqs.push(c);
  }
  counts.clear();
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const addWhere = (key: number, w: number): void => {
    const list = where.get(key);
    if (list === undefined) where.set(key, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  };
  for (let w = 0; w < words.length; w++) {
    const word = words[w]!, f = freqs[w]!;
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i]! * KEY_MUL + word[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      addWhere(key, w);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  // 3. merges
  const tokens: string[] = BYTE_TO_UNICODE.slice();
  const tokenIds = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const merges: [number, number][] = [];
  const target = vocabSize - specials.length; // ids before the specials
  const seen = new Int32Array(words.length).fill(-1);
  const touched = new Set<number>();
  while (tokens.length < target) {
    let top = heap.pop();
    while (top !== undefined) {
      const current = pairCount.get(top.key) ?? 0;
      if (current === top.count) break;
      if (current > 0) heap.push(current, top.key); // stale: re-validate
      top = heap.pop();
    }
    if (top === undefined || top.count < minFrequency) break;
    const key = top.key;
    const a = Math.floor(key / KEY_MUL), b = key % KEY_MUL;
    const str = tokens[a]! + tokens[b]!;
    let id = tokenIds.get(str);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(str);
      tokenIds.set(str, id);
    }
    merges.push([a, b]);
    const stamp = merges.length;
    touched.clear();
    for (const w of where.get(key) ?? []) {
      if (seen[w] === stamp) continue;
      seen[w] = stamp;
      const word = words[w]!, f = freqs[w]!;
      let has = false;
      for (let i = 0; i + 1 < word.length; i++) if (word[i] === a && word[i + 1] === b) { has = true; break; }
      if (!has) continue; // stale index entry
      for (let i = 0; i + 1 < word.length; i++) {
        const k = word[i]! * KEY_MUL + word[i + 1]!;
        pairCount.set(k, pairCount.get(k)! - f);
      }
      const merged: number[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          merged.push(id);
          i++;
        } else merged.push(word[i]!);
      }
      words[w] = merged;
      for (let i = 0; i + 1 < merged.length; i++) {
        const l = merged[i]!, r = merged[i + 1]!;
        const k = l * KEY_MUL + r;
        pairCount.set(k, (pairCount.get(k) ?? 0) + f);
        if (l === id || r === id) {
          addWhere(k, w);
          touched.add(k);
        }
      }
    }
    pairCount.delete(key);
    where.delete(key);
    for (const k of touched) {
      const c = pairCount.get(k)!;
      if (c > 0) heap.push(c, k);
    }
    if (options.onProgress && merges.length % 256 === 0) options.onProgress(tokens.length + specials.length, vocabSize);
  }
  options.onProgress?.(tokens.length + specials.length, vocabSize);
  const specialEntries = specials.map((content, i) => ({ content, id: tokens.length + i }));
  const chatTemplate = typeof options.chat === 'string' ? options.chat : options.chat ? CHATML_TEMPLATE : undefined;
  return new ByteLevelBPE(tokens, merges, specialEntries, eosToken, chatTemplate);
}

/** A byte-level BPE tokenizer held as ids: our trainer's output and encoder. Serialises to HF tokenizer.json. */
export class ByteLevelBPE implements TextTokenizer, ChatTokenizerLike {
  readonly vocabSize: number;
  readonly eosId: number | undefined;
  readonly bosId: number | undefined = undefined;
  readonly padId: number | undefined = undefined;
  private readonly ranks = new Map<number, { rank: number; id: number }>(); // pair key → merge rank, result id
  private readonly idOf = new Map<string, number>();
  private readonly specialIds: Map<string, number>;
  private readonly specialRe: RegExp | null;
  private readonly cache = new Map<string, number[]>();

  /**
   * @param tokens byte-level strings of ids 0 … tokens.length-1 (the 256 bytes first, then merge results)
   * @param merges [left id, right id] in rank order; each pair's result is the id of the concatenated string
   * @param specials special tokens and their ids (after the regular tokens)
   * @param eosToken which special token is the EOS
   * @param chatTemplate a Jinja chat template (`CHATML_TEMPLATE` for ChatML; see `withChatTemplate`)
   */
  constructor(
    readonly tokens: readonly string[],
    readonly merges: readonly (readonly [number, number])[],
    readonly specials: readonly { content: string; id: number }[],
    readonly eosToken?: string,
    readonly chatTemplate?: string,
  ) {
    for (let b = 0; b < 256; b++) if (tokens[b] !== BYTE_TO_UNICODE[b]) throw new Error(`ByteLevelBPE: id ${b} must be the byte symbol ${JSON.stringify(BYTE_TO_UNICODE[b])}, got ${JSON.stringify(tokens[b])}`);
    tokens.forEach((t, i) => {
      if (this.idOf.has(t)) throw new Error(`ByteLevelBPE: token ${JSON.stringify(t)} appears twice (ids ${this.idOf.get(t)} and ${i})`);
      this.idOf.set(t, i);
    });
    merges.forEach(([a, b], rank) => {
      const s = tokens[a]! + tokens[b]!;
      const id = this.idOf.get(s);
      if (id === undefined) throw new Error(`ByteLevelBPE: merge ${rank} (${tokens[a]} + ${tokens[b]}) produces ${JSON.stringify(s)}, which is not in the vocabulary`);
      const key = a * KEY_MUL + b;
      if (!this.ranks.has(key)) this.ranks.set(key, { rank, id });
    });
    this.specialIds = new Map(specials.map((s) => [s.content, s.id]));
    this.specialRe = specialsPattern(specials.map((s) => s.content));
    this.vocabSize = Math.max(tokens.length, ...specials.map((s) => s.id + 1));
    this.eosId = eosToken === undefined ? undefined : this.specialIds.get(eosToken);
  }

  encode(text: string, _options?: EncodeOptions): number[] {
    const out: number[] = [];
    for (const part of splitSpecials(text, this.specialRe)) {
      if (part.special) {
        out.push(this.specialIds.get(part.text)!);
        continue;
      }
      for (const m of part.text.matchAll(GPT2_PATTERN)) {
        const ids = this.encodeWord(m[0]);
        for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
      }
    }
    return out;
  }

  /** BPE of one pre-token (a raw string, not byte-mapped). */
  encodeWord(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const sym = Array.from(utf8.encode(word));
    for (;;) {
      let bestRank = Infinity, bestAt = -1, bestId = -1;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.ranks.get(sym[i]! * KEY_MUL + sym[i + 1]!);
        if (r !== undefined && r.rank < bestRank) {
          bestRank = r.rank;
          bestAt = i;
          bestId = r.id;
        }
      }
      if (bestAt < 0) break;
      sym.splice(bestAt, 2, bestId);
    }
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(word, sym);
    return sym;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const parts: Uint8Array[] = [];
    let n = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const special = this.specials.find((s) => s.id === id);
      let bytes: Uint8Array;
      if (special) {
        if (options.skipSpecialTokens) continue;
        bytes = utf8.encode(special.content);
      } else {
        const tok = this.tokens[id];
        if (tok === undefined) throw new Error(`decode: id ${id} is outside the vocabulary (0 … ${this.vocabSize - 1})`);
        bytes = fromByteLevel(tok);
      }
      parts.push(bytes);
      n += bytes.length;
    }
    const all = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new TextDecoder('utf-8').decode(all);
  }

  tokenToId(token: string): number | undefined {
    return this.specialIds.get(token) ?? this.idOf.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.specials.find((s) => s.id === id)?.content ?? this.tokens[id];
  }

  /**
   * The same tokenizer with a chat template (default ChatML, `CHATML_TEMPLATE`). The template's special tokens
   * must already be in the vocabulary: train with `chat: true` for ChatML.
   */
  withChatTemplate(template: string = CHATML_TEMPLATE): ByteLevelBPE {
    if (template === CHATML_TEMPLATE) {
      const missing = CHATML_SPECIAL_TOKENS.filter((t) => !this.specialIds.has(t));
      if (missing.length > 0) throw new Error(`withChatTemplate: ChatML needs the special tokens ${missing.join(', ')}, which this tokenizer does not have; train it with trainByteLevelBPE(texts, { …, chat: true })`);
    }
    return new ByteLevelBPE(this.tokens, this.merges, this.specials, this.eosToken, template);
  }

  /** Special tokens as chat templates see them: `eos_token` and the other specials as `additional_special_tokens`. */
  specialTokensMap(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    if (this.eosToken !== undefined) out.eos_token = this.eosToken;
    const extra = this.specials.map((s) => s.content).filter((c) => c !== this.eosToken);
    if (extra.length > 0) out.additional_special_tokens = extra;
    return out;
  }

  /** Renders (and optionally tokenizes) a conversation with the chat template; see src/tokenizer/chat.ts. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions & { tokenize: true }): ChatEncoding;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string | ChatEncoding;
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string | ChatEncoding {
    return applyChatTemplate(this, messages, opts);
  }

  /** UTF-8 bytes of token `id` in decoded text. */
  tokenBytes(id: number): Uint8Array | undefined {
    const special = this.specials.find((s) => s.id === id);
    if (special) return utf8.encode(special.content);
    const tok = this.tokens[id];
    return tok === undefined ? undefined : fromByteLevel(tok);
  }

  /** The Hugging Face tokenizer.json object (GPT-2 layout: ByteLevel pre-tokenizer/decoder, BPE model). */
  toJSON(): Record<string, unknown> {
    const vocab: Record<string, number> = {};
    this.tokens.forEach((t, i) => (vocab[t] = i));
    for (const s of this.specials) vocab[s.content] = s.id;
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.specials.map((s) => ({ id: s.id, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        // "left right": byte-level tokens never contain a plain space, so the classic string form is unambiguous
        merges: this.merges.map(([a, b]) => `${this.tokens[a]} ${this.tokens[b]}`),
      },
    };
  }

  /** A tokenizer_config.json to save next to tokenizer.json (EOS name; no clean-up of spaces on decode). */
  tokenizerConfig(): Record<string, unknown> {
    return {
      tokenizer_class: 'PreTrainedTokenizerFast',
      clean_up_tokenization_spaces: false,
      add_prefix_space: false,
      ...(this.eosToken !== undefined ? { eos_token: this.eosToken } : {}),
      ...(this.chatTemplate !== undefined ? { additional_special_tokens: this.specials.map((s) => s.content).filter((c) => c !== this.eosToken), chat_template: this.chatTemplate } : {}),
      model_max_length: 1_000_000_000,
    };
  }

  /**
   * Rebuilds our encoder from a tokenizer.json that this class wrote (byte-level BPE, no normalizer). Any other
   * tokenizer.json should be loaded with `loadTokenizer`, which uses @huggingface/tokenizers.
   */
  static fromJSON(json: unknown, eosToken?: string, chatTemplate?: string): ByteLevelBPE {
    const j = (typeof json === 'string' ? JSON.parse(json) : json) as Record<string, any>;
    const model = j?.model;
    if (!model || model.type !== 'BPE' || j.pre_tokenizer?.type !== 'ByteLevel' || j.normalizer) {
      throw new Error('ByteLevelBPE.fromJSON: expected a byte-level BPE tokenizer.json without normalizer (as written by trainByteLevelBPE); load other tokenizers with loadTokenizer');
    }
    const specials: { content: string; id: number }[] = (j.added_tokens ?? []).map((t: { content: string; id: number }) => ({ content: t.content, id: t.id }));
    const specialSet = new Set(specials.map((s) => s.content));
    const entries = Object.entries(model.vocab as Record<string, number>).filter(([t]) => !specialSet.has(t));
    const tokens: string[] = new Array(entries.length);
    for (const [t, id] of entries) {
      if (!Number.isInteger(id) || id < 0 || id >= entries.length) throw new Error(`ByteLevelBPE.fromJSON: token ${JSON.stringify(t)} has id ${id}; regular ids must be 0 … ${entries.length - 1}`);
      tokens[id] = t;
    }
    const idOf = new Map(tokens.map((t, i) => [t, i]));
    const merges = (model.merges as (string | [string, string])[]).map((m, rank) => {
      const [l, r] = typeof m === 'string' ? (m.split(' ') as [string, string]) : m;
      const a = idOf.get(l), b = idOf.get(r);
      if (a === undefined || b === undefined) throw new Error(`ByteLevelBPE.fromJSON: merge ${rank} refers to a token not in the vocabulary: ${JSON.stringify(m)}`);
      return [a, b] as [number, number];
    });
    const eos = eosToken ?? (specialSet.has(ENDOFTEXT) ? ENDOFTEXT : undefined);
    return new ByteLevelBPE(tokens, merges, specials, eos, chatTemplate);
  }
}
