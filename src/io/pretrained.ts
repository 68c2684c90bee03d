// Hugging Face checkpoint directories: config.json + model.safetensors (or sharded, with
// model.safetensors.index.json). Node only (file system); the codecs it uses are browser-safe.

import { stat } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { InputError, getBackend } from '../core/index.js';
import { configFromHF, configToHF } from '../nn/config.js';
import { LlamaForCausalLM, type ModelOptions } from '../nn/llama.js';
import { checkModelMemory } from '../nn/memory.js';
import { readJsonFile, readSafetensorsFile, writeJsonFile } from './files.js';
import { writeSafetensorsShards, type SaveDType, type TensorPiece, type TensorSource } from './save.js';
import type { RawTensor, StoredTensor } from './safetensors.js';
import { asStoredEntries, storedHalfDtype } from './half-weights.js';
import { makeDirs } from './make-dirs.js';

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/**
 * All tensors of a checkpoint directory, single file or sharded (read one shard after the other, each tensor
 * straight into its own array: the memory used is the tensors returned). `keepHalf`: BF16/F16 tensors stay raw.
 */
export async function readCheckpointTensors(dir: string, opts?: { keepHalf?: false }): Promise<Map<string, RawTensor>>;
export async function readCheckpointTensors(dir: string, opts: { keepHalf?: boolean }): Promise<Map<string, StoredTensor>>;
export async function readCheckpointTensors(dir: string, opts: { keepHalf?: boolean } = {}): Promise<Map<string, StoredTensor>> {
  const read = { keepHalf: opts.keepHalf === true };
  const single = join(dir, 'model.safetensors');
  if (await exists(single)) return (await readSafetensorsFile(single, read)).tensors;
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!(await exists(indexPath))) {
    throw new InputError(`${dir}: no model.safetensors or model.safetensors.index.json found; ` +
      'expected a Hugging Face checkpoint directory (PyTorch .bin files are not supported: convert them to safetensors)', { source: dir });
  }
  const index = await readJsonFile(indexPath) as { weight_map?: unknown };
  const map = index && typeof index === 'object' ? index.weight_map : undefined;
  if (!map || typeof map !== 'object' || Array.isArray(map)) {
    throw new InputError(`${indexPath}: expected a "weight_map" object (tensor name → shard file); re-download the checkpoint`, { source: indexPath });
  }
  const files = new Set<string>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '' || isAbsolute(file) || normalize(file).split(/[\\/]/).includes('..')) {
      throw new InputError(`${indexPath}: weight_map["${name}"] must be a file name inside ${dir}, found ${JSON.stringify(file)}`, { source: indexPath });
    }
    files.add(file);
  }
  const out = new Map<string, StoredTensor>();
  const from = new Map<string, string>();
  for (const file of files) {
    for (const [n, t] of (await readSafetensorsFile(join(dir, file), read)).tensors) {
      if (out.has(n)) {
        throw new InputError(`${dir}: tensor "${n}" is in two shards, ${from.get(n)} and ${file}; each tensor must be stored once — re-download the checkpoint`, { source: dir });
      }
      out.set(n, t);
      from.set(n, file);
    }
  }
  return out;
}

/**
 * Throws an InputError naming the first tensor that holds NaN or ±Infinity (with how many and where): a model with
 * such weights produces garbage or a NaN loss, so it is refused at load instead.
 */
export function checkFiniteTensors(tensors: Map<string, StoredTensor>, source: string): void {
  for (const [name, t] of tensors) {
    if (t.dtype === 'int32') continue;
    const d = t.data;
    let nan = 0, inf = 0, first = -1;
    if (t.dtype === 'bfloat16' || t.dtype === 'float16') {
      // half bits kept as stored: an all-ones exponent is ±Infinity (mantissa 0) or NaN
      const [exp, mant] = t.dtype === 'bfloat16' ? [0x7f80, 0x007f] : [0x7c00, 0x03ff];
      for (let i = 0; i < d.length; i++) {
        const b = d[i]!;
        if ((b & exp) === exp) {
          if (first < 0) first = i;
          if (b & mant) nan++; else inf++;
        }
      }
    } else {
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v - v !== 0) { // NaN or ±Infinity
          if (first < 0) first = i;
          if (Number.isNaN(v)) nan++; else inf++;
        }
      }
    }
    if (first >= 0) {
      throw new InputError(`${source}: tensor "${name}" holds ${nan} NaN and ${inf} infinite value(s) of ${d.length} (first at element ${first}); ` +
        'a model with such weights computes NaN — the checkpoint is damaged or was saved after training diverged: use an earlier checkpoint', { source });
    }
  }
}

/**
 * Loads a Hugging Face LLaMA checkpoint directory. Everything is checked before the model is used: config.json
 * (fields, ranges, special-token ids), the model's size against memory (before any weight is read or allocated),
 * the safetensors files (see safetensors.ts), names, shapes and dtypes against the config, and the weights
 * themselves (NaN/Inf refused unless `allowNonFinite`). Errors are InputError / ModelTooLargeError naming the file.
 */
export async function loadPretrained(dir: string, opts: ModelOptions & {
  allowNonFinite?: boolean;
  /**
   * 'float32' (default): every weight becomes float32. 'as-stored': a BF16/F16 checkpoint keeps its weight matrices
   * (Linear, Embedding) in that 2-byte storage, frozen — for LoRA, evaluation and generation (half the memory);
   * float32 checkpoints load as with 'float32'.
   */
  weights?: 'float32' | 'as-stored';
} = {}): Promise<LlamaForCausalLM> {
  const cfgPath = join(dir, 'config.json');
  const config = configFromHF(await readJsonFile(cfgPath), cfgPath);
  // weights: 'as-stored' — the storage dtype comes from the headers, before the memory check and any allocation
  const frozenDtype = opts.weights === 'as-stored' ? (await storedHalfDtype(dir)) ?? undefined : opts.frozenDtype;
  checkModelMemory(config, { dtype: opts.dtype, backend: opts.backend ?? getBackend(), source: cfgPath, frozenDtype });
  // as stored: BF16/F16 tensors come raw (bit patterns), never decoded to float32 on the host
  const tensors: Map<string, StoredTensor> = frozenDtype ? await readCheckpointTensors(dir, { keepHalf: true }) : await readCheckpointTensors(dir);
  for (const [name, t] of tensors) {
    if (t.dtype === 'int32') {
      throw new InputError(`${dir}: tensor "${name}" is stored as integers; model weights must be floating point (F32, F16, BF16 or F64) — re-export the checkpoint`, { source: dir });
    }
  }
  if (!opts.allowNonFinite) checkFiniteTensors(tensors, dir);
  if (!config.tieWordEmbeddings && !tensors.has('lm_head.weight') && tensors.has('model.embed_tokens.weight')) {
    throw new InputError(`${dir}: config.json says tie_word_embeddings=false but the weights have no lm_head.weight; ` +
      'set tie_word_embeddings to true if the head shares the embedding matrix', { source: dir });
  }
  const model = new LlamaForCausalLM(config, { ...opts, frozenDtype });
  // A tied checkpoint may still carry lm_head.weight (a copy of the embeddings); HF ignores it too.
  // the half arrays just read become the weights' storage (adopt): the checkpoint is never held twice
  model.loadStateDict(frozenDtype ? asStoredEntries(tensors, frozenDtype) : tensors,
    { source: dir, ignorable: config.tieWordEmbeddings ? ['lm_head.weight'] : [], adopt: true });
  return model;
}

export interface SavePretrainedOptions {
  /** Storage type of the weights (default F32; the CLI passes the base checkpoint's). BF16/F16 round to nearest even. */
  dtype?: SaveDType;
  /**
   * Largest shard, in bytes or as a size string ("5GB", "500MiB"). Default 5GB (5·10⁹ bytes), transformers 4.x's
   * default: a larger model is written as model-0000i-of-0000N.safetensors + model.safetensors.index.json.
   */
  maxShardSize?: number | string;
  /**
   * Values to write instead of a parameter's own (float32, row-major), or null to keep them: asked once per tensor,
   * when the writer reaches it. The sft CLI writes merged LoRA weights this way (`peft.mergedWeight`).
   */
  values?: (name: string) => Promise<Float32Array | null>;
}

/**
 * Saves a model as a Hugging Face checkpoint directory (config.json + weights), as transformers' save_pretrained
 * does: one file or shards + index, streamed one tensor at a time, all weight files appearing only once complete
 * (src/io/save.ts). Stale weight files of an earlier save in `dir` are removed.
 */
export async function savePretrained(model: LlamaForCausalLM, dir: string, opts: SavePretrainedOptions = {}): Promise<void> {
  await makeDirs(dir, 'saving the model'); // level by level: a recursive mkdir spins forever under /proc
  const sources: TensorSource[] = [];
  for (const [name, p] of model.namedParameters()) {
    // float64 models are written in the requested storage type too (F32 by default, as transformers stores them);
    // a half weight (kept as stored) hands over its bit patterns; `opts.values` may replace a tensor's values
    // (merged LoRA weights), computed when the writer reaches it.
    const dtype = p.dtype as string;
    const half = dtype === 'bfloat16' || dtype === 'float16' ? dtype : undefined;
    const replaced = opts.values;
    sources.push({
      name, shape: [...p.shape], half,
      read: async function* () {
        const v = replaced ? await replaced(name) : null;
        if (v) { yield v; return; }
        yield (half && p.storage instanceof Uint16Array ? p.storage : await p.data()) as TensorPiece;
      },
    });
  }
  const dtype = opts.dtype ?? 'F32';
  await writeSafetensorsShards(dir, sources, { dtype, maxShardSize: opts.maxShardSize, metadata: { format: 'pt' } });
  const hf = configToHF(model.config);
  const torchDtype = dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32';
  hf.torch_dtype = torchDtype; // transformers 4 name
  hf.dtype = torchDtype; // transformers 5 name
  await writeJsonFile(join(dir, 'config.json'), hf);
}
