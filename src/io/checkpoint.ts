// Training checkpoints: a directory per save with model.safetensors + config.json (a Hugging Face checkpoint
// transformers can load), optimizer.safetensors (moment estimates), trainer_state.json (step, scheduler, data
// position, RNG, optimizer hyper-parameters). Written atomically: everything goes to a temporary directory which
// is renamed into place, then the `latest` pointer file is replaced atomically — a process killed mid-save
// leaves the previous checkpoint and pointer intact. Node only.

import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { OptimizerStateDict } from '../optim/index.js';
import type { CheckpointWriter, SaveCheckpointOptions, TrainingState } from '../train/trainer.js';
import type { LlamaForCausalLM, ModelOptions } from '../nn/index.js';
import type { PeftModel } from '../peft/index.js';
import { loadAdapter, saveAdapter } from './adapters.js';
import { readJsonFile, readSafetensorsFile, writeFileAtomic, writeJsonFile, writeSafetensorsFile } from './files.js';
import { loadPretrained, savePretrained } from './pretrained.js';
import type { RawTensor } from './safetensors.js';

const stepDir = (step: number) => `step-${String(step).padStart(8, '0')}`;

/**
 * Writes `root/step-N` atomically and points `root/latest` at it. Returns the checkpoint directory. It is the
 * Trainer's checkpointWriter on Node: `new Trainer({ …, checkpointWriter: saveCheckpoint })`.
 */
export const saveCheckpoint: CheckpointWriter = (root, model, state, opts = {}) =>
  writeCheckpoint(root, (dir) => savePretrained(model, dir), state, opts);

/**
 * The checkpointWriter of a LoRA run: `root/step-N` holds the adapters (adapter_config.json +
 * adapter_model.safetensors, PEFT's format) instead of the base weights, plus the optimizer and trainer state.
 */
export const saveAdapterCheckpoint: CheckpointWriter<PeftModel> = (root, peft, state, opts = {}) =>
  writeCheckpoint(root, (dir) => saveAdapter(peft, dir), state, opts);

async function writeCheckpoint(root: string, writeModel: (dir: string) => Promise<void>, state: TrainingState,
                               opts: SaveCheckpointOptions): Promise<string> {
  await mkdir(root, { recursive: true });
  const name = stepDir(state.step);
  const tmp = join(root, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  await writeModel(tmp);
  // Optimizer tensors go to safetensors; scalars and hyper-parameters to JSON.
  const tensors: [string, RawTensor][] = [];
  const scalars: Record<string, Record<string, number>> = {};
  for (const [i, st] of Object.entries(state.optimizer.state)) {
    for (const [k, v] of Object.entries(st)) {
      if (typeof v === 'number') (scalars[i] ??= {})[k] = v;
      else tensors.push([`state.${i}.${k}`, { dtype: v.data instanceof Float64Array ? 'float64' : 'float32', shape: v.shape, data: v.data }]);
    }
  }
  await writeSafetensorsFile(join(tmp, 'optimizer.safetensors'), tensors);
  await writeJsonFile(join(tmp, 'trainer_state.json'), {
    format: 'llamatrain-checkpoint-1',
    step: state.step,
    optimizer: { paramGroups: state.optimizer.paramGroups, scalars },
    scheduler: state.scheduler,
    data: state.data,
    rng: state.rng,
    extra: state.extra ?? {},
  });
  await opts.beforeCommit?.();
  const final = join(root, name);
  const old = join(root, `.old-${name}-${randomBytes(4).toString('hex')}`);
  const hadOld = await exists(final);
  if (hadOld) await rename(final, old);
  await rename(tmp, final);
  await writeFileAtomic(join(root, 'latest'), `${name}\n`);
  if (hadOld) await rm(old, { recursive: true, force: true });
  await prune(root, opts.keep ?? 2);
  return final;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

async function prune(root: string, keep: number): Promise<void> {
  const entries = (await readdir(root)).filter((n) => /^step-\d+$/.test(n)).sort();
  const doomed = keep > 0 ? entries.slice(0, Math.max(0, entries.length - keep)) : [];
  for (const n of doomed) await rm(join(root, n), { recursive: true, force: true });
  // leftovers of interrupted saves
  for (const n of await readdir(root)) if (n.startsWith('.tmp-') || n.startsWith('.old-')) await rm(join(root, n), { recursive: true, force: true });
}

/** The checkpoint directory `path` designates: a run directory with a `latest` pointer, or a step directory. */
export async function resolveCheckpoint(path: string): Promise<string> {
  const pointer = join(path, 'latest');
  if (await exists(pointer)) return join(path, (await readFile(pointer, 'utf8')).trim());
  if (await exists(join(path, 'trainer_state.json'))) return path;
  throw new Error(`${path}: not a checkpoint (expected a 'latest' file or trainer_state.json); pass a run directory or one of its step-N directories`);
}

export async function loadCheckpoint(path: string, modelOpts: ModelOptions = {}): Promise<{ dir: string; model: LlamaForCausalLM; state: TrainingState }> {
  const dir = await resolveCheckpoint(path);
  return { dir, model: await loadPretrained(dir, modelOpts), state: await readTrainingState(dir) };
}

/** Resumes a LoRA run: the adapters of the checkpoint at `path` on `base` (frozen in place), and the training state. */
export async function loadAdapterCheckpoint(path: string, base: LlamaForCausalLM): Promise<{ dir: string; peft: PeftModel; state: TrainingState }> {
  const dir = await resolveCheckpoint(path);
  return { dir, peft: await loadAdapter(base, dir), state: await readTrainingState(dir) };
}

/** trainer_state.json and optimizer.safetensors of a checkpoint directory. */
async function readTrainingState(dir: string): Promise<TrainingState> {
  const js = await readJsonFile(join(dir, 'trainer_state.json')) as {
    format?: string; step: number; optimizer: { paramGroups: Record<string, unknown>[]; scalars: Record<string, Record<string, number>> };
    scheduler: unknown; data: unknown; rng: number[]; extra: Record<string, unknown>;
  };
  if (js.format !== 'llamatrain-checkpoint-1') throw new Error(`${dir}/trainer_state.json: unknown format '${js.format}' (expected llamatrain-checkpoint-1)`);
  const tensors = (await readSafetensorsFile(join(dir, 'optimizer.safetensors'))).tensors;
  const state: OptimizerStateDict['state'] = {};
  for (const [i, sc] of Object.entries(js.optimizer.scalars)) state[Number(i)] = { ...sc };
  for (const [key, t] of tensors) {
    const m = /^state\.(\d+)\.(.+)$/.exec(key);
    if (!m || t.dtype === 'int32') throw new Error(`${dir}/optimizer.safetensors: unexpected entry '${key}'`);
    (state[Number(m[1])] ??= {})[m[2]!] = { shape: t.shape, data: t.data as Float32Array };
  }
  return { step: js.step, optimizer: { state, paramGroups: js.optimizer.paramGroups }, scheduler: js.scheduler, data: js.data, rng: js.rng, extra: js.extra };
}
