// Hugging Face checkpoint directories: config.json + model.safetensors (or sharded, with
// model.safetensors.index.json). Node only (file system); the codecs it uses are browser-safe.

import { mkdir, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { InputError, getBackend } from '../core/index.js';
import { configFromHF, configToHF } from '../nn/config.js';
import { LlamaForCausalLM, type ModelOptions } from '../nn/llama.js';
import { checkModelMemory } from '../nn/memory.js';
import { readJsonFile, readSafetensorsFile, writeJsonFile } from './files.js';
import { writeSafetensorsShards, type SaveDType, type TensorPiece, type TensorSource } from './save.js';
import type { RawTensor, StoredTensor } from './safetensors.js';

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
export function checkFiniteTensors(tensors: Map<string, RawTensor>, source: string): void {
  for (const [name, t] of tensors) {
    if (t.dtype === 'int32') continue;
    const d = t.data;
    let nan = 0, inf = 0, first = -1;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v - v !== 0) { // NaN or ±Infinity
        if (first < 0) first = i;
        if (Number.isNaN(v)) nan++; else inf++;
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
export async function loadPretrained(dir: string, opts: ModelOptions & { allowNonFinite?: boolean } = {}): Promise<LlamaForCausalLM> {
  const cfgPath = join(dir, 'config.json');
  const config = configFromHF(await readJsonFile(cfgPath), cfgPath);
  checkModelMemory(config, { dtype: opts.dtype, backend: opts.backend ?? getBackend(), source: cfgPath });
  const tensors = await readCheckpointTensors(dir);
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
  const model = new LlamaForCausalLM(config, opts);
  // A tied checkpoint may still carry lm_head.weight (a copy of the embeddings); HF ignores it too.
  model.loadStateDict(tensors, { source: dir, ignorable: config.tieWordEmbeddings ? ['lm_head.weight'] : [] });
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
}

/**
 * Saves a model as a Hugging Face checkpoint directory (config.json + weights), as transformers' save_pretrained
 * does: one file or shards + index, streamed one tensor at a time, all weight files appearing only once complete
 * (src/io/save.ts). Stale weight files of an earlier save in `dir` are removed.
 */
export async function savePretrained(model: LlamaForCausalLM, dir: string, opts: SavePretrainedOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const sources: TensorSource[] = [];
  for (const [name, p] of model.namedParameters()) {
    // float64 models are written in the requested storage type too (F32 by default, as transformers stores them);
    // a half weight (kept as stored) hands over its bit patterns.
    const dtype = p.dtype as string;
    const half = dtype === 'bfloat16' || dtype === 'float16' ? dtype : undefined;
    sources.push({ name, shape: [...p.shape], half, read: async function* () { yield (await p.data()) as TensorPiece; } });
  }
  const dtype = opts.dtype ?? 'F32';
  await writeSafetensorsShards(dir, sources, { dtype, maxShardSize: opts.maxShardSize, metadata: { format: 'pt' } });
  const hf = configToHF(model.config);
  const torchDtype = dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32';
  hf.torch_dtype = torchDtype; // transformers 4 name
  hf.dtype = torchDtype; // transformers 5 name
  await writeJsonFile(join(dir, 'config.json'), hf);
}
