// Hugging Face tokenizer.json, loaded with `@huggingface/tokenizers` (Tokenizers.js: pure JS, no native code,
// runs in browsers and workers). We only adapt its API to ours; tokenization itself is entirely theirs.
import { Tokenizer } from '@huggingface/tokenizers';
import type { DecodeOptions, EncodeOptions, TextTokenizer } from './types.js';
import { applyChatTemplate, parseChatTemplateField, type ChatEncoding, type ChatMessage, type ChatTemplateOptions, type ChatTokenizerLike } from './chat.js';
import { fromByteLevel } from './byte-level.js';
import { validateTokenizerJson } from './validate.js';
import { InputError } from '../core/errors.js';

/**
 * The part of an @huggingface/tokenizers `Tokenizer` this wrapper uses, declared here so that our type
 * declarations do not include that package's (which fail `tsc` under `moduleResolution: nodenext` without
 * `skipLibCheck`: relative imports without extensions). Cast `inner` to its `Tokenizer` for the rest of its API.
 */
export interface TokenizersJs {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
  decode(ids: number[], options?: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}

type TokenSpec = string | { content: string } | null | undefined;

const EOS_NAMES = ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>', '<|eos|>'];
const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<bos>', '<|bos|>'];
const PAD_NAMES = ['<pad>', '<|pad|>', '[PAD]', '<|finetune_right_pad_id|>'];

function specName(s: TokenSpec): string | undefined {
  if (typeof s === 'string') return s;
  if (s && typeof s === 'object' && typeof s.content === 'string') return s.content;
  return undefined;
}

function parseMaybe(x: unknown, what: string): Record<string, any> {
  if (typeof x === 'string') {
    try {
      return JSON.parse(x);
    } catch (e) {
      throw new InputError(`${what}: invalid JSON (${(e as Error).message})`, { cause: e, source: what });
    }
  }
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new InputError(`${what}: expected a JSON object`, { source: what });
  return x as Record<string, any>;
}

/**
 * A tokenizer.json tokenizer. Special ids come from tokenizer_config.json (`bos_token`, `eos_token`, `pad_token`)
 * when given, else from well-known names among the special added tokens ("</s>", "<|endoftext|>", "<s>", …).
 * Decoding does not clean up spaces unless tokenizer_config.json asks for it (`clean_up_tokenization_spaces`),
 * so decode(encode(text)) === text for byte-level tokenizers.
 */
export class HFTokenizer implements TextTokenizer, ChatTokenizerLike {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  /** The underlying @huggingface/tokenizers instance (for anything this wrapper does not expose). */
  readonly inner: TokenizersJs;
  readonly json: Record<string, any>;
  readonly config: Record<string, any>;
  /** tokenizer_config.json's `chat_template`: one template, or named templates (`{ default, tool_use, … }`). */
  readonly chatTemplate: string | Readonly<Record<string, string>> | undefined;
  /** The file the chat template came from, named in rendering errors (loadTokenizerFile sets the path). */
  chatTemplateSource = 'tokenizer_config.json';
  private readonly specialIds: Set<number>;
  private readonly addedContent = new Map<number, string>();
  private readonly byteLevel: boolean;
  /** The model's type (BPE, WordPiece, WordLevel, Unigram), checked against its contents at load. */
  readonly modelType: string;
  private readonly source: string;

  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = 'tokenizer.json') {
    this.json = parseMaybe(tokenizerJson, source);
    this.config = { clean_up_tokenization_spaces: false, ...parseMaybe(tokenizerConfig, 'tokenizer_config.json') };
    if (!this.json.model) throw new InputError(`${source}: no "model" section; is this a Hugging Face tokenizer.json?`, { source });
    this.modelType = validateTokenizerJson(this.json, source);
    this.source = source;
    for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(k in this.json)) this.json[k] = null;
    if (!Array.isArray(this.json.added_tokens)) this.json.added_tokens = [];
    try {
      this.inner = new Tokenizer(this.json, this.config) satisfies TokenizersJs;
    } catch (e) {
      throw new InputError(`${source}: @huggingface/tokenizers could not load it (${(e as Error).message})`, { cause: e, source });
    }
    const vocab = this.inner.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    const added = this.json.added_tokens as { id: number; content: string; special?: boolean }[];
    this.specialIds = new Set(added.filter((t) => t.special).map((t) => t.id));
    const specialNames = new Set(added.filter((t) => t.special).map((t) => t.content));
    const find = (key: string, names: string[]): number | undefined => {
      const fromConfig = specName(this.config[key] as TokenSpec);
      if (fromConfig !== undefined) {
        const id = this.inner.token_to_id(fromConfig);
        if (id === undefined) throw new InputError(`tokenizer_config.json: ${key} ${JSON.stringify(fromConfig)} is not in the vocabulary of ${source}`, { source: 'tokenizer_config.json' });
        return id;
      }
      for (const n of names) if (specialNames.has(n)) return this.inner.token_to_id(n);
      return undefined;
    };
    this.eosId = find('eos_token', EOS_NAMES);
    this.bosId = find('bos_token', BOS_NAMES);
    this.padId = find('pad_token', PAD_NAMES);
    this.chatTemplate = parseChatTemplateField(this.config.chat_template, 'tokenizer_config.json');
    for (const t of added) this.addedContent.set(t.id, t.content);
    const isByteLevel = (d: any): boolean => !!d && (d.type === 'ByteLevel' || (d.type === 'Sequence' && Array.isArray(d.decoders) && d.decoders.some(isByteLevel)));
    this.byteLevel = isByteLevel(this.json.decoder);
  }

  /**
   * Special tokens as chat templates see them (transformers' `special_tokens_map`): `bos_token`, `eos_token`,
   * `unk_token`, `sep_token`, `pad_token`, `cls_token`, `mask_token` from tokenizer_config.json (strings or
   * AddedToken objects; only those that are set) and `additional_special_tokens`.
   */
  specialTokensMap(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
      const v = specName(this.config[k] as TokenSpec);
      if (v !== undefined) out[k] = v;
    }
    const extra = this.config.additional_special_tokens;
    if (Array.isArray(extra)) {
      const names = extra.map((t) => specName(t as TokenSpec)).filter((t): t is string => t !== undefined);
      if (names.length > 0) out.additional_special_tokens = names;
    }
    return out;
  }

  /**
   * Renders `messages` with the chat template, as transformers' `apply_chat_template`: the string, or with
   * `tokenize: true` `{ inputIds, assistantMask? }` (no special tokens added: decode(inputIds) is the text).
   * See src/tokenizer/chat.ts for the options and how the assistant mask is made.
   */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions & { tokenize: true }): ChatEncoding;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string | ChatEncoding;
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string | ChatEncoding {
    return applyChatTemplate(this, messages, opts);
  }

  /** UTF-8 bytes of token `id` in decoded text (byte-level tokenizers and added tokens); else undefined. */
  tokenBytes(id: number): Uint8Array | undefined {
    const added = this.addedContent.get(id);
    if (added !== undefined) return new TextEncoder().encode(added);
    if (!this.byteLevel) return undefined;
    const t = this.inner.id_to_token(id);
    if (t === undefined) return undefined;
    try {
      return fromByteLevel(t);
    } catch {
      return undefined;
    }
  }

  /** Token ids of `text`; every id is checked (an id outside the vocabulary is an InputError naming the file). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new InputError(`${this.source}: encoding gave ${JSON.stringify(id) ?? String(id)} at position ${i}, not an id of the vocabulary ` +
          `(0 … ${this.vocabSize - 1}); the tokenizer.json is inconsistent (model.type ${this.modelType}) — re-export it`, { source: this.source });
      }
    }
    return ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    const list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new InputError(`decode: id ${id} is outside the vocabulary (0 … ${this.vocabSize - 1})`, { source: this.source });
    }
    return this.inner.decode(list, {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      ...(options.cleanUpTokenizationSpaces !== undefined ? { clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces } : {}),
    });
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}

/** Loads a tokenizer.json (object or JSON text), optionally with its tokenizer_config.json. */
export function loadTokenizer(tokenizerJson: unknown, tokenizerConfig?: unknown, source?: string): HFTokenizer {
  return new HFTokenizer(tokenizerJson, tokenizerConfig ?? {}, source);
}
