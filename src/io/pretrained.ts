// Hugging Face checkpoint directories: config.json + model.safetensors (or sharded, with
// model.safetensors.index.json). Node only (file system); the codecs it uses are browser-safe.

import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { configFromHF, configToHF } from '../nn/config.js';
import { LlamaForCausalLM, type ModelOptions } from '../nn/llama.js';
import { readJsonFile, readSafetensorsFile, writeJsonFile, writeSafetensorsFile } from './files.js';
import type { RawTensor } from './safetensors.js';

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/** All tensors of a checkpoint directory, single file or sharded. */
export async function readCheckpointTensors(dir: string): Promise<Map<string, RawTensor>> {
  const single = join(dir, 'model.safetensors');
  if (await exists(single)) return (await readSafetensorsFile(single)).tensors;
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!(await exists(indexPath))) {
    throw new Error(`${dir}: no model.safetensors or model.safetensors.index.json found; ` +
      'expected a Hugging Face checkpoint directory (PyTorch .bin files are not supported: convert them to safetensors)');
  }
  const index = await readJsonFile(indexPath) as { weight_map?: Record<string, string> };
  if (!index || typeof index.weight_map !== 'object') throw new Error(`${indexPath}: expected a "weight_map" object`);
  const out = new Map<string, RawTensor>();
  for (const file of new Set(Object.values(index.weight_map))) {
    for (const [n, t] of (await readSafetensorsFile(join(dir, file))).tensors) out.set(n, t);
  }
  return out;
}

export async function loadPretrained(dir: string, opts: ModelOptions = {}): Promise<LlamaForCausalLM> {
  const cfgPath = join(dir, 'config.json');
  const config = configFromHF(await readJsonFile(cfgPath), cfgPath);
  const tensors = await readCheckpointTensors(dir);
  const model = new LlamaForCausalLM(config, opts);
  if (!config.tieWordEmbeddings && !tensors.has('lm_head.weight') && tensors.has('model.embed_tokens.weight')) {
    throw new Error(`${dir}: config.json says tie_word_embeddings=false but the weights have no lm_head.weight; ` +
      'set tie_word_embeddings to true if the head shares the embedding matrix');
  }
  // A tied checkpoint may still carry lm_head.weight (a copy of the embeddings); HF ignores it too.
  model.loadStateDict(tensors, { source: dir, ignorable: config.tieWordEmbeddings ? ['lm_head.weight'] : [] });
  return model;
}

export async function savePretrained(model: LlamaForCausalLM, dir: string, opts: { dtype?: 'F32' | 'BF16' } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const entries: [string, RawTensor][] = [];
  for (const [name, p] of model.namedParameters()) {
    const data = await p.data();
    // transformers stores float32 checkpoints; float64 models are written as F32 too.
    entries.push([name, { dtype: 'float32', shape: [...p.shape], data: Float32Array.from(data as ArrayLike<number>) }]);
  }
  await writeSafetensorsFile(join(dir, 'model.safetensors'), entries, { dtype: opts.dtype ?? 'F32', metadata: { format: 'pt' } });
  const hf = configToHF(model.config);
  if (opts.dtype === 'BF16') { hf.torch_dtype = 'bfloat16'; hf.dtype = 'bfloat16'; }
  await writeJsonFile(join(dir, 'config.json'), hf);
}
