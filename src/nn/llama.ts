// LLaMA, Hugging Face compatible: Embedding → L × (RMSNorm → causal GQA attention with RoPE → residual;
// RMSNorm → SwiGLU MLP → residual) → RMSNorm → LM head (tied or untied). Parameter names are HF's.
// One decoder for every family of families.ts: the config's modelType places the attention biases (LLaMA/Qwen3:
// q/k/v/o when attention_bias; Qwen2: q/k/v), adds Qwen3's per-head q_norm/k_norm before RoPE and Mistral's
// sliding window.

import {
  type Backend, type DType, RNG, type Tensor, add, attention, checkpoint, concat, getBackend, hostInts, matmul, reshape, rope,
  shapeStr, slice, swiglu, tensor, type RopeFreqs,
} from '../core/index.js';
import { causalLMLoss, hostTargets, linearCrossEntropy, shiftLabels } from '../loss/index.js';
import { type GenerateOptions, type KVCache, generate } from './generate.js';
import { type LlamaConfig, type LlamaConfigInput, attentionLayout, llamaConfig, ropeInvFreq } from './config.js';
import { Embedding, type InitOptions, Linear, RMSNorm } from './layers.js';
import { Module } from './module.js';
import { checkModelMemory } from './memory.js';

export interface LayerContext {
  positions: Tensor; // [B, T] int32
  keyMask: Tensor | null; // [B, S] int32, S = cached + T
  documentIds?: Tensor | null; // [B, T] int32 (packing; not with a KV cache)
  cache: KVCache | null;
}

export class LlamaAttention extends Module {
  readonly qProj: Linear; readonly kProj: Linear; readonly vProj: Linear; readonly oProj: Linear;
  /** Qwen3: RMSNorm over each head's vector of q and k (weight [HD]) before RoPE; null elsewhere. */
  readonly qNorm: RMSNorm | null; readonly kNorm: RMSNorm | null;
  private readonly NH: number; private readonly NKV: number; private readonly HD: number;

  constructor(readonly cfg: LlamaConfig, readonly layerIdx: number, private readonly freqs: RopeFreqs, init: InitOptions) {
    super();
    const C = cfg.hiddenSize;
    const lay = attentionLayout(cfg);
    this.NH = cfg.numAttentionHeads; this.NKV = cfg.numKeyValueHeads; this.HD = cfg.headDim;
    this.qProj = this.registerModule('q_proj', new Linear(C, this.NH * this.HD, lay.qkvBias, init));
    this.kProj = this.registerModule('k_proj', new Linear(C, this.NKV * this.HD, lay.qkvBias, init));
    this.vProj = this.registerModule('v_proj', new Linear(C, this.NKV * this.HD, lay.qkvBias, init));
    this.oProj = this.registerModule('o_proj', new Linear(this.NH * this.HD, C, lay.oBias, init));
    this.qNorm = lay.qkNorm ? this.registerModule('q_norm', new RMSNorm(this.HD, cfg.rmsNormEps, init)) : null;
    this.kNorm = lay.qkNorm ? this.registerModule('k_norm', new RMSNorm(this.HD, cfg.rmsNormEps, init)) : null;
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const [B, T] = x.shape as [number, number, number];
    // No transposes: q/k/v stay [B, T, heads, HD]; the attention kernel reads that layout.
    const q = ropeOnly(headNorm(reshape(this.qProj.forward(x), [B, T, this.NH, this.HD]), this.qNorm), ctx.positions, this.freqs);
    let k = ropeOnly(headNorm(reshape(this.kProj.forward(x), [B, T, this.NKV, this.HD]), this.kNorm), ctx.positions, this.freqs);
    let v = reshape(this.vProj.forward(x), [B, T, this.NKV, this.HD]);
    if (ctx.cache) {
      const i = this.layerIdx;
      const pk = ctx.cache.k[i], pv = ctx.cache.v[i];
      if (pk && pv) { k = concat([pk, k], 1); v = concat([pv, v], 1); }
      ctx.cache.k[i] = k; ctx.cache.v[i] = v;
    }
    const o = attention(q, k, v, { causal: true, keyMask: ctx.keyMask, documentIds: ctx.documentIds ?? null, window: this.cfg.slidingWindow }); // [B, T, NH, HD]
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
    const h = addReleasing(x, this.selfAttn.forward(this.inputLayernorm.forward(x), ctx));
    return addReleasing(h, this.mlp.forward(this.postAttentionLayernorm.forward(h)));
  }
}

// Activations the backward pass never reads are freed as soon as the forward is done with them, instead of living
// until the step's scope closes: a step's peak memory is the activations kept for backward (s15M: 4 of the 12
// [B, T, C] tensors a layer makes are not needed: q and k before RoPE, the attention and MLP outputs once added).

/** x [B, T, heads, HD] normalised per head by `norm` (Qwen3's q_norm/k_norm), or x itself without one. */
function headNorm(x: Tensor, norm: RMSNorm | null): Tensor {
  return norm ? norm.forward(x) : x;
}

/** RoPE of x, freeing x (RoPE's backward rotates the gradient back without reading x; x is the caller's alone). */
function ropeOnly(x: Tensor, positions: Tensor, freqs: RopeFreqs): Tensor {
  const y = rope(x, positions, freqs);
  x.dispose();
  return y;
}

/** residual + branch, freeing the branch (add's backward passes the gradient on without reading either input). */
function addReleasing(residual: Tensor, branch: Tensor): Tensor {
  const y = add(residual, branch);
  branch.dispose();
  return y;
}

export class LlamaModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: LlamaDecoderLayer[];
  readonly norm: RMSNorm;
  /** Recompute each layer's activations in backward instead of keeping them (core/checkpoint.ts). */
  gradientCheckpointing = false;

  constructor(readonly cfg: LlamaConfig, init: InitOptions) {
    super();
    const f = ropeInvFreq(cfg, { float32: true }); // HF's float32 inv_freq
    const freqs: RopeFreqs = { invFreq: Float32Array.from(f.invFreq), attentionScaling: f.attentionScaling };
    this.embedTokens = this.registerModule('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize, init));
    this.layers = [];
    for (let i = 0; i < cfg.numHiddenLayers; i++) {
      this.layers.push(this.registerModule(`layers.${i}`, new LlamaDecoderLayer(cfg, i, freqs, init)));
    }
    this.norm = this.registerModule('norm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, init));
  }

  /** ids [B, T] (or embeddings [B, T, C] given as inputsEmbeds) → final hidden states [B, T, C]. */
  forward(ids: Tensor, ctx: LayerContext, inputsEmbeds?: Tensor, checkpointing = this.gradientCheckpointing): Tensor {
    let h = inputsEmbeds ?? this.embedTokens.forward(ids);
    for (const layer of this.layers) {
      h = checkpointing && !ctx.cache ? checkpoint((x) => layer.forward(x, ctx), [h]) : layer.forward(h, ctx);
    }
    return this.norm.forward(h);
  }
}

export interface ModelOptions {
  /** Parameter dtype: float32 (default) or float64 (the ref backend's gradient checks). */
  dtype?: DType;
  backend?: Backend;
  /** Seed of the N(0, initializerRange²) weight init. Default 0. */
  seed?: number;
  /** Recompute each decoder layer's activations in backward instead of keeping them (less memory, one more forward). */
  gradientCheckpointing?: boolean;
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
  /** Overrides the model's gradientCheckpointing (ModelOptions) for this call. */
  gradientCheckpointing?: boolean;
}

export interface CausalLMOutput {
  /** [B, T, V]; null with fusedLoss (the point of it is never to hold them). */
  logits: Tensor | null;
  /** Scalar causal-LM loss when labels were given, else null. */
  loss: Tensor | null;
}

/** Reads a Hugging Face model folder: installed by the Node entries (io/install-files.ts), absent in browsers. */
let pretrainedLoader: ((dir: string, opts: ModelOptions) => Promise<LlamaForCausalLM>) | null = null;

/** Installs the file reader behind LlamaForCausalLM.fromPretrained (the Node entries call it with loadPretrained). */
export function usePretrainedLoader(f: (dir: string, opts: ModelOptions) => Promise<LlamaForCausalLM>): void {
  pretrainedLoader = f;
}

export class LlamaForCausalLM extends Module {
  /**
   * Loads a Hugging Face model folder (config.json + safetensors) onto `opts.backend` — `loadPretrained(dir, opts)`
   * of 'llamatrain/node'. Node only: it reads files (a browser app parses the bytes with parseSafetensors).
   */
  static async fromPretrained(dir: string, opts: ModelOptions = {}): Promise<LlamaForCausalLM> {
    if (!pretrainedLoader) {
      throw new Error('LlamaForCausalLM.fromPretrained reads files, which needs Node: import llamatrain in Node (its "node" entry installs ' +
        "the file reader) or 'llamatrain/node'; in a browser, fetch the files and build the model with parseSafetensors");
    }
    return pretrainedLoader(dir, opts);
  }

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
    checkModelMemory(this.config, { dtype: this.dtype, backend: this.backend }); // before allocating anything
    const init: InitOptions = { dtype: this.dtype, backend: this.backend, rng: new RNG(opts.seed ?? 0), std: this.config.initializerRange };
    this.model = this.registerModule('model', new LlamaModel(this.config, init));
    this.model.gradientCheckpointing = opts.gradientCheckpointing ?? false;
    this.lmHead = this.config.tieWordEmbeddings ? null
      : this.registerModule('lm_head', new Linear(this.config.hiddenSize, this.config.vocabSize, false, init));
  }

  /** The [V, C] matrix that maps hidden states to logits. */
  get headWeight(): Tensor {
    return this.lmHead ? this.lmHead.weight : this.model.embedTokens.weight;
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
    const hidden = this.model.forward(inputIds, { positions, keyMask: mask, documentIds, cache: null }, opts.inputsEmbeds ?? undefined,
      opts.gradientCheckpointing);
    const lossOpts = { ignoreIndex: opts.ignoreIndex, numItemsInBatch: opts.numItemsInBatch, labelSmoothing: opts.labelSmoothing, zLoss: opts.zLoss };
    if (opts.fusedLoss) {
      // Same semantics as causalLMLoss: the labels are shifted, the logits are never formed.
      const ignoreIndex = opts.ignoreIndex ?? -100;
      const targets = tensor(shiftLabels(hostTargets(labels!, 'forward'), B, T, ignoreIndex), [B * T], 'int32', this.backend);
      const C = this.config.hiddenSize;
      const loss = linearCrossEntropy(reshape(hidden, [B * T, C]), this.headWeight, targets, { ...lossOpts, softcap: opts.softcap });
      hidden.dispose(); // a mean or summed fused loss has its gradients already; its backward never reads hidden
      return { logits: null, loss };
    }
    const logits = this.logitsOf(hidden);
    return { logits, loss: labels ? causalLMLoss(logits, labels, lossOpts) : null };
  }

  /** Decoding: ids [B, t] at positions [B, t] through the model with a KV cache; logits of the last position [B, 1, V]. */
  lastLogits(ids: Tensor, positions: Tensor, keyMask: Tensor | null, cache: KVCache): Tensor {
    const h = this.model.forward(ids, { positions, keyMask, cache }); // [B, t, C]
    const t = h.shape[1]!;
    return this.logitsOf(slice(h, 1, t - 1, t));
  }

  /** Logits [B, T, V] of final hidden states [B, T, C] (the LM head, tied or not). */
  logitsOf(hidden: Tensor): Tensor {
    if (this.lmHead) return this.lmHead.forward(hidden);
    const [B, T, C] = hidden.shape as [number, number, number];
    return reshape(matmulT(reshape(hidden, [B * T, C]), this.model.embedTokens.weight), [B, T, this.config.vocabSize]);
  }

  /**
   * Autoregressive decoding with a KV cache (see generate.ts): the prompt is processed once, then each new token
   * costs one position. Returns [B, T + generated] int32.
   */
  generate(inputIds: Tensor, opts: GenerateOptions = {}): Promise<Tensor> {
    return generate(this, inputIds, opts);
  }

  /** Shape checks, and the id range where the host knows the ids (their host copy; never a device read). */
  checkIds(ids: Tensor, where: string): { B: number; T: number } {
    if (ids.dtype !== 'int32' || ids.rank !== 2) {
      throw new TypeError(`${where}: input ids must be an int32 tensor [B, T], got ${ids.dtype} ${shapeStr(ids.shape)}`);
    }
    const [B, T] = ids.shape as [number, number];
    if (T === 0 || B === 0) throw new RangeError(`${where}: input ids are empty (${shapeStr(ids.shape)}); give at least one token`);
    const V = this.config.vocabSize;
    const d = hostInts(ids) ?? new Int32Array(0); // device-made ids: the embedding kernel writes NaN rows for bad ones
    for (let i = 0; i < d.length; i++) {
      const id = d[i]!;
      if (id < 0 || id >= V) {
        throw new RangeError(`${where}: token id ${id} at [${Math.floor(i / T)}, ${i % T}] is outside the vocabulary [0, ${V}); ` +
          `the tokenizer and the model's vocab_size (${V}) must agree`);
      }
    }
    return { B, T };
  }

  checkMask(mask: Tensor | null, B: number, T: number, what: string): Tensor | null {
    if (!mask) return null;
    if (mask.dtype !== 'int32' || mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T) {
      throw new RangeError(`${what} must be int32 [${B}, ${T}] like input_ids, got ${mask.dtype} ${shapeStr(mask.shape)}`);
    }
    const d = hostInts(mask);
    if (d && d.some((x) => x !== 0 && x !== 1)) throw new RangeError(`${what} must contain only 0 (padding) and 1 (token)`);
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

