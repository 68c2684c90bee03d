// LlamaConfig: the model hyper-parameters, with Hugging Face's defaults, plus conversion from/to HF config.json
// (transformers 4 and 5 layouts) and the RoPE inverse frequencies derived from it.
// No Node imports and no tensor code: this runs anywhere, including Web Workers.
import { InputError } from '../core/errors.js';

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
    };

export interface LlamaConfig {
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
  /** Biases on q/k/v/o projections. Default false (LLaMA has none). */
  attentionBias: boolean;
  /** Biases on gate/up/down projections. Default false. */
  mlpBias: boolean;
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
  initializerRange: 'initializer_range',
  bosTokenId: 'bos_token_id',
  eosTokenId: 'eos_token_id',
  padTokenId: 'pad_token_id',
  hiddenAct: 'hidden_act',
};
const REQUIRED = ['vocabSize', 'hiddenSize', 'intermediateSize', 'numHiddenLayers', 'numAttentionHeads'] as const;
const SUPPORTED_ROPE = "'default', 'linear', 'llama3'";

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
  // Sizes first: the defaults below are computed from them.
  for (const key of REQUIRED) positiveInt(source, HF_KEY[key], partial[key]);
  const { hiddenSize, numAttentionHeads } = partial;
  if (partial.headDim === undefined && hiddenSize % numAttentionHeads !== 0) {
    fail(
      source,
      `hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numAttentionHeads}), so head_dim has no default; ` +
        `set head_dim explicitly or pick a head count that divides hidden_size`,
    );
  }
  const eos = partial.eosTokenId;
  const scaling = partial.ropeScaling;
  const cfg: LlamaConfig = {
    vocabSize: partial.vocabSize,
    hiddenSize,
    intermediateSize: partial.intermediateSize,
    numHiddenLayers: partial.numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads: partial.numKeyValueHeads ?? numAttentionHeads,
    headDim: partial.headDim ?? hiddenSize / numAttentionHeads,
    rmsNormEps: partial.rmsNormEps ?? 1e-6,
    ropeTheta: partial.ropeTheta ?? 10000,
    ropeScaling: scaling == null ? null : { ...scaling }, // copies: the config never aliases caller objects
    maxPositionEmbeddings: partial.maxPositionEmbeddings ?? 2048,
    tieWordEmbeddings: partial.tieWordEmbeddings ?? false,
    attentionBias: partial.attentionBias ?? false,
    mlpBias: partial.mlpBias ?? false,
    initializerRange: partial.initializerRange ?? 0.02,
    // HF's defaults 1 and 2, where the vocabulary has them (a 2-token vocabulary has no id 2)
    bosTokenId: partial.bosTokenId === undefined ? (partial.vocabSize > 1 ? 1 : null) : partial.bosTokenId,
    eosTokenId: eos === undefined ? (partial.vocabSize > 2 ? 2 : null) : Array.isArray(eos) ? eos.slice() : eos,
    padTokenId: partial.padTokenId === undefined ? null : partial.padTokenId,
    hiddenAct: partial.hiddenAct ?? 'silu',
  };
  validate(cfg, source);
  return cfg;
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
  if (s.ropeType !== 'linear' && s.ropeType !== 'llama3') {
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
  const attn = C * q + 2 * C * kv + q * C + (c.attentionBias ? q + 2 * kv + C : 0);
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
function ropeScalingFromHF(d: Record<string, unknown>, where: string, source: string): RopeScaling | null {
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
  if (json.model_type !== undefined && json.model_type !== 'llama') {
    fail(source, `model_type is ${show(json.model_type)}, expected "llama"; only LLaMA-architecture checkpoints are supported`);
  }
  const partial: Record<string, unknown> = {};
  for (const key of REQUIRED) {
    const v = json[HF_KEY[key]];
    if (v === undefined || v === null) fail(source, `missing required key "${HF_KEY[key]}"; is this a LLaMA config.json?`);
    partial[key] = v;
  }
  // Keys where null means "not set" (HF fills a derived default).
  for (const key of ['numKeyValueHeads', 'headDim', 'rmsNormEps', 'maxPositionEmbeddings', 'initializerRange',
    'tieWordEmbeddings', 'attentionBias', 'mlpBias'] as const) {
    const v = json[HF_KEY[key]];
    if (v !== undefined && v !== null) partial[key] = v;
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
  const scaling5 = isObject(v5) ? ropeScalingFromHF(v5, 'rope_parameters', source) : undefined;
  const scaling4 = isObject(v4) ? ropeScalingFromHF(v4, 'rope_scaling', source) : undefined;
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
  const scaling: Record<string, unknown> | null =
    s === null
      ? null
      : s.ropeType === 'linear'
        ? { rope_type: 'linear', factor: s.factor }
        : {
            rope_type: 'llama3',
            factor: s.factor,
            low_freq_factor: s.lowFreqFactor,
            high_freq_factor: s.highFreqFactor,
            original_max_position_embeddings: s.originalMaxPositionEmbeddings,
          };
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
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
    attention_bias: cfg.attentionBias,
    attention_dropout: 0.0,
    mlp_bias: cfg.mlpBias,
    pretraining_tp: 1,
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
 * Computed in float64 by default; { float32: true } rounds through float32 where HF does (the model uses that).
 * attentionScaling multiplies cos and sin; it is 1 for every supported type.
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
  }
  return { invFreq, attentionScaling: 1 };
}
