// LlamaConfig: the model hyper-parameters, with Hugging Face's defaults, plus conversion from/to HF config.json
// (transformers 4 and 5 layouts) and the RoPE inverse frequencies derived from it. One config type serves every
// LLaMA-architecture family (families.ts: llama, mistral, qwen2, qwen3); `modelType` says which.
// No Node imports and no tensor code: this runs anywhere, including Web Workers.
import { InputError } from '../core/errors.js';
import { MODEL_FAMILIES, type ModelFamily, type ModelType, SUPPORTED_MODEL_TYPES, attentionBiases, isModelType } from './families.js';

export type { ModelType } from './families.js';

/** RoPE frequency scaling for long contexts. Only the kinds LLaMA checkpoints use are supported. */
export type RopeScaling =
  /** Position interpolation: every inverse frequency divided by `factor`. */
  | { ropeType: 'linear'; factor: number }
  /** Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth blend in between. */
  | {
      ropeType: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      /** Context length the model was pre-trained with (8192 for Llama 3.1). */
      originalMaxPositionEmbeddings: number;
    }
  /**
   * YaRN (transformers' `_compute_yarn_parameters`): frequencies blended between interpolated (/ factor) and
   * original by a linear ramp over the dimensions whose rotation count in the original context lies between
   * betaSlow and betaFast; cos and sin multiplied by attentionFactor.
   */
  | {
      ropeType: 'yarn';
      factor: number;
      originalMaxPositionEmbeddings: number;
      /** Multiplies cos and sin. Default 0.1·ln(factor) + 1 (or the ratio of mscale terms when both are given). */
      attentionFactor: number | null;
      /** Default 32. */
      betaFast: number;
      /** Default 1. */
      betaSlow: number;
      /** Only to derive the default attentionFactor (DeepSeek-style); null when absent. */
      mscale: number | null;
      mscaleAllDim: number | null;
      /** Round the ramp's ends to whole dimensions (default true). */
      truncate: boolean;
    };

export interface LlamaConfig {
  /**
   * Which family of LLaMA-architecture models (config.json `model_type`): 'llama' (default), 'mistral', 'qwen2',
   * 'qwen3'. It decides where biases go, Qwen3's q/k norms, Mistral's sliding window (see families.ts).
   */
  modelType: ModelType;
  vocabSize: number;
  hiddenSize: number;
  /** Width of the SwiGLU MLP (gate/up output, down input). */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Grouped-query attention: K/V heads, each shared by numAttentionHeads / numKeyValueHeads query heads.
   *  Default: numAttentionHeads (plain multi-head attention), as in HF. */
  numKeyValueHeads: number;
  /** Per-head width. Default: hiddenSize / numAttentionHeads. May differ from it (q/o projections adapt). */
  headDim: number;
  /** RMSNorm epsilon. Default 1e-6 (HF LlamaConfig's default); Llama 2/3 checkpoints set 1e-5. */
  rmsNormEps: number;
  /** RoPE base θ. Default 10000; Llama 3 uses 500000. */
  ropeTheta: number;
  /** Default null (no scaling). */
  ropeScaling: RopeScaling | null;
  /** Longest sequence the model is meant for (RoPE works beyond it, quality may not). Default 2048, as in HF. */
  maxPositionEmbeddings: number;
  /** Share the embedding matrix with the LM head. Default false, as in HF's LlamaConfig. */
  tieWordEmbeddings: boolean;
  /**
   * Attention biases. LLaMA and Qwen3: on q/k/v/o when true (default false). Qwen2: always true, and then on q/k/v
   * only (o_proj has none). Mistral: always false.
   */
  attentionBias: boolean;
  /** Biases on gate/up/down projections (LLaMA only). Default false. */
  mlpBias: boolean;
  /**
   * Sliding-window attention (Mistral): a query at position i sees keys j with i − window < j ≤ i. null: full causal
   * attention. Mistral's default is 4096; the other families have none.
   */
  slidingWindow: number | null;
  /** Std of the normal init of weights (norm weights start at 1). Default 0.02. */
  initializerRange: number;
  /** Default 1 (HF default, the LLaMA tokenizer's <s>). */
  bosTokenId: number | null;
  /** Default 2 (HF default, </s>). Several ids are allowed (Llama 3 instruct models list more than one). */
  eosTokenId: number | number[] | null;
  /** Default null: LLaMA has no pad token; batches pad with any id and mask it out. */
  padTokenId: number | null;
  /** MLP activation. Only SiLU (SwiGLU) is supported. */
  hiddenAct: 'silu';
}

/** The sizes have no sensible default; everything else does. */
export type LlamaConfigInput = Partial<LlamaConfig> &
  Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads'>;

// camelCase field → HF config.json key, used both for conversion and so every error names the key users see in
// config.json files.
const HF_KEY: Record<keyof LlamaConfig, string> = {
  modelType: 'model_type',
  vocabSize: 'vocab_size',
  hiddenSize: 'hidden_size',
  intermediateSize: 'intermediate_size',
  numHiddenLayers: 'num_hidden_layers',
  numAttentionHeads: 'num_attention_heads',
  numKeyValueHeads: 'num_key_value_heads',
  headDim: 'head_dim',
  rmsNormEps: 'rms_norm_eps',
  ropeTheta: 'rope_theta',
  ropeScaling: 'rope_scaling',
  maxPositionEmbeddings: 'max_position_embeddings',
  tieWordEmbeddings: 'tie_word_embeddings',
  attentionBias: 'attention_bias',
  mlpBias: 'mlp_bias',
  slidingWindow: 'sliding_window',
  initializerRange: 'initializer_range',
  bosTokenId: 'bos_token_id',
  eosTokenId: 'eos_token_id',
  padTokenId: 'pad_token_id',
  hiddenAct: 'hidden_act',
};
const REQUIRED = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHiddenLayers', 'numAttentionHeads'] as const;
const SUPPORTED_ROPE = "'default', 'linear', 'llama3', 'yarn'";

function fail(source: string, msg: string): never {
  throw new InputError(`${source}: ${msg}`, { source });
}
const show = (v: unknown): string => (v === undefined ? 'nothing' : typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v) ?? v));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function positiveInt(source: string, key: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) fail(source, `${key} must be a positive integer, found ${show(v)}`);
}
function positiveNumber(source: string, key: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(source, `${key} must be a finite number > 0, found ${show(v)}`);
}
function tokenId(source: string, key: string, v: unknown, vocabSize: number): void {
  if (v === null) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail(source, `${key} must be an integer or null, found ${show(v)}`);
  if (v < 0 || v >= vocabSize) {
    fail(source, `${key} is ${v}, outside the vocabulary (ids 0 … ${vocabSize - 1}, vocab_size ${vocabSize}); ` +
      'use the id of that token in the tokenizer, or null if the model has no such token');
  }
}

/**
 * Build a complete LlamaConfig: fills HF's defaults for every field not given and validates the result.
 * `source` prefixes error messages (configFromHF passes the file name).
 */
export function llamaConfig(partial: LlamaConfigInput, source = 'config'): LlamaConfig {
  if (!isObject(partial)) fail(source, `expected an object of config fields, found ${show(partial)}`);
  for (const key of Object.keys(partial)) {
    if (!(key in HF_KEY)) fail(source, `unknown field "${key}"; known fields: ${Object.keys(HF_KEY).join(', ')}`);
  }
  for (const key of REQUIRED) {
    if (partial[key] === undefined) fail(source, `${HF_KEY[key]} is required (no sensible default); set ${key}`);
  }
  const modelType = partial.modelType ?? 'llama';
  if (!isModelType(modelType)) fail(source, unsupportedFamily(modelType));
  const family = MODEL_FAMILIES[modelType];
  // Sizes first: the defaults below are computed from them.
  for (const key of REQUIRED) positiveInt(source, HF_KEY[key], partial[key]);
  const { hiddenSize, numAttentionHeads } = partial;
  if (partial.headDim === undefined && family.defaults.headDim === undefined && hiddenSize % numAttentionHeads !== 0) {
    fail(
      source,
      `hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numAttentionHeads}), so head_dim has no default; ` +
        `set head_dim explicitly or pick a head count that divides hidden_size`,
    );
  }
  const eos = partial.eosTokenId;
  const scaling = partial.ropeScaling;
  const cfg: LlamaConfig = {
    modelType,
    vocabSize: partial.vocabSize,
    hiddenSize,
    intermediateSize: partial.intermediateSize,
    numHiddenLayers: partial.numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads: partial.numKeyValueHeads ?? numAttentionHeads,
    headDim: partial.headDim ?? family.defaults.headDim ?? hiddenSize / numAttentionHeads,
    rmsNormEps: partial.rmsNormEps ?? 1e-6,
    ropeTheta: partial.ropeTheta ?? 10000,
    ropeScaling: scaling == null ? null : { ...scaling }, // copies: the config never aliases caller objects
    maxPositionEmbeddings: partial.maxPositionEmbeddings ?? family.defaults.maxPositionEmbeddings,
    tieWordEmbeddings: partial.tieWordEmbeddings ?? false,
    attentionBias: partial.attentionBias ?? family.attentionBias === 'qkv',
    mlpBias: partial.mlpBias ?? false,
    slidingWindow: partial.slidingWindow === undefined ? family.defaults.slidingWindow ?? null : partial.slidingWindow,
    initializerRange: partial.initializerRange ?? 0.02,
    // The family's defaults (LLaMA: 1 and 2), where the vocabulary has them (a 2-token vocabulary has no id 2)
    bosTokenId: partial.bosTokenId === undefined ? defaultId(family.defaults.bosTokenId, partial.vocabSize) : partial.bosTokenId,
    eosTokenId: eos === undefined ? defaultId(family.defaults.eosTokenId, partial.vocabSize) : Array.isArray(eos) ? eos.slice() : eos,
    padTokenId: partial.padTokenId === undefined ? null : partial.padTokenId,
    hiddenAct: partial.hiddenAct ?? 'silu',
  };
  validate(cfg, source);
  return cfg;
}

const defaultId = (id: number | null, vocabSize: number): number | null => (id !== null && id < vocabSize ? id : null);

function unsupportedFamily(modelType: unknown): string {
  return `model_type ${show(modelType)} is not supported; supported LLaMA-architecture families: ${SUPPORTED_MODEL_TYPES.map((t) => `"${t}"`).join(', ')}. ` +
    'A checkpoint of another architecture (GPT-2, Gemma, Phi, …) cannot be loaded as one of these';
}

/** The family table row of a config (families.ts). */
export function modelFamily(c: Pick<LlamaConfig, 'modelType'>): ModelFamily {
  return MODEL_FAMILIES[c.modelType];
}

/** Which of a config's projections carry biases, and whether q/k get Qwen3's per-head norms. */
export function attentionLayout(c: Pick<LlamaConfig, 'modelType' | 'attentionBias'>): { qkvBias: boolean; oBias: boolean; qkNorm: boolean } {
  const f = modelFamily(c);
  const b = attentionBiases(f, c.attentionBias);
  return { qkvBias: b.qkv, oBias: b.o, qkNorm: f.qkNorm };
}

function validate(c: LlamaConfig, source: string): void {
  positiveInt(source, 'num_key_value_heads', c.numKeyValueHeads);
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) {
    // the divisors, by trial up to the square root (a head count of 2^31 must not take 2^31 steps)
    const small: number[] = [], large: number[] = [];
    for (let d = 1; d * d <= c.numAttentionHeads; d++) {
      if (c.numAttentionHeads % d !== 0) continue;
      small.push(d);
      if (d * d !== c.numAttentionHeads) large.unshift(c.numAttentionHeads / d);
    }
    const all = [...small, ...large];
    const divisors = all.length > 12 ? [...all.slice(0, 6), '…', ...all.slice(-3)] : all;
    fail(
      source,
      `num_key_value_heads (${c.numKeyValueHeads}) must divide num_attention_heads (${c.numAttentionHeads}): ` +
        `each K/V head serves an equal group of query heads; use one of ${divisors.join(', ')}`,
    );
  }
  positiveInt(source, 'head_dim', c.headDim);
  if (c.headDim % 2 !== 0) {
    fail(source, `head_dim (${c.headDim}) must be even: RoPE rotates pairs of dimensions; change head_dim or hidden_size/num_attention_heads`);
  }
  positiveNumber(source, 'rms_norm_eps', c.rmsNormEps);
  positiveNumber(source, 'rope_theta', c.ropeTheta);
  positiveInt(source, 'max_position_embeddings', c.maxPositionEmbeddings);
  if (typeof c.initializerRange !== 'number' || !Number.isFinite(c.initializerRange) || c.initializerRange < 0) {
    fail(source, `initializer_range must be a finite number >= 0, found ${show(c.initializerRange)}`);
  }
  for (const key of ['tieWordEmbeddings', 'attentionBias', 'mlpBias'] as const) {
    if (typeof c[key] !== 'boolean') fail(source, `${HF_KEY[key]} must be true or false, found ${show(c[key])}`);
  }
  const family = modelFamily(c);
  if (family.attentionBias === 'qkv' && !c.attentionBias) {
    fail(source, `a ${c.modelType} model always has biases on q/k/v (none on o_proj): attention_bias cannot be false; use model_type "llama" for a model without them`);
  }
  if (family.attentionBias === 'none' && c.attentionBias) {
    fail(source, `a ${c.modelType} model has no attention biases: attention_bias cannot be true; use model_type "llama" (biases on q/k/v/o) or "qwen2" (on q/k/v)`);
  }
  if (!family.mlpBias && c.mlpBias) fail(source, `a ${c.modelType} model has no MLP biases: mlp_bias cannot be true; use model_type "llama" for a model with them`);
  if (c.slidingWindow !== null) {
    positiveInt(source, 'sliding_window', c.slidingWindow);
    if (family.slidingWindow !== 'config') {
      fail(source, `sliding_window ${c.slidingWindow}: a ${c.modelType} model here has full causal attention on every layer; ` +
        'set sliding_window to null, or use model_type "mistral" for a windowed model');
    }
  }
  tokenId(source, 'bos_token_id', c.bosTokenId, c.vocabSize);
  tokenId(source, 'pad_token_id', c.padTokenId, c.vocabSize);
  if (Array.isArray(c.eosTokenId)) {
    if (c.eosTokenId.length === 0) fail(source, 'eos_token_id is an empty list; give one id, a list of ids, or null');
    c.eosTokenId.forEach((id, i) => tokenId(source, `eos_token_id[${i}]`, id, c.vocabSize));
  } else tokenId(source, 'eos_token_id', c.eosTokenId, c.vocabSize);
  if (c.hiddenAct !== 'silu') fail(source, `hidden_act ${show(c.hiddenAct)} is not supported; LLaMA uses "silu" (SwiGLU)`);

  const s = c.ropeScaling;
  if (s === null) return;
  if (!isObject(s)) fail(source, `rope_scaling must be null or an object, found ${show(s)}`);
  if (s.ropeType !== 'linear' && s.ropeType !== 'llama3' && s.ropeType !== 'yarn') {
    const type = (s as { ropeType?: unknown }).ropeType; // reachable from untyped JS callers
    fail(source, `rope_type ${show(type)} is not supported; supported: ${SUPPORTED_ROPE}`);
  }
  positiveNumber(source, 'rope_scaling.factor', s.factor);
  if (s.ropeType === 'llama3') {
    positiveNumber(source, 'rope_scaling.low_freq_factor', s.lowFreqFactor);
    positiveNumber(source, 'rope_scaling.high_freq_factor', s.highFreqFactor);
    if (s.highFreqFactor <= s.lowFreqFactor) {
      fail(
        source,
        `rope_scaling.high_freq_factor (${s.highFreqFactor}) must be greater than low_freq_factor (${s.lowFreqFactor}) ` +
          `for llama3 RoPE (Llama 3.1 uses 4 and 1)`,
      );
    }
    positiveInt(source, 'rope_scaling.original_max_position_embeddings', s.originalMaxPositionEmbeddings);
  }
  if (s.ropeType === 'yarn') {
    positiveInt(source, 'rope_scaling.original_max_position_embeddings', s.originalMaxPositionEmbeddings);
    if (s.attentionFactor !== null) positiveNumber(source, 'rope_scaling.attention_factor', s.attentionFactor);
    positiveNumber(source, 'rope_scaling.beta_fast', s.betaFast);
    positiveNumber(source, 'rope_scaling.beta_slow', s.betaSlow);
    if (s.mscale !== null) positiveNumber(source, 'rope_scaling.mscale', s.mscale);
    if (s.mscaleAllDim !== null) positiveNumber(source, 'rope_scaling.mscale_all_dim', s.mscaleAllDim);
    if (typeof s.truncate !== 'boolean') fail(source, `rope_scaling.truncate must be true or false, found ${show(s.truncate)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Size
// ---------------------------------------------------------------------------------------------------------------

/** How big a model of this config is, computed from the config alone (nothing allocated). */
export interface ModelSize {
  /** Parameters (the tied head counted once). */
  parameters: number;
  /** The largest single parameter tensor: its HF name and element count. */
  largest: { name: string; elements: number };
}

/** Parameter count of a LLaMA model of this config, and its largest tensor (to check against a typed array's limit). */
export function modelSize(c: LlamaConfig): ModelSize {
  const C = c.hiddenSize, H = c.intermediateSize, V = c.vocabSize, L = c.numHiddenLayers;
  const q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim;
  const lay = attentionLayout(c);
  const attn = C * q + 2 * C * kv + q * C + (lay.qkvBias ? q + 2 * kv : 0) + (lay.oBias ? C : 0) + (lay.qkNorm ? 2 * c.headDim : 0);
  const mlp = 3 * C * H + (c.mlpBias ? 2 * H + C : 0);
  const layer = attn + mlp + 2 * C; // + the two RMSNorm weights
  const parameters = V * C + L * layer + C + (c.tieWordEmbeddings ? 0 : V * C);
  const candidates: [string, number][] = [
    ['model.embed_tokens.weight', V * C],
    ['model.layers.0.self_attn.q_proj.weight', C * q],
    ['model.layers.0.mlp.gate_proj.weight', C * H],
  ];
  let largest = { name: candidates[0]![0], elements: candidates[0]![1] };
  for (const [name, elements] of candidates) if (elements > largest.elements) largest = { name, elements };
  return { parameters, largest };
}

// ---------------------------------------------------------------------------------------------------------------
// HF config.json
// ---------------------------------------------------------------------------------------------------------------

/** Read one HF rope dict (v4 `rope_scaling` or v5 `rope_parameters`) into our scaling, or null for 'default'. */
function ropeScalingFromHF(d: Record<string, unknown>, where: string, source: string, maxPositions: number): RopeScaling | null {
  // transformers < 4.43 wrote "type" instead of "rope_type".
  const type = d.rope_type ?? d.type ?? 'default';
  const prf = d.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1) {
    fail(source, `${where}.partial_rotary_factor (${show(prf)}) is not supported; LLaMA rotates the whole head (1.0)`);
  }
  const num = (key: string): number => {
    const v = d[key];
    if (typeof v !== 'number') fail(source, `${where}.${key} is required for rope_type "${String(type)}" and must be a number, found ${show(v)}`);
    return v;
  };
  const opt = (key: string): number | null => {
    const v = d[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number') fail(source, `${where}.${key} must be a number or absent, found ${show(v)}`);
    return v;
  };
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { ropeType: 'linear', factor: num('factor') };
    case 'llama3':
      return {
        ropeType: 'llama3',
        factor: num('factor'),
        lowFreqFactor: num('low_freq_factor'),
        highFreqFactor: num('high_freq_factor'),
        originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
      };
    case 'yarn': {
      // transformers 5: original_max_position_embeddings defaults to max_position_embeddings, factor to their ratio
      const orig = opt('original_max_position_embeddings') ?? maxPositions;
      const truncate = d.truncate ?? true;
      return {
        ropeType: 'yarn',
        factor: opt('factor') ?? maxPositions / orig,
        originalMaxPositionEmbeddings: orig,
        attentionFactor: opt('attention_factor'),
        betaFast: opt('beta_fast') || 32, // transformers: `or`, so 0 means the default too
        betaSlow: opt('beta_slow') || 1,
        mscale: opt('mscale'),
        mscaleAllDim: opt('mscale_all_dim'),
        truncate: truncate as boolean,
      };
    }
    case 'dynamic':
      fail(source, `${where}.rope_type "dynamic" (dynamic NTK) is not supported: it recomputes the frequencies from the length of each ` +
        `sequence past max_position_embeddings, so a cached prefix and a training row would rotate differently. Supported: ${SUPPORTED_ROPE}. ` +
        'Below max_position_embeddings it equals "default": remove rope_scaling to use the model at those lengths');
    // falls through: fail() never returns
    case 'longrope':
      fail(source, `${where}.rope_type "longrope" (Phi-3) is not supported; supported: ${SUPPORTED_ROPE}`);
    // falls through: fail() never returns
    default:
      fail(source, `${where}.rope_type ${show(type)} is not supported; supported: ${SUPPORTED_ROPE}. ` +
        `Convert the checkpoint to one of these or train without RoPE scaling`);
  }
}

const sameScaling = (a: RopeScaling | null, b: RopeScaling | null): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * Read a Hugging Face LLaMA config.json (already JSON-parsed). Accepts transformers 4 files (top-level
 * `rope_theta`, optional `rope_scaling`) and transformers 5 files (`rope_parameters: {rope_theta, rope_type, ...}`).
 * Missing optional keys take HF's defaults. `source` names the file in error messages.
 */
export function configFromHF(json: unknown, source = 'config.json'): LlamaConfig {
  if (!isObject(json)) fail(source, `expected a JSON object, found ${show(json)}`);
  const modelType = json.model_type ?? 'llama';
  if (!isModelType(modelType)) fail(source, unsupportedFamily(modelType));
  const family = MODEL_FAMILIES[modelType];
  const partial: Record<string, unknown> = {};
  for (const key of REQUIRED) {
    const v = json[HF_KEY[key]];
    if (v === undefined || v === null) fail(source, `missing required key "${HF_KEY[key]}"; is this a ${family.architecture} config.json?`);
    partial[key] = v;
  }
  // Keys where null means "not set" (HF fills a derived default).
  partial.modelType = modelType;
  // Keys the family's transformers class never reads are ignored as it ignores them (a Qwen2 or Mistral
  // config.json may carry attention_bias or mlp_bias from a generic writer).
  const read: (keyof LlamaConfig)[] = ['numKeyValueHeads', 'headDim', 'rmsNormEps', 'maxPositionEmbeddings', 'initializerRange', 'tieWordEmbeddings'];
  if (family.attentionBias === 'config') read.push('attentionBias');
  if (family.mlpBias) read.push('mlpBias');
  for (const key of read) {
    const v = json[HF_KEY[key]];
    if (v !== undefined && v !== null) partial[key] = v;
  }
  if (family.slidingWindow === 'config') {
    if ('sliding_window' in json) partial.slidingWindow = json.sliding_window; // null: no window
  } else if (family.slidingWindow === 'opt-in') {
    const layerTypes = json.layer_types;
    const windowed = json.use_sliding_window === true ||
      (Array.isArray(layerTypes) && layerTypes.some((t) => t !== 'full_attention'));
    if (windowed) {
      fail(source, `use_sliding_window / layer_types ask for sliding-window attention on some layers of this ${modelType} model; ` +
        'that per-layer window is not supported (the released Qwen2/Qwen3 checkpoints do not use it): set use_sliding_window to false');
    }
  }
  // Token ids: null is a real value ("no such token").
  for (const key of ['bosTokenId', 'eosTokenId', 'padTokenId'] as const) {
    if (HF_KEY[key] in json) partial[key] = json[HF_KEY[key]];
  }
  const act = json.hidden_act;
  if (act !== undefined) {
    // HF maps "swish" to the same function as "silu".
    if (act !== 'silu' && act !== 'swish') fail(source, `hidden_act ${show(act)} is not supported; LLaMA uses "silu" (SwiGLU)`);
    partial.hiddenAct = 'silu';
  }

  // RoPE. transformers 5 keeps everything in rope_parameters; transformers 4 has rope_theta + rope_scaling.
  // Files written by configToHF carry both; they must then agree.
  const v5 = json.rope_parameters;
  const v4 = json.rope_scaling;
  if (v5 !== undefined && v5 !== null && !isObject(v5)) fail(source, `rope_parameters must be an object, found ${show(v5)}`);
  if (v4 !== undefined && v4 !== null && !isObject(v4)) fail(source, `rope_scaling must be an object or null, found ${show(v4)}`);
  const theta5 = isObject(v5) ? v5.rope_theta : undefined;
  const theta4 = json.rope_theta;
  if (theta5 !== undefined && theta4 !== undefined && theta5 !== theta4) {
    fail(source, `rope_theta (${show(theta4)}) and rope_parameters.rope_theta (${show(theta5)}) disagree; remove one or make them equal`);
  }
  const theta = theta5 ?? theta4;
  if (theta !== undefined && theta !== null) partial.ropeTheta = theta;
  const maxPositions = typeof json.max_position_embeddings === 'number' ? json.max_position_embeddings : family.defaults.maxPositionEmbeddings;
  const scaling5 = isObject(v5) ? ropeScalingFromHF(v5, 'rope_parameters', source, maxPositions) : undefined;
  const scaling4 = isObject(v4) ? ropeScalingFromHF(v4, 'rope_scaling', source, maxPositions) : undefined;
  if (scaling5 !== undefined && scaling4 !== undefined && !sameScaling(scaling5, scaling4)) {
    fail(source, `rope_scaling and rope_parameters describe different RoPE scalings; remove one or make them agree`);
  }
  partial.ropeScaling = scaling4 ?? scaling5 ?? null;

  return llamaConfig(partial as LlamaConfigInput, source);
}

/**
 * A config.json that transformers 4 (>= 4.43) and 5 both load as this model: v4 reads rope_theta/rope_scaling,
 * v5 reads rope_parameters (and falls back to rope_scaling + rope_theta, which say the same thing).
 */
export function configToHF(cfg: LlamaConfig): Record<string, unknown> {
  const s = cfg.ropeScaling;
  const family = modelFamily(cfg);
  let scaling: Record<string, unknown> | null = null;
  if (s?.ropeType === 'linear') scaling = { rope_type: 'linear', factor: s.factor };
  else if (s?.ropeType === 'llama3') {
    scaling = {
      rope_type: 'llama3',
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositionEmbeddings,
    };
  } else if (s?.ropeType === 'yarn') {
    scaling = {
      rope_type: 'yarn',
      factor: s.factor,
      original_max_position_embeddings: s.originalMaxPositionEmbeddings,
      ...(s.attentionFactor === null ? {} : { attention_factor: s.attentionFactor }),
      beta_fast: s.betaFast,
      beta_slow: s.betaSlow,
      ...(s.mscale === null ? {} : { mscale: s.mscale }),
      ...(s.mscaleAllDim === null ? {} : { mscale_all_dim: s.mscaleAllDim }),
      truncate: s.truncate,
    };
  }
  // The keys each family's transformers config class reads (others would only be carried along as attributes).
  const familyKeys: Record<string, unknown> = {};
  if (family.attentionBias === 'config') familyKeys.attention_bias = cfg.attentionBias;
  if (family.mlpBias) { familyKeys.mlp_bias = cfg.mlpBias; familyKeys.pretraining_tp = 1; }
  if (family.slidingWindow === 'config') familyKeys.sliding_window = cfg.slidingWindow;
  if (family.slidingWindow === 'opt-in') {
    Object.assign(familyKeys, { use_sliding_window: false, sliding_window: null, max_window_layers: cfg.numHiddenLayers });
  }
  return {
    architectures: [family.architecture],
    model_type: cfg.modelType,
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numHiddenLayers,
    num_attention_heads: cfg.numAttentionHeads,
    num_key_value_heads: cfg.numKeyValueHeads,
    head_dim: cfg.headDim,
    hidden_act: cfg.hiddenAct,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    initializer_range: cfg.initializerRange,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: scaling,
    rope_parameters: { rope_theta: cfg.ropeTheta, ...(scaling ?? { rope_type: 'default' }) },
    attention_dropout: 0.0,
    ...familyKeys,
    tie_word_embeddings: cfg.tieWordEmbeddings,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: Array.isArray(cfg.eosTokenId) ? cfg.eosTokenId.slice() : cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
    use_cache: true,
    torch_dtype: 'float32', // transformers 4 name
    dtype: 'float32', // transformers 5 name
  };
}

// ---------------------------------------------------------------------------------------------------------------
// RoPE
// ---------------------------------------------------------------------------------------------------------------

/**
 * RoPE inverse frequencies, as HF's `ROPE_INIT_FUNCTIONS[rope_type]` computes them:
 *   default: invFreq[j] = 1 / θ^(2j / headDim), j = 0 .. headDim/2 - 1
 *   linear:  default / factor
 *   llama3:  per frequency by wavelength 2π/invFreq: above originalMax/lowFreqFactor → divided by factor; below
 *            originalMax/highFreqFactor → kept; in between → blend (1-s)·f/factor + s·f with
 *            s = (originalMax/wavelen − lowFreqFactor) / (highFreqFactor − lowFreqFactor).
 *   yarn:    e·f + (1 − e)·f/factor, e = 1 − ramp(j) with ramp linear from 0 at dimension `low` to 1 at `high`,
 *            the dimensions where f completes betaFast and betaSlow turns in originalMax positions.
 * Computed in float64 by default; { float32: true } rounds through float32 where HF does (the model uses that).
 * attentionScaling multiplies cos and sin: YaRN's attention factor, else 1.
 */
export function ropeInvFreq(cfg: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>, opts: { float32?: boolean } = {}): {
  invFreq: Float64Array; // [headDim / 2]
  attentionScaling: number;
} {
  // float32: round every intermediate through float32 as HF's torch code does (its inv_freq buffer is float32,
  // even in a float64 model), so our angles equal the ones HF checkpoints were trained with.
  const r = opts.float32 ? Math.fround : (x: number) => x;
  const dim = cfg.headDim;
  const invFreq = new Float64Array(dim / 2);
  for (let j = 0; j < invFreq.length; j++) invFreq[j] = r(1 / r(r(cfg.ropeTheta) ** r((2 * j) / dim)));

  const s = cfg.ropeScaling;
  if (s?.ropeType === 'linear') {
    // Dividing the frequencies = dividing the positions by factor ("position interpolation").
    for (let j = 0; j < invFreq.length; j++) invFreq[j] = r(invFreq[j]! / s.factor);
  } else if (s?.ropeType === 'llama3') {
    const oldLen = s.originalMaxPositionEmbeddings;
    const lowFreqWavelen = oldLen / s.lowFreqFactor; // longer wavelengths than this: fully interpolated
    const highFreqWavelen = oldLen / s.highFreqFactor; // shorter than this: untouched
    for (let j = 0; j < invFreq.length; j++) {
      const f = invFreq[j]!;
      const wavelen = r((2 * Math.PI) / f);
      if (wavelen < highFreqWavelen) continue;
      if (wavelen > lowFreqWavelen) {
        invFreq[j] = r(f / s.factor);
      } else {
        const smooth = r((r(oldLen / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor));
        invFreq[j] = r(r(r((1 - smooth) * r(f / s.factor))) + r(smooth * f));
      }
    }
  } else if (s?.ropeType === 'yarn') {
    return yarnInvFreq(dim, cfg.ropeTheta, s, r);
  }
  return { invFreq, attentionScaling: 1 };
}

/** YaRN's frequencies and attention factor (transformers 5 `_compute_yarn_parameters`; `r` rounds where torch's float32 does). */
function yarnInvFreq(dim: number, theta: number, s: Extract<RopeScaling, { ropeType: 'yarn' }>, r: (x: number) => number): {
  invFreq: Float64Array; attentionScaling: number;
} {
  const mscaleOf = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  const attentionScaling = s.attentionFactor ?? (s.mscale && s.mscaleAllDim
    ? mscaleOf(s.factor, s.mscale) / mscaleOf(s.factor, s.mscaleAllDim)
    : mscaleOf(s.factor));
  // the dimension at which a frequency completes `rotations` turns over the original context (Python floats: float64)
  const correctionDim = (rotations: number) =>
    (dim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(s.betaFast), high = correctionDim(s.betaSlow);
  if (s.truncate) { low = Math.floor(low); high = Math.ceil(high); }
  low = Math.max(low, 0); high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  const invFreq = new Float64Array(dim / 2);
  const lo = r(low), span = r(high - low);
  for (let j = 0; j < invFreq.length; j++) {
    const posFreq = r(r(theta) ** r((2 * j) / dim));
    const extrapolation = r(1 / posFreq);
    const interpolation = r(1 / r(r(s.factor) * posFreq));
    const ramp = Math.min(1, Math.max(0, r(r(j - lo) / span)));
    const e = r(1 - ramp);
    invFreq[j] = r(r(interpolation * r(1 - e)) + r(extrapolation * e));
  }
  return { invFreq, attentionScaling };
}
