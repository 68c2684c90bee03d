// LLaMA, Hugging Face compatible: Embedding → L × (RMSNorm → causal GQA attention with RoPE → residual;
// RMSNorm → SwiGLU MLP → residual) → RMSNorm → LM head (tied or untied). Parameter names are HF's.

import {
  type Backend, type DType, RNG, type Tensor, add, attention, concat, getBackend, matmul, mul, noGrad, reshape, rope,
  shapeStr, slice, swiglu, tensor, type RopeFreqs,
} from '../core/index.js';
import { causalLMLoss, linearCrossEntropy, shiftLabels } from '../loss/index.js';
import { type LlamaConfig, type LlamaConfigInput, llamaConfig, ropeInvFreq } from './config.js';
import { Embedding, type InitOptions, Linear, RMSNorm } from './layers.js';
import { Module } from './module.js';

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

interface LayerContext {
  positions: Tensor; // [B, T] int32
  keyMask: Tensor | null; // [B, S] int32, S = cached + T
  documentIds?: Tensor | null; // [B, T] int32 (packing; not with a KV cache)
  cache: KVCache | null;
}

export class LlamaAttention extends Module {
  readonly qProj: Linear; readonly kProj: Linear; readonly vProj: Linear; readonly oProj: Linear;
  private readonly NH: number; private readonly NKV: number; private readonly HD: number;

  constructor(readonly cfg: LlamaConfig, readonly layerIdx: number, private readonly freqs: RopeFreqs, init: InitOptions) {
    super();
    const C = cfg.hiddenSize;
    this.NH = cfg.numAttentionHeads; this.NKV = cfg.numKeyValueHeads; this.HD = cfg.headDim;
    this.qProj = this.registerModule('q_proj', new Linear(C, this.NH * this.HD, cfg.attentionBias, init));
    this.kProj = this.registerModule('k_proj', new Linear(C, this.NKV * this.HD, cfg.attentionBias, init));
    this.vProj = this.registerModule('v_proj', new Linear(C, this.NKV * this.HD, cfg.attentionBias, init));
    this.oProj = this.registerModule('o_proj', new Linear(this.NH * this.HD, C, cfg.attentionBias, init));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [B, T] = x.shape as [number, number, number];
    // No transposes: q/k/v stay [B, T, heads, HD]; the attention kernel reads that layout.
    let q = reshape(this.qProj.forward(x), [B, T, this.NH, this.HD]);
    let k = reshape(this.kProj.forward(x), [B, T, this.NKV, this.HD]);
    let v = reshape(this.vProj.forward(x), [B, T, this.NKV, this.HD]);
    q = rope(q, ctx.positions, this.freqs);
    k = rope(k, ctx.positions, this.freqs);
    if (ctx.cache) {
      const i = this.layerIdx;
      const pk = ctx.cache.k[i], pv = ctx.cache.v[i];
      if (pk && pv) { k = concat([pk, k], 1); v = concat([pv, v], 1); }
      ctx.cache.k[i] = k; ctx.cache.v[i] = v;
    }
    const o = attention(q, k, v, { causal: true, keyMask: ctx.keyMask, documentIds: ctx.documentIds ?? null }); // [B, T, NH, HD]
    return this.oProj.forward(reshape(o, [B, T, this.NH * this.HD]));
  }
}

export class LlamaMLP extends Module {
  readonly gateProj: Linear; readonly upProj: Linear; readonly downProj: Linear;

  constructor(cfg: LlamaConfig, init: InitOptions) {
    super();
    const C = cfg.hiddenSize, H = cfg.intermediateSize;
    this.gateProj = this.registerModule('gate_proj', new Linear(C, H, cfg.mlpBias, init));
    this.upProj = this.registerModule('up_proj', new Linear(C, H, cfg.mlpBias, init));
    this.downProj = this.registerModule('down_proj', new Linear(H, C, cfg.mlpBias, init));
  }

  /** SwiGLU: down(silu(gate(x)) · up(x)) */
  forward(x: Tensor): Tensor {
    return this.downProj.forward(swiglu(this.gateProj.forward(x), this.upProj.forward(x)));
  }
}

export class LlamaDecoderLayer extends Module {
  readonly inputLayernorm: RMSNorm; readonly selfAttn: LlamaAttention;
  readonly postAttentionLayernorm: RMSNorm; readonly mlp: LlamaMLP;

  constructor(cfg: LlamaConfig, layerIdx: number, freqs: RopeFreqs, init: InitOptions) {
    super();
    this.inputLayernorm = this.registerModule('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, init));
    this.selfAttn = this.registerModule('self_attn', new LlamaAttention(cfg, layerIdx, freqs, init));
    this.postAttentionLayernorm = this.registerModule('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, init));
    this.mlp = this.registerModule('mlp', new LlamaMLP(cfg, init));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = add(x, this.selfAttn.forward(this.inputLayernorm.forward(x), ctx));
    return add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }
}

export class LlamaModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: LlamaDecoderLayer[];
  readonly norm: RMSNorm;

  constructor(readonly cfg: LlamaConfig, init: InitOptions) {
    super();
    const f = ropeInvFreq(cfg, { float32: true }); // HF's float32 inv_freq
    const freqs: RopeFreqs = { invFreq: f.invFreq, attentionScaling: f.attentionScaling };
    this.embedTokens = this.registerModule('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize, init));
    this.layers = [];
    for (let i = 0; i < cfg.numHiddenLayers; i++) {
      this.layers.push(this.registerModule(`layers.${i}`, new LlamaDecoderLayer(cfg, i, freqs, init)));
    }
    this.norm = this.registerModule('norm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, init));
  }

  /** ids [B, T] (or embeddings [B, T, C] given as inputsEmbeds) → final hidden states [B, T, C]. */
  forward(ids: Tensor, ctx: LayerContext, inputsEmbeds?: Tensor): Tensor {
    let h = inputsEmbeds ?? this.embedTokens.forward(ids);
    for (const layer of this.layers) h = layer.forward(h, ctx);
    return this.norm.forward(h);
  }
}

export interface ModelOptions {
  /** Parameter dtype: float32 (default) or float64 (the ref backend's gradient checks). */
  dtype?: DType;
  backend?: Backend;
  /** Seed of the N(0, initializerRange²) weight init. Default 0. */
  seed?: number;
}

export interface ForwardOptions {
  /** [B, T] int32: 1 = real token, 0 = padding (never attended to). Default: all ones. */
  attentionMask?: Tensor | null;
  /** [B, T] int32 labels (shifted inside the loss); ignoreIndex (-100) where no loss is wanted. */
  labels?: Tensor | null;
  /** Valid targets in the whole optimizer step (gradient accumulation); see causalLMLoss. */
  numItemsInBatch?: number;
  /** [B, T] int32 RoPE positions. Default 0..T−1 for every row (HF's training default). */
  positionIds?: Tensor | null;
  /** [B, T] int32 document id per position (packed rows): attention never crosses documents. Pair it with
   *  positionIds that restart at 0 per document and labels with -100 at each document's first token. */
  documentIds?: Tensor | null;
  /** [B, T, C] embeddings to use instead of looking up inputIds (HF inputs_embeds); ids still give B, T. */
  inputsEmbeds?: Tensor | null;
  ignoreIndex?: number;
  labelSmoothing?: number;
  zLoss?: number;
  /** Logit soft-cap c (c·tanh(z/c) before the loss); fused loss only. */
  softcap?: number;
  /**
   * Compute the loss with the fused LM head + cross-entropy (src/loss/fused.ts): the [B, T, V] logits are never
   * materialised, and `logits` is returned as null. Needs labels. Same loss and gradients as the unfused path.
   */
  fusedLoss?: boolean;
}

export interface CausalLMOutput {
  /** [B, T, V]; null with fusedLoss (the point of it is never to hold them). */
  logits: Tensor | null;
  /** Scalar causal-LM loss when labels were given, else null. */
  loss: Tensor | null;
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
}

export class LlamaForCausalLM extends Module {
  readonly config: LlamaConfig;
  readonly model: LlamaModel;
  /** Untied head; null when tied (the head then multiplies by model.embed_tokens.weight). */
  readonly lmHead: Linear | null;
  readonly dtype: DType;
  readonly backend: Backend;

  constructor(config: LlamaConfig | LlamaConfigInput, opts: ModelOptions = {}) {
    super();
    this.config = llamaConfig(config);
    this.dtype = opts.dtype ?? 'float32';
    this.backend = opts.backend ?? getBackend();
    const init: InitOptions = { dtype: this.dtype, backend: this.backend, rng: new RNG(opts.seed ?? 0), std: this.config.initializerRange };
    this.model = this.registerModule('model', new LlamaModel(this.config, init));
    this.lmHead = this.config.tieWordEmbeddings ? null
      : this.registerModule('lm_head', new Linear(this.config.hiddenSize, this.config.vocabSize, false, init));
  }

  /** The [V, C] matrix that maps hidden states to logits. */
  get headWeight(): Tensor {
    return this.lmHead ? this.lmHead.weight : this.model.embedTokens.weight;
  }

  /** Loads config.json + model.safetensors (or a sharded model.safetensors.index.json) from a directory. Node only. */
  static async fromPretrained(dir: string, opts: ModelOptions = {}): Promise<LlamaForCausalLM> {
    const { loadPretrained } = await import('../io/pretrained.js');
    return loadPretrained(dir, opts);
  }

  /** Writes config.json + model.safetensors that transformers loads. Node only. */
  async savePretrained(dir: string, opts: { dtype?: 'F32' | 'BF16' } = {}): Promise<void> {
    const { savePretrained } = await import('../io/pretrained.js');
    return savePretrained(this, dir, opts);
  }

  /**
   * Logits [B, T, V] and, with labels, the causal-LM loss (labels shifted inside; mean over valid targets, or
   * sum / numItemsInBatch under gradient accumulation).
   */
  forward(inputIds: Tensor, opts: ForwardOptions & { fusedLoss: true; labels: Tensor }): { logits: null; loss: Tensor };
  forward(inputIds: Tensor, opts?: ForwardOptions & { fusedLoss?: false }): { logits: Tensor; loss: Tensor | null };
  forward(inputIds: Tensor, opts?: ForwardOptions): CausalLMOutput;
  forward(inputIds: Tensor, opts: ForwardOptions = {}): CausalLMOutput {
    const { B, T } = this.checkIds(inputIds, 'forward');
    const mask = this.checkMask(opts.attentionMask ?? null, B, T, 'attentionMask');
    const positions = opts.positionIds ? this.checkPositions(opts.positionIds, B, T) : arangePositions(B, T, 0, this.backend);
    const documentIds = opts.documentIds ? this.checkPositions(opts.documentIds, B, T, 'documentIds') : null;
    if (opts.inputsEmbeds && (opts.inputsEmbeds.rank !== 3 || opts.inputsEmbeds.shape[0] !== B || opts.inputsEmbeds.shape[1] !== T
        || opts.inputsEmbeds.shape[2] !== this.config.hiddenSize)) {
      throw new RangeError(`inputsEmbeds must be [${B}, ${T}, ${this.config.hiddenSize}], got ${shapeStr(opts.inputsEmbeds.shape)}`);
    }
    const labels = opts.labels ?? null;
    if (labels && (labels.dtype !== 'int32' || labels.rank !== 2 || labels.shape[0] !== B || labels.shape[1] !== T)) {
      throw new RangeError(`forward: labels must be int32 [${B}, ${T}] like input_ids, got ${labels.dtype} ${shapeStr(labels.shape)} ` +
        '(labels are the input ids with -100 where no loss is wanted; the model shifts them)');
    }
    if (opts.fusedLoss && !labels) throw new Error('forward: fusedLoss needs labels (without them there is no loss to fuse; drop fusedLoss to get logits)');
    if (opts.softcap && !opts.fusedLoss) throw new Error('forward: softcap is supported with fusedLoss: true');
    const hidden = this.model.forward(inputIds, { positions, keyMask: mask, documentIds, cache: null }, opts.inputsEmbeds ?? undefined);
    const lossOpts = { ignoreIndex: opts.ignoreIndex, numItemsInBatch: opts.numItemsInBatch, labelSmoothing: opts.labelSmoothing, zLoss: opts.zLoss };
    if (opts.fusedLoss) {
      // Same semantics as causalLMLoss: the labels are shifted, the logits are never formed.
      const ignoreIndex = opts.ignoreIndex ?? -100;
      const targets = tensor(shiftLabels(labels!.dataSync() as Int32Array, B, T, ignoreIndex), [B * T], 'int32', this.backend);
      const C = this.config.hiddenSize;
      const loss = linearCrossEntropy(reshape(hidden, [B * T, C]), this.headWeight, targets, { ...lossOpts, softcap: opts.softcap });
      return { logits: null, loss };
    }
    const logits = this.logitsOf(hidden);
    return { logits, loss: labels ? causalLMLoss(logits, labels, lossOpts) : null };
  }

  private logitsOf(hidden: Tensor): Tensor {
    if (this.lmHead) return this.lmHead.forward(hidden);
    const [B, T, C] = hidden.shape as [number, number, number];
    return reshape(matmulT(reshape(hidden, [B * T, C]), this.model.embedTokens.weight), [B, T, this.config.vocabSize]);
  }

  /**
   * Autoregressive decoding with a KV cache: the prompt is processed once, then each new token costs one
   * position. Returns [B, T + generated] int32 (fewer new tokens if every row stopped at eosTokenId).
   */
  async generate(inputIds: Tensor, opts: GenerateOptions = {}): Promise<Tensor> {
    const { B, T } = this.checkIds(inputIds, 'generate');
    const maxNew = opts.maxNewTokens ?? 20;
    const temperature = opts.temperature ?? 1;
    const topK = opts.topK ?? 0, topP = opts.topP ?? 1;
    if (!Number.isInteger(maxNew) || maxNew < 0) throw new RangeError(`generate: maxNewTokens must be an integer ≥ 0, got ${maxNew}`);
    if (!(temperature >= 0)) throw new RangeError(`generate: temperature must be ≥ 0, got ${temperature}`);
    if (!Number.isInteger(topK) || topK < 0) throw new RangeError(`generate: topK must be an integer ≥ 0, got ${topK}`);
    if (!(topP > 0 && topP <= 1)) throw new RangeError(`generate: topP must be in (0, 1], got ${topP}`);
    const eos = new Set(opts.eosTokenId == null ? [] : typeof opts.eosTokenId === 'number' ? [opts.eosTokenId] : opts.eosTokenId);
    const rng = new RNG(opts.seed ?? Math.floor(Math.random() * 2 ** 32));

    const V = this.config.vocabSize;
    const mask0 = this.checkMask(opts.attentionMask ?? null, B, T, 'attentionMask');
    const maskRows: number[][] = [];
    const m0 = mask0 ? (mask0.dataSync() as Int32Array) : new Int32Array(B * T).fill(1);
    for (let b = 0; b < B; b++) maskRows.push(Array.from(m0.subarray(b * T, b * T + T)));
    // HF generation positions: cumulative count of real tokens − 1 (left padding shifts nothing).
    const nextPos = maskRows.map((r) => r.reduce((a, x) => a + x, 0));
    const prefillPos = new Int32Array(B * T);
    maskRows.forEach((r, b) => { let c = 0; r.forEach((x, t) => { prefillPos[b * T + t] = x ? c++ : 0; }); });

    const tokens = Array.from({ length: B }, (_, b) => Array.from((inputIds.dataSync() as Int32Array).subarray(b * T, b * T + T)));
    const done = new Array<boolean>(B).fill(false);
    const cache = new KVCache(this.config.numHiddenLayers);
    const wasTraining = this.training;
    this.eval();
    try {
      let stepIds = inputIds;
      let stepPos = tensor(prefillPos, [B, T], 'int32', this.backend);
      for (let step = 0; step < maxNew; step++) {
        const S = maskRows[0]!.length;
        const keyMask = mask0 ? tensor(Int32Array.from(maskRows.flat()), [B, S], 'int32', this.backend) : null;
        const last = noGrad(() => {
          const h = this.model.forward(stepIds, { positions: stepPos, keyMask, cache }); // [B, t, C]
          const t = h.shape[1]!;
          return this.logitsOf(slice(h, 1, t - 1, t)).dataSync(); // [B, 1, V]
        });
        const next = new Int32Array(B);
        for (let b = 0; b < B; b++) {
          next[b] = done[b] ? (this.config.padTokenId ?? [...eos][0] ?? 0)
            : sampleToken(last.subarray(b * V, (b + 1) * V), temperature, topK, topP, rng);
          tokens[b]!.push(next[b]!);
          if (eos.has(next[b]!)) done[b] = true;
        }
        if (done.every(Boolean)) break;
        maskRows.forEach((r) => r.push(1));
        stepIds = tensor(next, [B, 1], 'int32', this.backend);
        stepPos = tensor(Int32Array.from(nextPos), [B, 1], 'int32', this.backend);
        nextPos.forEach((p, b) => { nextPos[b] = p + 1; });
      }
    } finally {
      this.train(wasTraining);
    }
    const outT = tokens[0]!.length;
    return tensor(Int32Array.from(tokens.flat()), [B, outT], 'int32', this.backend);
  }

  private checkIds(ids: Tensor, where: string): { B: number; T: number } {
    if (ids.dtype !== 'int32' || ids.rank !== 2) {
      throw new TypeError(`${where}: input ids must be an int32 tensor [B, T], got ${ids.dtype} ${shapeStr(ids.shape)}`);
    }
    const [B, T] = ids.shape as [number, number];
    if (T === 0 || B === 0) throw new RangeError(`${where}: input ids are empty (${shapeStr(ids.shape)}); give at least one token`);
    const V = this.config.vocabSize;
    const d = ids.dataSync() as Int32Array;
    for (let i = 0; i < d.length; i++) {
      const id = d[i]!;
      if (id < 0 || id >= V) {
        throw new RangeError(`${where}: token id ${id} at [${Math.floor(i / T)}, ${i % T}] is outside the vocabulary [0, ${V}); ` +
          `the tokenizer and the model's vocab_size (${V}) must agree`);
      }
    }
    return { B, T };
  }

  private checkMask(mask: Tensor | null, B: number, T: number, what: string): Tensor | null {
    if (!mask) return null;
    if (mask.dtype !== 'int32' || mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T) {
      throw new RangeError(`${what} must be int32 [${B}, ${T}] like input_ids, got ${mask.dtype} ${shapeStr(mask.shape)}`);
    }
    const d = mask.dataSync() as Int32Array;
    if (d.some((x) => x !== 0 && x !== 1)) throw new RangeError(`${what} must contain only 0 (padding) and 1 (token)`);
    return mask;
  }

  private checkPositions(p: Tensor, B: number, T: number, what = 'positionIds'): Tensor {
    if (p.dtype !== 'int32' || p.rank !== 2 || p.shape[0] !== B || p.shape[1] !== T) {
      throw new RangeError(`${what} must be int32 [${B}, ${T}], got ${p.dtype} ${shapeStr(p.shape)}`);
    }
    return p;
  }
}


/** x [N, C] · Wᵀ with W [V, C]. */
function matmulT(x: Tensor, w: Tensor): Tensor {
  return matmul(x, w, { transB: true });
}

function arangePositions(B: number, T: number, offset: number, backend: Backend): Tensor {
  const p = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) p[b * T + t] = offset + t;
  return tensor(p, [B, T], 'int32', backend);
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
