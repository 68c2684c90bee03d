// Sampling from a causal LM: KV-cache decoding (greedy, temperature, top-k, top-p, EOS stop, left-padded batches).

import { type Backend, InputError, RNG, type Tensor, noGrad, tensor } from '../core/index.js';

/** What decoding needs of a model (LlamaForCausalLM provides it). */
export interface DecoderModel {
  readonly config: { vocabSize: number; numHiddenLayers: number; padTokenId?: number | null };
  readonly backend: Backend;
  readonly training: boolean;
  eval(): unknown;
  train(mode?: boolean): unknown;
  checkIds(ids: Tensor, where: string): { B: number; T: number };
  checkMask(mask: Tensor | null, B: number, T: number, what: string): Tensor | null;
  /** Runs ids [B, t] at positions [B, t] through the model, appending to `cache`; the logits of the last position [B, 1, V]. */
  lastLogits(ids: Tensor, positions: Tensor, keyMask: Tensor | null, cache: KVCache): Tensor;
}

/** Per-layer cached keys and values ([B, S, NKV, HD] each) for incremental decoding. */
export class KVCache {
  readonly k: (Tensor | null)[];
  readonly v: (Tensor | null)[];
  constructor(numLayers: number) {
    this.k = new Array<Tensor | null>(numLayers).fill(null);
    this.v = new Array<Tensor | null>(numLayers).fill(null);
  }
  /** Number of cached positions. */
  get length(): number {
    return this.k[0]?.shape[1] ?? 0;
  }
}

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP?: number;
  /** Sampling seed; the same seed gives the same text. Default: random. */
  seed?: number;
  /** [B, T] int32 mask of the prompt (left padding for batched prompts of different lengths). */
  attentionMask?: Tensor | null;
  /** Stop a row at these ids (default: none; pass model.config.eosTokenId to stop at EOS). */
  eosTokenId?: number | readonly number[] | null;
  /** Called with each step's new token of every row ([B]) as soon as it is sampled (streaming). */
  onToken?: (ids: Int32Array) => void;
  /**
   * Sample only ids below this: the tokenizer's vocabulary size when the model's embedding has padding rows beyond it
   * (Qwen3 ships 151,936 rows for 151,669 tokens, SmolLM2 pads too), which no tokenizer can decode. Default: the
   * model's vocab_size.
   */
  vocabLimit?: number;
}

/**
 * Autoregressive decoding with a KV cache: the prompt is processed once, then each new token costs one
 * position. Returns [B, T + generated] int32 (fewer new tokens if every row stopped at eosTokenId). Each new
 * token reads one row of logits per sequence from the device (asynchronously).
 */
export async function generate(model: DecoderModel, inputIds: Tensor, opts: GenerateOptions = {}): Promise<Tensor> {
  const { B, T } = model.checkIds(inputIds, 'generate');
  const maxNew = opts.maxNewTokens ?? 20;
  const temperature = opts.temperature ?? 1;
  const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new RangeError(`generate: maxNewTokens must be an integer ≥ 0, got ${maxNew}`);
  if (!(temperature >= 0)) throw new RangeError(`generate: temperature must be ≥ 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`generate: topK must be an integer ≥ 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`generate: topP must be in (0, 1], got ${topP}`);
  const eos = new Set(opts.eosTokenId == null ? [] : typeof opts.eosTokenId === 'number' ? [opts.eosTokenId] : opts.eosTokenId);
  const rng = new RNG(opts.seed ?? Math.floor(Math.random() * 2 ** 32));

  const V = model.config.vocabSize;
  const limit = opts.vocabLimit ?? V;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > V) {
    throw new InputError(`generate: vocabLimit must be an integer in [1, ${V}] (the model's vocab_size), got ${String(limit)}; ` +
      "pass the tokenizer's vocabulary size", { source: 'generate' });
  }
  const mask0 = model.checkMask(opts.attentionMask ?? null, B, T, 'attentionMask');
  const maskRows: number[][] = [];
  const m0 = mask0 ? ((await mask0.data()) as Int32Array) : new Int32Array(B * T).fill(1);
  for (let b = 0; b < B; b++) maskRows.push(Array.from(m0.subarray(b * T, b * T + T)));
  // HF generation positions: cumulative count of real tokens − 1 (left padding shifts nothing).
  const nextPos = maskRows.map((r) => r.reduce((a, x) => a + x, 0));
  const prefillPos = new Int32Array(B * T);
  maskRows.forEach((r, b) => { let c = 0; r.forEach((x, t) => { prefillPos[b * T + t] = x ? c++ : 0; }); });

  const prompt = (await inputIds.data()) as Int32Array; // [B, T]
const tokens = Array.from({ length: B }, (_, b) => Array.from(prompt.subarray(b * T, b * T + T)));
  const done = new Array<boolean>(B).fill(false);
  const cache = new KVCache(model.config.numHiddenLayers);
  const wasTraining = model.training;
  model.eval();
  try {
    let stepIds = inputIds;
    let stepPos = tensor(prefillPos, [B, T], 'int32', model.backend);
    for (let step = 0; step < maxNew; step++) {
      const S = maskRows[0]!.length;
      const keyMask = mask0 ? tensor(Int32Array.from(maskRows.flat()), [B, S], 'int32', model.backend) : null;
      // grad mode is off only while the step is computed, never across the read (other work may run meanwhile)
      const logits = noGrad(() => model.lastLogits(stepIds, stepPos, keyMask, cache)); // [B, 1, V]
      const last = await logits.data();
      const next = new Int32Array(B);
      for (let b = 0; b < B; b++) {
        next[b] = done[b] ? (model.config.padTokenId ?? [...eos][0] ?? 0)
          : sampleToken(last.subarray(b * V, b * V + limit), temperature, topK, topP, rng);
        tokens[b]!.push(next[b]!);
        if (eos.has(next[b]!)) done[b] = true;
      }
      opts.onToken?.(next);
      if (done.every(Boolean)) break;
      maskRows.forEach((r) => r.push(1));
      stepIds = tensor(next, [B, 1], 'int32', model.backend);
      stepPos = tensor(Int32Array.from(nextPos), [B, 1], 'int32', model.backend);
      nextPos.forEach((p, b) => { nextPos[b] = p + 1; });
    }
  } finally {
    model.train(wasTraining);
  }
  const outT = tokens[0]!.length;
  return tensor(Int32Array.from(tokens.flat()), [B, outT], 'int32', model.backend);
}

/** Index of the largest of the last `V` values (greedy decoding of the last position). */
export function argmaxLast(logits: ArrayLike<number>, V: number): number {
  const o = logits.length - V;
  let best = 0;
  for (let j = 1; j < V; j++) if (logits[o + j]! > logits[o + best]!) best = j;
  return best;
}

/** Picks the next token from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, temperature: number, topK: number, topP: number, rng: RNG): number {
  const V = logits.length;
  if (temperature === 0) return argmaxLast(logits, V);
  // Candidates sorted by logit, cut by top-k, softmax at the temperature, cut by top-p.
  let idx = Array.from({ length: V }, (_, j) => j).sort((a, b) => logits[b]! - logits[a]!);
  if (topK > 0) idx = idx.slice(0, topK);
  const m = logits[idx[0]!]!;
  let probs = idx.map((j) => Math.exp((logits[j]! - m) / temperature));
  let total = probs.reduce((a, x) => a + x, 0);
  if (topP < 1) {
    let acc = 0, keep = 0;
    while (keep < probs.length && acc < topP * total) acc += probs[keep++]!;
    idx = idx.slice(0, Math.max(1, keep));
    probs = probs.slice(0, Math.max(1, keep));
    total = probs.reduce((a, x) => a + x, 0);
  }
  let u = rng.uniform() * total;
  for (let i = 0; i < idx.length; i++) {
    u -= probs[i]!;
    if (u < 0) return idx[i]!;
  }
  return idx[idx.length - 1]!;
}
