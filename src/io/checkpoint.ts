// Training checkpoints: a directory per save with model.safetensors + config.json (a Hugging Face checkpoint
// transformers can load), optimizer.safetensors (moment estimates), trainer_state.json (step, scheduler, data
// position, RNG, optimizer hyper-parameters). Written atomically: everything goes to a temporary directory which
// is renamed into place, then the `latest` pointer file is replaced atomically — a process killed mid-save
// leaves the previous checkpoint and pointer intact. Each checkpoint has a manifest.json with the size and SHA-256
// of every file; loading a run's checkpoints verifies it and falls back to the newest intact step (with a warning)
// when `latest` names a missing or damaged one. A failed save removes its temporary directory; leftovers of a
// killed save are removed by the next save. Node only.

import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { describeFsError } from '../data/node-fs-errors.js';
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
  try {
    await mkdir(root, { recursive: true });
  } catch (e) {
    throw describeFsError(root, e, 'creating the checkpoint directory');
  }
  await removeTemporaries(root); // what an earlier save that failed or was killed left behind
  const name = stepDir(state.step);
  const tmp = join(root, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
  try {
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
    await writeManifest(tmp);
    await opts.beforeCommit?.();
  } catch (e) {
    // a failed save (a full disk, a read-only directory) leaves nothing behind: the next save starts clean
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
  const final = join(root, name);
  const old = join(root, `.old-${name}-${randomBytes(4).toString('hex')}`);
  const hadOld = await exists(final);
  if (hadOld) await rename(final, old);
  await rename(tmp, final);
  await writeFileAtomic(join(root, 'latest'), `${name}\n`);
  if (hadOld) await rm(old, { recursive: true, force: true });
  await prune(root, name, opts.keep ?? 2);
  return final;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}

/** Removes `.tmp-*` / `.old-*` directories under `root`: leftovers of saves that failed or were killed. */
export async function removeTemporaries(root: string): Promise<string[]> {
  let names: string[];
  try { names = await readdir(root); } catch { return []; }
  const doomed = names.filter((n) => n.startsWith('.tmp-') || n.startsWith('.old-'));
  for (const n of doomed) await rm(join(root, n), { recursive: true, force: true });
  return doomed;
}

const stepOf = (name: string): number => Number(/^step-(\d+)$/.exec(name)?.[1] ?? NaN);

/**
 * Keeps the checkpoint just written (`current`, which `latest` names) and the `keep - 1` newest ones before it.
 * Step directories after `current` belong to an abandoned future (a resume from an earlier step) and go too, so
 * `latest` always names the newest step on disk and is never pruned.
 */
async function prune(root: string, current: string, keep: number): Promise<void> {
  const cur = stepOf(current);
  const entries = (await readdir(root)).filter((n) => /^step-\d+$/.test(n));
  const before = entries.filter((n) => stepOf(n) < cur).sort((a, b) => stepOf(b) - stepOf(a));
  const doomed = [...entries.filter((n) => stepOf(n) > cur), ...(keep > 0 ? before.slice(Math.max(0, keep - 1)) : [])];
  for (const n of doomed) await rm(join(root, n), { recursive: true, force: true });
}

// ---- checksums: manifest.json lists every file of a checkpoint with its size and SHA-256

const MANIFEST = 'manifest.json';

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

async function writeManifest(dir: string): Promise<void> {
  const files: Record<string, { bytes: number; sha256: string }> = {};
  for (const n of (await readdir(dir)).sort()) {
    const st = await stat(join(dir, n));
    if (st.isFile()) files[n] = { bytes: st.size, sha256: await sha256File(join(dir, n)) };
  }
  await writeJsonFile(join(dir, MANIFEST), { format: 'llamatrain-manifest-1', files });
}

/**
 * Checks a checkpoint directory against its manifest.json (every file present, with its size and SHA-256) and
 * that trainer_state.json parses. Throws an error naming the damaged file. A checkpoint written before manifests
 * existed (none there) is checked for its files only.
 */
export async function verifyCheckpoint(dir: string): Promise<void> {
  if (await exists(join(dir, MANIFEST))) {
    const m = await readJsonFile(join(dir, MANIFEST)) as { format?: string; files?: Record<string, { bytes: number; sha256: string }> };
    if (m?.format !== 'llamatrain-manifest-1' || typeof m.files !== 'object' || m.files === null) {
      throw new Error(`${join(dir, MANIFEST)}: not a llamatrain checkpoint manifest (damaged?)`);
    }
    for (const [n, f] of Object.entries(m.files)) {
      const p = join(dir, n);
      let size: number;
      try { size = (await stat(p)).size; } catch (e) { throw describeFsError(p, e, 'checking the checkpoint'); }
      if (size !== f.bytes) throw new Error(`${p}: ${size} bytes, the manifest says ${f.bytes} (the file is truncated or damaged)`);
      if (await sha256File(p) !== f.sha256) throw new Error(`${p}: SHA-256 checksum mismatch with ${MANIFEST} (the file is damaged)`);
    }
  } else {
    for (const n of ['trainer_state.json', 'config.json']) {
      if (!(await exists(join(dir, n))) && !(n === 'config.json' && await exists(join(dir, 'adapter_config.json')))) {
        throw new Error(`${join(dir, n)}: missing (the checkpoint is incomplete)`);
      }
    }
  }
  parseTrainerState(await readJsonFile(join(dir, 'trainer_state.json')), join(dir, 'trainer_state.json'));
}

export interface LoadCheckpointOptions {
  /** Called with a warning when `latest` names a missing or damaged checkpoint and an earlier one is used. */
  onWarning?: (message: string) => void;
}

/**
 * The checkpoint directory `path` designates: a step directory (trainer_state.json in it), or a run's checkpoints
 * directory, where it is the one `latest` names — or, when that one is missing or damaged (checksums, an
 * unreadable trainer_state.json), the newest intact step before it, with a warning.
 */
export async function resolveCheckpoint(path: string, opts: LoadCheckpointOptions = {}): Promise<string> {
  if (await exists(join(path, 'trainer_state.json'))) {
    await verifyCheckpoint(path);
    return path;
  }
  const pointer = join(path, 'latest');
  let names: string[];
  try { names = (await readdir(path)).filter((n) => /^step-\d+$/.test(n)).sort((a, b) => stepOf(b) - stepOf(a)); } catch (e) {
    throw new Error(`${path}: not a checkpoint (expected a 'latest' file or trainer_state.json); pass a run's checkpoints directory or one of its step-N directories`, { cause: e });
  }
  const hasPointer = await exists(pointer);
  if (!hasPointer && names.length === 0) {
    throw new Error(`${path}: not a checkpoint (expected a 'latest' file or trainer_state.json); pass a run's checkpoints directory or one of its step-N directories`);
  }
  const problems: string[] = [];
  let wanted: string | null = null;
  if (hasPointer) {
    const target = (await readFile(pointer, 'utf8')).trim();
    if (/^step-\d+$/.test(target)) wanted = target;
    else problems.push(`${pointer}: names ${JSON.stringify(target.slice(0, 40))}, not a step-N directory`);
  } else {
    problems.push(`${pointer}: missing`);
  }
  // the one `latest` names, then every earlier step, newest first
  const candidates = wanted ? [wanted, ...names.filter((n) => stepOf(n) < stepOf(wanted!))] : names;
  for (const n of candidates) {
    const dir = join(path, n);
    try {
      if (!(await exists(dir))) throw new Error(`${dir}: missing`);
      await verifyCheckpoint(dir);
    } catch (e) {
      problems.push((e as Error).message);
      continue;
    }
    if (problems.length > 0) {
      (opts.onWarning ?? ((m: string) => console.warn(m)))(`warning: ${problems.join('; ')} — using the previous intact checkpoint, ${dir}`);
    }
    return dir;
  }
  throw new Error(`${path}: no intact checkpoint (${problems.join('; ')})`);
}

export async function loadCheckpoint(path: string, modelOpts: ModelOptions = {}, opts: LoadCheckpointOptions = {}): Promise<{ dir: string; model: LlamaForCausalLM; state: TrainingState }> {
  const dir = await resolveCheckpoint(path, opts);
  return { dir, model: await loadPretrained(dir, modelOpts), state: await readTrainingState(dir) };
}

/** Resumes a LoRA run: the adapters of the checkpoint at `path` on `base` (frozen in place), and the training state. */
export async function loadAdapterCheckpoint(path: string, base: LlamaForCausalLM, opts: LoadCheckpointOptions = {}): Promise<{ dir: string; peft: PeftModel; state: TrainingState }> {
  const dir = await resolveCheckpoint(path, opts);
  return { dir, peft: await loadAdapter(base, dir, { isTrainable: true }), state: await readTrainingState(dir) };
}

interface TrainerStateJson {
  format?: string; step: number; optimizer: { paramGroups: Record<string, unknown>[]; scalars: Record<string, Record<string, number>> };
  scheduler: unknown; data: unknown; rng: number[]; extra: Record<string, unknown>;
}

/** trainer_state.json's content, checked field by field (errors name the file and the field). */
function parseTrainerState(js: unknown, file: string): TrainerStateJson {
  const bad = (what: string): never => { throw new Error(`${file}: ${what} (the file is damaged or not a llamatrain checkpoint)`); };
  if (typeof js !== 'object' || js === null || Array.isArray(js)) bad('expected a JSON object');
  const s = js as Partial<TrainerStateJson>;
  if (s.format !== 'llamatrain-checkpoint-1') throw new Error(`${file}: unknown format '${s.format}' (expected llamatrain-checkpoint-1)`);
  if (!Number.isInteger(s.step) || s.step! < 0) bad(`'step' must be an integer ≥ 0, got ${JSON.stringify(s.step)}`);
  const opt = s.optimizer;
  if (typeof opt !== 'object' || opt === null || !Array.isArray(opt.paramGroups) || typeof opt.scalars !== 'object' || opt.scalars === null) {
    bad("'optimizer' must hold 'paramGroups' (a list) and 'scalars' (an object)");
  }
  if (!Array.isArray(s.rng) || !s.rng.every((x) => typeof x === 'number')) bad("'rng' must be a list of numbers");
  if (s.extra !== undefined && (typeof s.extra !== 'object' || s.extra === null)) bad("'extra' must be an object");
  return s as TrainerStateJson;
}

/** trainer_state.json and optimizer.safetensors of a checkpoint directory. */
async function readTrainingState(dir: string): Promise<TrainingState> {
  const js = parseTrainerState(await readJsonFile(join(dir, 'trainer_state.json')), join(dir, 'trainer_state.json'));
  const tensors = (await readSafetensorsFile(join(dir, 'optimizer.safetensors'))).tensors;
  const state: OptimizerStateDict['state'] = {};
  for (const [i, sc] of Object.entries(js.optimizer.scalars)) state[Number(i)] = { ...sc };
  for (const [key, t] of tensors) {
    const m = /^state\.(\d+)\.(.+)$/.exec(key);
    if (!m || t.dtype === 'int32') throw new Error(`${dir}/optimizer.safetensors: unexpected entry '${key}'`);
    (state[Number(m[1])] ??= {})[m[2]!] = { shape: t.shape, data: t.data as Float32Array };
  }
  return { step: js.step, optimizer: { state, paramGroups: js.optimizer.paramGroups }, scheduler: js.scheduler, data: js.data, rng: js.rng, extra: js.extra ?? {} };
}
