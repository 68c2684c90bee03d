// LoRA adapters in PEFT's format (https://github.com/huggingface/peft): a frozen base model plus, on each targeted
// Linear, y = x Wᵀ + scaling · dropout(x) Aᵀ Bᵀ with A [r, in] (Kaiming-uniform init, as PEFT), B [out, r] (zeros),
// scaling = α / r (rsLoRA: α / √r). Only A and B train; the base weights get no gradient and no optimizer state.
// Saved as adapter_config.json + adapter_model.safetensors with PEFT's keys
// (`base_model.model.<module path>.lora_A.weight`), loadable by PEFT's PeftModel.from_pretrained.

import {
  RNG, type Tensor, arrayFor, computeDtype, isHalf, keep, kernel, matmul, mul, noGrad, recordRandomState, replaceStorage, shapeStr, tensor,
  widenHalf,
} from '../core/index.js';
import { Linear, type LlamaForCausalLM, type CausalLMOutput, type ForwardOptions, type GenerateOptions } from '../nn/index.js';
import { parseSafetensors, serializeSafetensors, type TensorLike } from '../io/safetensors.js';
import { InputError } from '../core/errors.js';

export interface LoraOptions {
  /** Rank r of A [r, in] and B [out, r]. Default 8 (PEFT's). */
  r?: number;
  /** α: scaling = α / r (or α / √r with useRslora). Default 8. */
  loraAlpha?: number;
  /**
   * Module names to adapt, matched against the last component of each Linear's path (PEFT's list form), e.g.
   * ['q_proj', 'v_proj'] (the default), or 'all-linear' (every Linear but the LM head).
   */
  targetModules?: readonly string[] | 'all-linear';
  /** Dropout rate on the adapter's input while training. Default 0. */
  loraDropout?: number;
  /** rsLoRA: scaling = α / √r. Default false. */
  useRslora?: boolean;
  /** Seed of A's init and of the dropout masks. Default 0. */
  seed?: number;
}

/** adapter_config.json as PEFT writes it (the fields we read and write). */
export interface PeftAdapterConfig {
  peft_type: 'LORA';
  task_type: 'CAUSAL_LM';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[];
  use_rslora: boolean;
  bias: 'none';
  fan_in_fan_out: false;
  base_model_name_or_path?: string | null;
  [key: string]: unknown;
}

/** Where savePretrained / fromPretrained read and write files (set by 'llamatrain/node'; browsers have none). */
export interface AdapterFiles {
  writeFile(path: string, data: Uint8Array | string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
  mkdir(path: string): Promise<void>;
}
let files: AdapterFiles | null = null;

/** Installs the file system PeftModel uses ('llamatrain/node' does this on import). */
export function useAdapterFiles(f: AdapterFiles): void {
  files = f;
}

function needFiles(what: string): AdapterFiles {
  if (!files) {
    throw new InputError(`PeftModel.${what}: no file system: import 'llamatrain/node' (Node) first, or use ` +
      'peft.adapterFiles() / PeftModel.fromAdapterFiles() to move the bytes yourself (browsers)');
  }
  return files;
}

const join = (dir: string, name: string) => (dir.endsWith('/') ? dir + name : `${dir}/${name}`);
const PREFIX = 'base_model.model.';
type LinearAdapterLike = NonNullable<Linear['adapter']>;

class Adapter implements LinearAdapterLike {
  constructor(readonly a: Tensor, readonly b: Tensor, readonly scaling: number, private readonly rate: number,
              private readonly rng: RNG, private readonly isTraining: () => boolean) {}

  dropout(x: Tensor): Tensor {
    if (this.rate === 0 || !this.isTraining()) return x;
    // inverted dropout with a host-drawn mask (seeded: a run is reproducible); uploading it is no device read
    const keepScale = 1 / (1 - this.rate);
    recordRandomState(this.rng); // a checkpointed layer's recomputation draws the same mask
    const mask = arrayFor(x.dtype, x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = this.rng.uniform() < this.rate ? 0 : keepScale;
    return mul(x, tensor(mask, [...x.shape], x.dtype, x.backend));
  }
}

/** The Linear modules of `model` by path (e.g. 'model.layers.0.self_attn.q_proj'), without the LM head. */
function linearsOf(model: LlamaForCausalLM): Map<string, Linear> {
  const out = new Map<string, Linear>();
  for (const [path, m] of model.namedModules()) if (m instanceof Linear && path !== 'lm_head') out.set(path, m);
  return out;
}

function checkOptions(o: LoraOptions): Required<Omit<LoraOptions, 'targetModules'>> & { targetModules: readonly string[] | 'all-linear' } {
  const r = o.r ?? 8, loraAlpha = o.loraAlpha ?? 8, loraDropout = o.loraDropout ?? 0;
  const shown = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  if (!Number.isInteger(r) || r < 1) throw new InputError(`getPeftModel: r must be an integer ≥ 1, got ${shown(r)}`);
  if (typeof loraAlpha !== 'number' || !(loraAlpha > 0) || !Number.isFinite(loraAlpha)) throw new InputError(`getPeftModel: loraAlpha must be a number > 0, got ${shown(loraAlpha)}`);
  if (typeof loraDropout !== 'number' || !(loraDropout >= 0 && loraDropout < 1)) throw new InputError(`getPeftModel: loraDropout must be a number in [0, 1), got ${shown(loraDropout)}`);
  const t = o.targetModules;
  if (t !== undefined && t !== 'all-linear' && (!Array.isArray(t) || t.length === 0 || t.some((x) => typeof x !== 'string'))) {
    throw new InputError(`getPeftModel: targetModules must be a non-empty list of module names (e.g. ['q_proj', 'v_proj']) or 'all-linear', got ${JSON.stringify(t)}`);
  }
  return { r, loraAlpha, loraDropout, useRslora: o.useRslora ?? false, seed: o.seed ?? 0, targetModules: o.targetModules ?? ['q_proj', 'v_proj'] };
}

/**
 * A LLaMA with LoRA adapters. `forward`, `generate`, `train()`/`eval()` are the model's; `parameters()` are only the
 * adapters (A and B of every adapted Linear), so an optimizer over them never touches the frozen base.
 */
export class PeftModel {
  private readonly adapters = new Map<string, Adapter>(); // by module path
  private readonly rng: RNG;
  private merged = false;

  private constructor(readonly model: LlamaForCausalLM, readonly config: PeftAdapterConfig, seed: number) {
    this.rng = new RNG(seed);
  }

  /** Wraps `model` (its weights are frozen in place) with fresh adapters: A Kaiming-uniform, B zero (PEFT's init). */
  static create(model: LlamaForCausalLM, opts: LoraOptions = {}): PeftModel {
    if ((model as unknown) instanceof PeftModel) {
      throw new InputError('getPeftModel: the model already has LoRA adapters (it is a PeftModel); pass the base model (peft.model), ' +
        'or merge the adapters first (peft.mergeAndUnload())');
    }
    if (model === null || typeof model !== 'object' || typeof (model as { namedModules?: unknown }).namedModules !== 'function') {
      throw new InputError(`getPeftModel: expected a LlamaForCausalLM, got ${model === null ? 'null' : typeof model}`);
    }
    const o = checkOptions(opts);
    const linears = linearsOf(model);
    const names = [...new Set([...linears.keys()].map((p) => p.split('.').pop()!))].sort();
    const targets = o.targetModules === 'all-linear' ? names : [...o.targetModules];
    const unknown = targets.filter((t) => !names.includes(t));
    if (unknown.length > 0) {
      throw new InputError(`getPeftModel: targetModules ${JSON.stringify(unknown)} match no Linear of the model; its Linear modules are ` +
        `${names.join(', ')} (or pass 'all-linear')`);
    }
    const config: PeftAdapterConfig = {
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: o.r, lora_alpha: o.loraAlpha, lora_dropout: o.loraDropout,
      target_modules: targets.sort(), use_rslora: o.useRslora, bias: 'none', fan_in_fan_out: false, base_model_name_or_path: null,
      inference_mode: false, init_lora_weights: true, modules_to_save: null, layers_to_transform: null, use_dora: false,
    };
    const peft = new PeftModel(model, config, o.seed);
    const init = new RNG(o.seed + 1);
    for (const [path, lin] of linears) {
      if (!targets.includes(path.split('.').pop()!)) continue;
      const bound = 1 / Math.sqrt(lin.inFeatures); // kaiming_uniform_(a=√5) on [r, in]: U(−1/√in, 1/√in)
      const a = arrayFor(computeDtype(lin.weight.dtype), o.r * lin.inFeatures); // float32 adapters on a half base
      for (let i = 0; i < a.length; i++) a[i] = (init.uniform() * 2 - 1) * bound;
      peft.attach(path, lin, a, arrayFor(computeDtype(lin.weight.dtype), lin.outFeatures * o.r));
    }
    peft.freezeBase();
    return peft;
  }

  private get scaling(): number {
    return this.config.use_rslora ? this.config.lora_alpha / Math.sqrt(this.config.r) : this.config.lora_alpha / this.config.r;
  }

  private attach(path: string, lin: Linear, a: ArrayLike<number>, b: ArrayLike<number>): void {
    const { backend } = lin.weight;
    const dtype = computeDtype(lin.weight.dtype); // a half (frozen) base weight gets float32 adapters
    const r = this.config.r;
    const A = keep(tensor(a as Float32Array, [r, lin.inFeatures], dtype, backend).requireGrad());
    const B = keep(tensor(b as Float32Array, [lin.outFeatures, r], dtype, backend).requireGrad());
    const ad = new Adapter(A, B, this.scaling, this.config.lora_dropout, this.rng, () => this.model.training);
    lin.adapter = ad;
    this.adapters.set(path, ad);
  }

  private freezeBase(): void {
    for (const p of this.model.parameters()) { p.requireGrad(false); p.grad = null; }
  }

  /** The state of the dropout masks' RNG (a checkpoint keeps it, so a resumed run draws the same masks). */
  dropoutRngState(): number[] {
    return this.rng.getState();
  }

  setDropoutRngState(state: readonly number[]): void {
    this.rng.setState(state);
  }

  /** The adapters' tensors by PEFT name ('base_model.model.<path>.lora_A.weight' [r, in], '….lora_B.weight' [out, r]). */
  *namedParameters(): Generator<[string, Tensor]> {
    for (const [path, ad] of this.adapters) {
      yield [`${PREFIX}${path}.lora_A.weight`, ad.a];
      yield [`${PREFIX}${path}.lora_B.weight`, ad.b];
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, t]) => t);
  }

  /** Trainable scalars (the adapters) and all scalars (base + adapters). */
  numParameters(): { trainable: number; total: number } {
    const trainable = this.parameters().reduce((n, p) => n + p.size, 0);
    return { trainable, total: trainable + this.model.numParameters() };
  }

  get backend() { return this.model.backend; }
  get training(): boolean { return this.model.training; }
  train(mode = true): this { this.model.train(mode); return this; }
  eval(): this { return this.train(false); }
  zeroGrad(): void { for (const p of this.parameters()) p.grad = null; }

  forward(inputIds: Tensor, opts: ForwardOptions = {}): CausalLMOutput {
    return this.model.forward(inputIds, opts);
  }

  generate(inputIds: Tensor, opts: GenerateOptions = {}): Promise<Tensor> {
    return this.model.generate(inputIds, opts);
  }

  /** adapter_config.json and adapter_model.safetensors as bytes (float32), in PEFT's format. */
  async adapterFiles(): Promise<{ config: string; weights: Uint8Array }> {
    if (this.merged) {
      throw new InputError('PeftModel: the adapters were merged into the base model by mergeAndUnload(), so there is no adapter to save; ' +
        'save the merged model (savePretrained(model, dir) from llamatrain/node), or save the adapter before merging');
    }
    const tensors: [string, TensorLike][] = [];
    for (const [name, t] of this.namedParameters()) {
      const data = Float32Array.from(await t.data());
      tensors.push([name, { dtype: 'float32', shape: [...t.shape], data }]);
    }
    return { config: `${JSON.stringify({ ...this.config, inference_mode: true }, null, 2)}\n`, weights: serializeSafetensors(tensors, { metadata: { format: 'pt' } }) };
  }

  /** Writes adapter_config.json + adapter_model.safetensors into `dir` (Node: after importing 'llamatrain/node'). */
  async savePretrained(dir: string): Promise<void> {
    const f = needFiles('savePretrained');
    const { config, weights } = await this.adapterFiles();
    await f.mkdir(dir);
    await f.writeFile(join(dir, 'adapter_model.safetensors'), weights);
    await f.writeFile(join(dir, 'adapter_config.json'), config);
  }

  /**
   * Loads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) onto `model` (frozen in
   * place). As PEFT, for inference unless `isTrainable`: the model is put in eval mode (no dropout) and the
   * adapters get no gradient.
   */
  static async fromPretrained(model: LlamaForCausalLM, dir: string, opts: AdapterLoadOptions = {}): Promise<PeftModel> {
    const f = needFiles('fromPretrained');
    const cfgPath = join(dir, 'adapter_config.json'), wPath = join(dir, 'adapter_model.safetensors');
    let config: unknown;
    const text = new TextDecoder().decode(await f.readFile(cfgPath));
    try { config = JSON.parse(text); } catch (e) { throw new InputError(`${cfgPath}: not valid JSON (${(e as Error).message})`, { source: cfgPath }); }
    return PeftModel.fromAdapterFiles(model, config, await f.readFile(wPath), dir, opts);
  }

  /** As fromPretrained, from the parsed adapter_config.json and the bytes of adapter_model.safetensors. */
  static fromAdapterFiles(model: LlamaForCausalLM, config: unknown, weights: Uint8Array, source = 'adapter', opts: AdapterLoadOptions = {}): PeftModel {
    const cfgFile = `${source}/adapter_config.json`, wFile = `${source}/adapter_model.safetensors`;
    const c = checkAdapterConfig(config, cfgFile);
    const tensors = parseSafetensors(weights, wFile).tensors;
    const peft = new PeftModel(model, c, 0);
    const linears = linearsOf(model);
    const wanted = targetedPaths(linears, c, cfgFile);
    const seen = new Set<string>();
    const missing: string[] = [], unnamed: string[] = [];
    const r = c.r;
    for (const [path, lin] of linears) {
      const ka = `${PREFIX}${path}.lora_A.weight`, kb = `${PREFIX}${path}.lora_B.weight`;
      const a = tensors.get(ka), b = tensors.get(kb);
      if (!a && !b) {
        if (wanted.has(path)) missing.push(path);
        continue;
      }
      if (!a || !b) throw new InputError(`${wFile}: ${a ? kb : ka} is missing (each adapted module needs lora_A and lora_B)`, { source: wFile });
      if (!wanted.has(path)) unnamed.push(path);
      const wantA = [r, lin.inFeatures], wantB = [lin.outFeatures, r];
      if (a.shape.join() !== wantA.join() || b.shape.join() !== wantB.join()) {
        throw new InputError(`${wFile}: ${path} has lora_A ${shapeStr(a.shape)} and lora_B ${shapeStr(b.shape)}, ` +
          `the model and r=${r} need ${shapeStr(wantA)} and ${shapeStr(wantB)} (is the adapter for this base model?)`, { source: wFile });
      }
      for (const [key, t] of [[ka, a], [kb, b]] as const) checkFinite(key, t.data, wFile);
      peft.attach(path, lin, a.data as Float32Array, b.data as Float32Array);
      seen.add(ka); seen.add(kb);
    }
    const unused = [...tensors.keys()].filter((k) => !seen.has(k));
    if (unused.length > 0) {
      throw new InputError(`${wFile}: ${unused.length} tensors match no Linear of the model ` +
        `(first: ${unused[0]}); expected keys like ${PREFIX}model.layers.0.self_attn.q_proj.lora_A.weight`, { source: wFile });
    }
    if (seen.size === 0) throw new InputError(`${wFile}: no LoRA tensors found`, { source: wFile });
    const targets = JSON.stringify(c.target_modules);
    if (unnamed.length > 0) {
      throw new InputError(`${source}: adapter_model.safetensors holds adapters for ${unnamed.length} module(s) that target_modules ${targets} ` +
        `does not name (first: ${unnamed[0]}); the config and the weights disagree: fix target_modules in adapter_config.json`, { source: cfgFile });
    }
    if (missing.length > 0) {
      throw new InputError(`${source}: target_modules ${targets} names ${missing.length} module(s) that adapter_model.safetensors has no ` +
        `lora_A/lora_B for (first: ${missing[0]}); the file is incomplete or belongs to another config`, { source: wFile });
    }
    peft.freezeBase();
    if (!opts.isTrainable) { // PEFT's default: loaded for inference
      peft.eval();
      for (const p of peft.parameters()) p.requireGrad(false);
    }
    return peft;
  }

  /**
   * Folds every adapter into its base weight (W ← W + scaling · B·A, on the device), removes the adapters and
   * unfreezes the base: the plain model, which savePretrained exports as an ordinary HF checkpoint.
   */
  /**
   * The merged values W + scaling·B·A of the base parameter `name` (`….weight` of an adapted Linear) as float32 on
   * the host, or null for a parameter without an adapter. The model is left as it is: savePretrained writes a merged
   * checkpoint from these one weight at a time (a 1 B-parameter BF16 base never has to be widened whole).
   */
  async mergedWeight(name: string): Promise<Float32Array | null> {
    if (!name.endsWith('.weight')) return null;
    const ad = this.adapters.get(name.slice(0, -'.weight'.length));
    if (!ad) return null;
    const lin = linearsOf(this.model).get(name.slice(0, -'.weight'.length))!;
    const delta = noGrad(() => mul(matmul(ad.b, ad.a), ad.scaling)); // [out, r]·[r, in] → [out, in]
    try {
      const d = (await delta.data()) as Float32Array;
      const w = await lin.weight.data(); // float32 values (a half weight reads back widened, exactly)
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = Math.fround(w[i]! + d[i]!); // the float32 sum mergeAndUnload's addInPlace makes
      return out;
    } finally {
      delta.dispose();
    }
  }

  mergeAndUnload(): LlamaForCausalLM {
    this.merged = true;
    const linears = linearsOf(this.model);
    noGrad(() => {
      for (const [path, ad] of this.adapters) {
        const lin = linears.get(path)!;
        const delta = mul(matmul(ad.b, ad.a), ad.scaling); // [out, r]·[r, in] → [out, in]
        // a half base weight becomes float32 first: the merged weight is W + ΔW in float32, not rounded back to half
        if (isHalf(lin.weight.dtype)) { const w = widenHalf(lin.weight); replaceStorage(lin.weight, w.storage, 'float32'); }
        kernel(lin.weight.backend, 'addInPlace')(lin.weight.storage, delta.storage, lin.weight.dtype);
        lin.adapter = null;
      }
    });
    this.adapters.clear();
    // weights still in half storage (not adapted: e.g. the embeddings) stay frozen
    for (const p of this.model.parameters()) if (!isHalf(p.dtype)) p.requireGrad(true);
    return this.model;
  }
}

export interface AdapterLoadOptions {
  /** Load the adapters for training (they get gradients; the model's mode is left alone). Default false: inference. */
  isTrainable?: boolean;
}

// adapter_config.json keys that change what an adapter computes and that we do not implement: refused by name, never
// ignored (empty values, PEFT's defaults, are fine)
const UNSUPPORTED_KEYS: Record<string, string> = {
  rank_pattern: 'per-module ranks',
  alpha_pattern: 'per-module alphas',
  modules_to_save: 'fully trained extra modules',
  layer_replication: 'replicated layers',
  exclude_modules: 'excluded modules',
  target_parameters: 'adapters on parameters',
  layers_pattern: 'a custom layers pattern',
};

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && v !== null && Object.keys(v).length === 0) || v === '';
}

/** Checks adapter_config.json's values (types and ranges) and refuses what this implementation does not apply. */
function checkAdapterConfig(config: unknown, file: string): PeftAdapterConfig {
  const c = config as Record<string, unknown> | null;
  const bad = (msg: string): never => { throw new InputError(`${file}: ${msg}`, { source: file }); };
  const shown = (v: unknown) => (v === undefined ? 'nothing (the key is missing)' : JSON.stringify(v) ?? String(v));
  if (!c || typeof c !== 'object' || Array.isArray(c) || c.peft_type !== 'LORA') {
    bad(`expected a PEFT LoRA config (peft_type "LORA"), found ${shown(c && typeof c === 'object' ? (c as Record<string, unknown>).peft_type : c)}`);
  }
  const cfg = c!;
  if (cfg.fan_in_fan_out) bad('fan_in_fan_out adapters (GPT-2 Conv1D) do not apply to LLaMA');
  if (cfg.use_dora) bad('DoRA adapters are not supported (use_dora: true)');
  if (cfg.lora_bias) bad('adapters with a bias on lora_B are not supported (lora_bias: true)');
  if (cfg.bias !== undefined && cfg.bias !== null && cfg.bias !== 'none') bad(`bias ${shown(cfg.bias)} is not supported (only "none")`);
  for (const [key, what] of Object.entries(UNSUPPORTED_KEYS)) {
    if (!isEmpty(cfg[key])) bad(`${key} (${what}) is not supported: found ${shown(cfg[key]).slice(0, 80)}; llamatrain applies one r and one lora_alpha to every targeted module`);
  }
  if (typeof cfg.r !== 'number' || !Number.isInteger(cfg.r) || cfg.r < 1) bad(`r must be an integer ≥ 1 (a JSON number), found ${shown(cfg.r)}`);
  if (typeof cfg.lora_alpha !== 'number' || !(cfg.lora_alpha > 0) || !Number.isFinite(cfg.lora_alpha)) {
    bad(`lora_alpha must be a number > 0, found ${shown(cfg.lora_alpha)}`);
  }
  const dropout = cfg.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad(`lora_dropout must be a number in [0, 1), found ${shown(cfg.lora_dropout)}`);
  const rs = cfg.use_rslora ?? false;
  if (typeof rs !== 'boolean') bad(`use_rslora must be true or false, found ${shown(cfg.use_rslora)}`);
  const t = cfg.target_modules;
  if (!(t === undefined || t === null || typeof t === 'string' || (Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === 'string')))) {
    bad(`target_modules must be a non-empty list of module names, a regular expression string or "all-linear", found ${shown(t)}`);
  }
  const layers = cfg.layers_to_transform;
  if (!(layers === undefined || layers === null || Number.isInteger(layers) || (Array.isArray(layers) && layers.every((x) => Number.isInteger(x))))) {
    bad(`layers_to_transform must be a layer index or a list of them, found ${shown(layers)}`);
  }
  return { ...(cfg as PeftAdapterConfig), lora_dropout: dropout as number, use_rslora: rs as boolean,
    target_modules: (t ?? ['q_proj', 'v_proj']) as string[] };
}

/**
 * The module paths an adapter config targets, as PEFT decides: a list names modules by their last component(s)
 * (`q_proj`, `self_attn.q_proj`), a string is a regular expression the whole path must match, "all-linear" is
 * every Linear but the LM head, null is PEFT's LLaMA default (q_proj, v_proj); `layers_to_transform` keeps only
 * those layers.
 */
function targetedPaths(linears: Map<string, Linear>, c: PeftAdapterConfig, file: string): Set<string> {
  const t = c.target_modules as unknown as string[] | string;
  let match: (path: string) => boolean;
  if (t === 'all-linear') match = () => true;
  else if (typeof t === 'string') {
    let re: RegExp;
    try { re = new RegExp(`^(?:${t})$`); } catch (e) {
      throw new InputError(`${file}: target_modules ${JSON.stringify(t)} is not a regular expression this can read (${(e as Error).message})`, { source: file });
    }
    match = (p) => re.test(p);
  } else match = (p) => t.some((name) => p === name || p.endsWith(`.${name}`));
  const layers = c.layers_to_transform as number | number[] | null | undefined;
  const keep = layers === undefined || layers === null ? null : new Set(Array.isArray(layers) ? layers : [layers]);
  const out = new Set<string>();
  for (const path of linears.keys()) {
    if (!match(path)) continue;
    const layer = /(?:^|\.)layers\.(\d+)\./.exec(path);
    if (keep !== null && (layer === null || !keep.has(Number(layer[1])))) continue;
    out.add(path);
  }
  return out;
}

function checkFinite(name: string, d: ArrayLike<number>, file: string): void {
  let bad = 0, first = -1;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (v - v !== 0) { bad++; if (first < 0) first = i; }
  }
  if (bad > 0) {
    throw new InputError(`${file}: tensor "${name}" holds ${bad} NaN or infinite value(s) of ${d.length} (first at element ${first}); ` +
      'an adapter with such weights makes the model compute NaN — the file is damaged or was saved after training diverged: use an earlier one', { source: file });
  }
}

/** PEFT's get_peft_model for LoRA: freezes `model` and adds adapters; train `peft.parameters()`. */
export function getPeftModel(model: LlamaForCausalLM, opts: LoraOptions = {}): PeftModel {
  return PeftModel.create(model, opts);
}
