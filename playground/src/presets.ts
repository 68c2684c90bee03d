// Model and training presets of the playground, and the parameter count shown live while the dims are edited.
// Pure (no DOM, no library import): the page, the worker and the Node tests use it.

/** What the page lets a user set for a new model and its training run. */
export interface Settings {
  /** BPE vocabulary size (the model's V when the tokenizer is trained here). */
  vocabSize: number;
  /** Hidden size C. */
  dim: number;
  /** Decoder layers L. */
  layers: number;
  /** Attention heads NH. */
  heads: number;
  /** Key/value heads NKV (GQA); must divide heads. */
  kvHeads: number;
  /** SwiGLU width; 0 = the LLaMA rule (8/3·dim rounded up to a multiple of 32), as the CLI. */
  ffn: number;
  /** Tie the LM head to the embeddings. */
  tie: boolean;
  /** Tokens per row T. */
  seqLen: number;
  /** Rows per batch B. */
  batchSize: number;
  /** Optimizer steps. */
  steps: number;
  /** Peak learning rate (warmup, then cosine decay to 10%). */
  lr: number;
  /** Linear warmup steps. */
  warmup: number;
  /** Evaluate (and sample) every N steps; also once before the first step. */
  evalEvery: number;
  /** Validation batches per evaluation. */
  evalBatches: number;
}

export type PresetName = 'tiny' | 'small' | 'cli';

/**
 * tiny: the benchmark config `tiny` (bench/train.ts) — trains at thousands of tokens/s in a tab.
 * small: the benchmark config `cli` (the CLI's earlier default model).
 * cli: `llamatrain train`'s defaults (src/cli/train.ts).
 */
export const PRESETS: Record<PresetName, { label: string; settings: Settings }> = {
  tiny: {
    label: 'tiny',
    settings: { vocabSize: 512, dim: 64, layers: 2, heads: 4, kvHeads: 4, ffn: 192, tie: true, seqLen: 128, batchSize: 8, steps: 600, lr: 3e-3, warmup: 20, evalEvery: 10, evalBatches: 4 },
  },
  small: {
    label: 'small',
    settings: { vocabSize: 1024, dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 352, tie: true, seqLen: 128, batchSize: 8, steps: 600, lr: 3e-3, warmup: 30, evalEvery: 25, evalBatches: 4 },
  },
  cli: {
    label: 'CLI default',
    settings: { vocabSize: 2048, dim: 192, layers: 4, heads: 6, kvHeads: 2, ffn: 0, tie: true, seqLen: 128, batchSize: 16, steps: 560, lr: 3e-3, warmup: 40, evalEvery: 70, evalBatches: 4 },
  },
};

/** The SwiGLU width a setting stands for (0 = the LLaMA rule, as `llamatrain train`). */
export function ffnWidth(s: Pick<Settings, 'dim' | 'ffn'>): number {
  return s.ffn > 0 ? s.ffn : 32 * Math.ceil((8 * s.dim) / 3 / 32);
}

/** Model dims as a LlamaForCausalLM counts them. */
export interface ModelDims {
  vocabSize: number; hiddenSize: number; intermediateSize: number; numHiddenLayers: number;
  numAttentionHeads: number; numKeyValueHeads: number; headDim?: number; tieWordEmbeddings: boolean;
  attentionBias?: boolean; mlpBias?: boolean;
}

export function dimsOf(s: Settings, vocabSize = s.vocabSize): ModelDims {
  return { vocabSize, hiddenSize: s.dim, intermediateSize: ffnWidth(s), numHiddenLayers: s.layers, numAttentionHeads: s.heads,
    numKeyValueHeads: s.kvHeads, tieWordEmbeddings: s.tie };
}

/** Trainable parameters of a LLaMA with these dims (embeddings, L decoder layers, final norm, untied head). */
export function parameterCount(d: ModelDims): number {
  const C = d.hiddenSize, V = d.vocabSize, F = d.intermediateSize;
  const HD = d.headDim ?? C / d.numAttentionHeads;
  const q = d.numAttentionHeads * HD, kv = d.numKeyValueHeads * HD;
  const attn = C * q + 2 * C * kv + q * C + (d.attentionBias ? q + 2 * kv + C : 0);
  const mlp = 3 * C * F + (d.mlpBias ? 2 * F + C : 0);
  const layer = attn + mlp + 2 * C; // + input and post-attention RMSNorm weights
  return V * C + d.numHiddenLayers * layer + C + (d.tieWordEmbeddings ? 0 : V * C);
}

/** Problems with the settings, as messages a user can act on (empty when they are fine). */
export function checkSettings(s: Settings): string[] {
  const out: string[] = [];
  const positive: [keyof Settings, string][] = [['vocabSize', 'vocabulary'], ['dim', 'hidden size'], ['layers', 'layers'], ['heads', 'heads'],
    ['kvHeads', 'KV heads'], ['seqLen', 'sequence length'], ['batchSize', 'batch size'], ['steps', 'steps'], ['evalEvery', 'evaluate every'],
    ['evalBatches', 'evaluation batches']];
  for (const [k, name] of positive) {
    const v = s[k] as number;
    if (!Number.isInteger(v) || v <= 0) out.push(`${name} must be a whole number > 0 (got ${Number.isNaN(v) ? 'nothing' : v})`);
  }
  if (!(Number.isInteger(s.ffn) && s.ffn >= 0)) out.push(`SwiGLU width must be a whole number ≥ 0 (0 = 8/3 · hidden size), got ${s.ffn}`);
  if (!(s.lr > 0 && s.lr < 1)) out.push(`learning rate must be in (0, 1), got ${s.lr}`);
  if (!(Number.isInteger(s.warmup) && s.warmup >= 0)) out.push(`warmup must be a whole number ≥ 0, got ${s.warmup}`);
  if (out.length) return out;
  if (s.vocabSize < 260) out.push(`vocabulary must be at least 260 (256 bytes + merges + the end-of-text token), got ${s.vocabSize}`);
  if (s.vocabSize > 65536) out.push(`vocabulary of at most 65,536 here (training a larger BPE in a tab takes long), got ${s.vocabSize}`);
  if (s.heads % s.kvHeads !== 0) out.push(`KV heads (${s.kvHeads}) must divide heads (${s.heads})`);
  if (s.dim % s.heads !== 0) out.push(`hidden size (${s.dim}) must be a multiple of heads (${s.heads})`);
  else if ((s.dim / s.heads) % 2 !== 0) out.push(`hidden size / heads (${s.dim / s.heads}) must be even (RoPE rotates pairs)`);
  if (s.warmup >= s.steps && s.steps > 1) out.push(`warmup (${s.warmup}) must be smaller than steps (${s.steps})`);
  if (s.seqLen > 4096) out.push(`sequence length of at most 4,096 here, got ${s.seqLen}`);
  return out;
}

/** 1234567 → "1.23M", 12345 → "12.3k". */
export function compactCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}
