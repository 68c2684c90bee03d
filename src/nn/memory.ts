// Will a model fit? Checked from the config alone, before anything is allocated: a config.json with a million
// layers or a billion-token vocabulary must be refused at once with the numbers, not hang allocating until the
// machine runs out of memory or fail deep inside with "Invalid typed array length".
import { type Backend, type DType, type HalfDType, MAX_TENSOR_ELEMENTS, ModelTooLargeError, type Tensor, hostMemoryBytes } from '../core/index.js';
import { type LlamaConfig, modelSize } from './config.js';

const BYTES: Record<DType, number> = { float32: 4, float64: 8, int32: 4, bfloat16: 2, float16: 2 };

/** 1536 → "1.5 KiB", in binary units. */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}

const count = (n: number): string => (n < 1e6 ? String(n) : n.toExponential(2).replace('e+', 'e'));

export interface MemoryCheckOptions {
  dtype?: DType;
  backend: Backend;
  /** Names the config in messages (e.g. the config.json path). */
  source?: string;
  /**
   * Copies of the parameters that must fit (default 1: the weights). Training with Adam holds 4: weights,
   * gradients and the two moments.
   */
  copies?: number;
  /** What those copies are, for the message (default "the parameters"). */
  purpose?: string;
  /** The Linear and Embedding weights are kept in this 2-byte storage (frozen); norms and biases stay `dtype`. */
  frozenDtype?: HalfDType;
}

/**
 * Throws ModelTooLargeError when a model of `cfg` cannot be allocated: one of its tensors has more elements than a
 * typed array can hold, or its parameters (× `copies`) need more bytes than the backend (wasm: 4 GiB) or the
 * machine (Node: os.totalmem) has. The message gives the sizes, the limit, by how much it is exceeded and what to
 * change. Returns the bytes needed.
 */
export function checkModelMemory(cfg: LlamaConfig, opts: MemoryCheckOptions): number {
  const dtype = opts.dtype ?? 'float32';
  const src = opts.source ?? 'model config';
  const { parameters, largest } = modelSize(cfg);
  const shape = `vocab_size ${cfg.vocabSize}, hidden_size ${cfg.hiddenSize}, intermediate_size ${cfg.intermediateSize}, ` +
    `num_hidden_layers ${cfg.numHiddenLayers}, num_attention_heads ${cfg.numAttentionHeads}, head_dim ${cfg.headDim}`;
  const fix = 'lower the sizes in the config (or pick a smaller model)';
  if (largest.elements > MAX_TENSOR_ELEMENTS) {
    throw new ModelTooLargeError(
      `${src}: model too large: its tensor ${largest.name} would hold ${count(largest.elements)} elements, more than one tensor can ` +
        `(${MAX_TENSOR_ELEMENTS} = 2^32, the JS typed-array limit; ${(largest.elements / MAX_TENSOR_ELEMENTS).toFixed(1)}× too many) — ${shape}; ${fix}`,
      largest.elements * BYTES[dtype], MAX_TENSOR_ELEMENTS * BYTES[dtype],
    );
  }
  const copies = opts.copies ?? 1;
  // with half storage only the weight matrices (embeddings, projections, head) shrink; norms and biases stay `dtype`
  const C = cfg.hiddenSize, q = cfg.numAttentionHeads * cfg.headDim, kv = cfg.numKeyValueHeads * cfg.headDim;
  const matrices = cfg.vocabSize * C * (cfg.tieWordEmbeddings ? 1 : 2) +
    cfg.numHiddenLayers * (2 * C * q + 2 * C * kv + 3 * C * cfg.intermediateSize);
  const need = (opts.frozenDtype ? matrices * BYTES[opts.frozenDtype] + (parameters - matrices) * BYTES[dtype] : parameters * BYTES[dtype]) * copies;
  const limits: { bytes: number; what: string }[] = [];
  const backendLimit = opts.backend.memoryLimit?.(opts.frozenDtype ?? dtype);
  if (backendLimit) limits.push(backendLimit);
  const host = hostMemoryBytes();
  if (host !== undefined) limits.push({ bytes: host, what: "this machine's memory (os.totalmem)" });
  for (const lim of limits) {
    if (need > lim.bytes) {
      const what = copies === 1 ? 'its parameters' : `${opts.purpose ?? `${copies} copies of its parameters`}`;
      throw new ModelTooLargeError(
        `${src}: model too large: ${count(parameters)} parameters; ${what} need ${formatBytes(need)} of ${opts.frozenDtype ? `${opts.frozenDtype} (weight matrices) and ${dtype}` : dtype}, more than ` +
          `${lim.what}: ${formatBytes(lim.bytes)} (${(need / lim.bytes).toFixed(1)}× too much) — ${shape}; ${fix}` +
          (backendLimit && lim === backendLimit ? ' or use a backend without that limit' : ''),
        need, lim.bytes,
      );
    }
  }
  return need;
}

/**
 * Before training starts: the gradients and optimizer state of the trainable parameters (`stateCopies` per
 * parameter: 2 for Adam/AdamW's moments) must fit next to the weights already allocated. Throws
 * ModelTooLargeError with the numbers (a wasm run would otherwise stop minutes later when its 4 GiB run out).
 * Activations come on top and are not counted: this catches what can never fit, not every tight case.
 */
export function checkTrainingMemory(params: readonly Tensor[], backend: Backend, opts: { stateCopies?: number } = {}): void {
  if (params.length === 0) return;
  const dtype = params[0]!.dtype;
  const copies = 1 + (opts.stateCopies ?? 2);
  let trainable = 0;
  for (const p of params) trainable += p.size;
  const extra = trainable * BYTES[dtype] * copies;
  const what = `training needs ${formatBytes(extra)} more (gradients and optimizer state for ${count(trainable)} trainable parameters, ` +
    `${copies} × ${formatBytes(trainable * BYTES[dtype])})`;
  const fix = 'train a smaller model, or fine-tune with LoRA (fewer trainable parameters)';
  const lim = backend.memoryLimit?.(dtype);
  if (lim && extra > lim.bytes) {
    throw new ModelTooLargeError(`model too large to train: ${what}, more than ${lim.what}: ${formatBytes(lim.bytes)} ` +
      `(${(extra / lim.bytes).toFixed(1)}× too much); ${fix}`, extra, lim.bytes);
  }
  const host = hostMemoryBytes();
  const total = extra + trainable * BYTES[dtype];
  if (host !== undefined && total > host) {
    throw new ModelTooLargeError(`model too large to train: ${what} on top of the weights, more than this machine's memory (os.totalmem): ` +
      `${formatBytes(host)} (${(total / host).toFixed(1)}× too much); ${fix}`, total, host);
  }
}
