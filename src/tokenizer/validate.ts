// Checks a tokenizer.json before @huggingface/tokenizers sees it. That library guesses a model from its fields when
// `model.type` is missing or unknown, builds a WordPiece model over a BPE vocabulary without a word (and then
// encodes every text to `undefined` ids), and fails on a missing vocab with a raw TypeError. Here the model section
// must be self-consistent: a known type, the fields that type needs (with the right JSON types), merges whose tokens
// are in the vocabulary (as the Rust library requires), an unknown token that exists, ids in range.
import { InputError } from '../core/errors.js';

export const MODEL_TYPES = ['BPE', 'WordPiece', 'WordLevel', 'Unigram'] as const;

/** The largest id a tokenizer may use: 2^24 (16.7 M; the largest real vocabularies have ~260 k tokens). */
export const MAX_TOKEN_ID = 2 ** 24;

const kind = (v: unknown): string =>
  v === undefined ? 'nothing' : v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < MAX_TOKEN_ID;
}

/**
 * Throws an InputError naming `source` and the field when a tokenizer.json (already parsed) cannot make a
 * working tokenizer; returns the model's type.
 */
export function validateTokenizerJson(json: Record<string, unknown>, source: string): string {
  const fail = (msg: string): never => { throw new InputError(`${source}: ${msg}`, { source }); };
  const model = json.model;
  if (!isObject(model)) fail(`"model" must be an object (the tokenizer's model: BPE, WordPiece, WordLevel or Unigram), found ${kind(model)}; is this a Hugging Face tokenizer.json?`);
  const m = model as Record<string, unknown>;
  const vocab = m.vocab;
  if (vocab === undefined || vocab === null) fail('model.vocab is missing: the tokenizer has no vocabulary; re-export the tokenizer (tokenizer.save() in Python)');
  const declared = m.type;
  if (declared !== undefined && !(MODEL_TYPES as readonly unknown[]).includes(declared)) {
    fail(`model.type ${kind(declared)} is not a tokenizer model this library can run; expected one of ${MODEL_TYPES.join(', ')}`);
  }
  // What the contents say the model is, to catch a type that contradicts them.
  const contentType = Array.isArray(vocab) ? 'Unigram' : 'merges' in m ? 'BPE' : undefined;
  const type = (declared as string | undefined) ?? contentType ?? fail('model.type is missing and the contents do not say which model it is; set model.type');
  if (type === 'Unigram' && !Array.isArray(vocab)) fail(`model.type is Unigram, whose vocab is a list of [token, score] pairs, but model.vocab is ${kind(vocab)} (a ${'merges' in m ? 'BPE' : 'WordPiece/WordLevel'} vocabulary?); fix model.type`);
  if (type !== 'Unigram' && Array.isArray(vocab)) fail(`model.type is ${type}, whose vocab is an object (token → id), but model.vocab is a list (a Unigram vocabulary?); fix model.type`);
  if (type !== 'BPE' && 'merges' in m) fail(`model.type is ${type} but the model has "merges", which only BPE models have; model.type should probably be "BPE"`);

  const ids = new Map<string, number>(); // token → id
  if (type === 'Unigram') {
    const list = vocab as unknown[];
    if (list.length === 0) fail('model.vocab is empty; a tokenizer needs a vocabulary');
    list.forEach((e, i) => {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'number' || !Number.isFinite(e[1])) {
        fail(`model.vocab[${i}] must be a [token, score] pair (a string and a finite number), found ${kind(e)}`);
      }
      if (i >= MAX_TOKEN_ID) fail(`model.vocab has more than ${MAX_TOKEN_ID} tokens`);
      ids.set((e as [string, number])[0], i);
    });
    const unk = m.unk_id;
    if (unk !== undefined && unk !== null && !(isId(unk) && unk < list.length)) fail(`model.unk_id must be null or an id in 0 … ${list.length - 1}, found ${kind(unk)}`);
  } else {
    const entries = Object.entries(vocab as Record<string, unknown>);
    if (entries.length === 0) fail('model.vocab is empty; a tokenizer needs a vocabulary');
    for (const [tok, id] of entries) {
      if (!isId(id)) fail(`model.vocab[${JSON.stringify(tok).slice(0, 40)}] must be an integer id in 0 … ${MAX_TOKEN_ID - 1}, found ${kind(id)}`);
      ids.set(tok, id as number);
    }
  }
  if (type === 'BPE') {
    const merges = m.merges;
    if (!Array.isArray(merges)) fail(`model.merges must be a list of merges ("a b" strings or [a, b] pairs) for a BPE model, found ${kind(merges)}`);
    const prefix = typeof m.continuing_subword_prefix === 'string' ? m.continuing_subword_prefix : '';
    (merges as unknown[]).forEach((mg, i) => {
      let pair: unknown[] | null = null;
      if (typeof mg === 'string') pair = mg.split(' ');
      else if (Array.isArray(mg)) pair = mg;
      if (!pair || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        fail(`model.merges[${i}] must be "a b" (two tokens separated by one space) or a pair [a, b], found ${kind(mg)}`);
      }
      const [a, b] = pair as [string, string];
      const merged = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      for (const t of [a, b, merged]) {
        if (!ids.has(t)) fail(`model.merges[${i}] (${JSON.stringify(a)} + ${JSON.stringify(b)}) uses the token ${JSON.stringify(t)}, which is not in model.vocab; the merges belong to another vocabulary`);
      }
    });
  }
  if (type === 'WordPiece' || type === 'WordLevel') {
    const unk = m.unk_token ?? (type === 'WordPiece' ? '[UNK]' : '<unk>');
    if (typeof unk !== 'string') fail(`model.unk_token must be a string, found ${kind(unk)}`);
    if (!ids.has(unk as string)) {
      fail(`model.unk_token ${JSON.stringify(unk)} is not in model.vocab: a ${type} model maps unknown words to it, so every such word would have no id` +
        ('merges' in m ? '' : ` (is model.type right? a vocabulary of ${ids.size} tokens without "${unk}" is usually a BPE one)`));
    }
  }
  const added = json.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) fail(`added_tokens must be a list, found ${kind(added)}`);
    (added as unknown[]).forEach((t, i) => {
      if (!isObject(t) || typeof t.content !== 'string' || !isId(t.id)) {
        fail(`added_tokens[${i}] must be an object with a string "content" and an integer "id" in 0 … ${MAX_TOKEN_ID - 1}, found ${kind(t)}`);
      }
    });
  }
  for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const) {
    const v = json[k];
    if (v !== undefined && v !== null && !isObject(v)) fail(`"${k}" must be an object or null, found ${kind(v)}`);
    if (isObject(v) && typeof v.type !== 'string') fail(`"${k}".type must be a string, found ${kind(v.type)}`);
  }
  return type;
}
