// The LLaMA-architecture model families behind one decoder: what a config.json `model_type` changes. Each row says
// what transformers' modeling_<family>.py hard-codes or reads from its config class, so that one decoder
// (src/nn/llama.ts) and one loader (`loadPretrained`) serve them all. No tensor code: config.ts and the model read it.

/** The `model_type` values of config.json that llamatrain loads, trains and writes. */
export type ModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface ModelFamily {
  readonly modelType: ModelType;
  /** `architectures[0]` of a config.json that transformers loads as this family's causal LM. */
  readonly architecture: string;
  /**
   * Which projections carry a bias, from the config's `attention_bias` (our `attentionBias`):
   * 'config' — q/k/v/o all follow it (LLaMA, Qwen3); 'qkv' — q/k/v always, o never (Qwen2, whatever the config
   * says); 'none' — never (Mistral).
   */
  readonly attentionBias: 'config' | 'qkv' | 'none';
  /** `mlp_bias` is read (LLaMA); elsewhere the MLP has no biases. */
  readonly mlpBias: boolean;
  /** Per-head RMSNorm `q_norm` / `k_norm` (weight [head_dim]) on q and k after the projection, before RoPE (Qwen3). */
  readonly qkNorm: boolean;
  /**
   * Sliding-window attention: 'config' — `sliding_window` applies to every layer when set (Mistral; HF's default
   * 4096 when the key is absent); 'opt-in' — only with `use_sliding_window: true` (Qwen2/Qwen3, and then only on
   * layers ≥ max_window_layers: not supported, refused); 'none'.
   */
  readonly slidingWindow: 'config' | 'opt-in' | 'none';
  /** The config class's defaults where they differ from LLaMA's (used when config.json leaves the key out). */
  readonly defaults: {
    headDim?: number;
    maxPositionEmbeddings: number;
    slidingWindow?: number;
    bosTokenId: number | null;
    eosTokenId: number | null;
  };
}

export const MODEL_FAMILIES: Readonly<Record<ModelType, ModelFamily>> = {
  llama: {
    modelType: 'llama', architecture: 'LlamaForCausalLM', attentionBias: 'config', mlpBias: true, qkNorm: false,
    slidingWindow: 'none', defaults: { maxPositionEmbeddings: 2048, bosTokenId: 1, eosTokenId: 2 },
  },
  mistral: {
    modelType: 'mistral', architecture: 'MistralForCausalLM', attentionBias: 'none', mlpBias: false, qkNorm: false,
    slidingWindow: 'config', defaults: { maxPositionEmbeddings: 4096 * 32, slidingWindow: 4096, bosTokenId: 1, eosTokenId: 2 },
  },
  qwen2: {
    modelType: 'qwen2', architecture: 'Qwen2ForCausalLM', attentionBias: 'qkv', mlpBias: false, qkNorm: false,
    slidingWindow: 'opt-in', defaults: { maxPositionEmbeddings: 32768, bosTokenId: null, eosTokenId: null },
  },
  qwen3: {
    modelType: 'qwen3', architecture: 'Qwen3ForCausalLM', attentionBias: 'config', mlpBias: false, qkNorm: true,
    slidingWindow: 'opt-in', defaults: { headDim: 128, maxPositionEmbeddings: 32768, bosTokenId: null, eosTokenId: null },
  },
};

export const SUPPORTED_MODEL_TYPES = Object.keys(MODEL_FAMILIES) as ModelType[];

export function isModelType(v: unknown): v is ModelType {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(MODEL_FAMILIES, v);
}

/** Where a model of this family and config has attention biases. */
export function attentionBiases(family: ModelFamily, attentionBias: boolean): { qkv: boolean; o: boolean } {
  switch (family.attentionBias) {
    case 'config': return { qkv: attentionBias, o: attentionBias };
    case 'qkv': return { qkv: true, o: false };
    case 'none': return { qkv: false, o: false };
  }
}
