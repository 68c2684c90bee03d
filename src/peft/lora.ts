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
    throw new Error(`PeftModel.${what}: no file system: import 'llamatrain/node' (Node) first, or use ` +
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
  if (!Number.isInteger(r) || r < 1) throw new RangeError(`getPeftModel: r must be an integer ≥ 1, got ${r}`);
  if (!(loraAlpha > 0)) throw new RangeError(`getPeftModel: loraAlpha must be > 0, got ${loraAlpha}`);
  if (!(loraDropout >= 0 && loraDropout < 1)) throw new RangeError(`getPeftModel: loraDropout must be in [0, 1), got ${loraDropout}`);
  return { r, loraAlpha, loraDropout, useRslora: o.useRslora ?? false, seed: o.seed ?? 0, targetModules: o.targetModules ?? ['q_proj', 'v_proj'] };
}

/**
 * A LLaMA with LoRA adapters. `forward`, `generate`, `train()`/`eval()` are the model's; `parameters()` are only the
 * adapters (A and B of every adapted Linear), so an optimizer over them never touches the frozen base.
 */
export class PeftModel {
  private readonly adapters = new Map<string, Adapter>(); // by module path
  private readonly rng: RNG;

  private constructor(readonly model: LlamaForCausalLM, readonly config: PeftAdapterConfig, seed: number) {
    this.rng = new RNG(seed);
  }

  /** Wraps `model` (its weights are frozen in place) with fresh adapters: A Kaiming-uniform, B zero (PEFT's init). */
  static create(model: LlamaForCausalLM, opts: LoraOptions = {}): PeftModel {
    const o = checkOptions(opts);
    const linears = linearsOf(model);
    const names = [...new Set([...linears.keys()].map((p) => p.split('.').pop()!))].sort();
    const targets = o.targetModules === 'all-linear' ? names : [...o.targetModules];
    const unknown = targets.filter((t) => !names.includes(t));
    if (unknown.length > 0) {
      throw new Error(`getPeftModel: targetModules ${JSON.stringify(unknown)} match no Linear of the model; its Linear modules are ` +
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

  /** Loads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) onto `model` (frozen in place). */
  static async fromPretrained(model: LlamaForCausalLM, dir: string): Promise<PeftModel> {
    const f = needFiles('fromPretrained');
    const cfgPath = join(dir, 'adapter_config.json'), wPath = join(dir, 'adapter_model.safetensors');
    let config: unknown;
    const text = new TextDecoder().decode(await f.readFile(cfgPath));
    try { config = JSON.parse(text); } catch (e) { throw new Error(`${cfgPath}: not valid JSON (${(e as Error).message})`); }
    return PeftModel.fromAdapterFiles(model, config, await f.readFile(wPath), dir);
  }

  /** As fromPretrained, from the parsed adapter_config.json and the bytes of adapter_model.safetensors. */
  static fromAdapterFiles(model: LlamaForCausalLM, config: unknown, weights: Uint8Array, source = 'adapter'): PeftModel {
    const c = config as Partial<PeftAdapterConfig> | null;
    if (!c || typeof c !== 'object' || c.peft_type !== 'LORA') {
      throw new Error(`${source}/adapter_config.json: expected a PEFT LoRA config (peft_type "LORA"), found ${JSON.stringify(c?.peft_type ?? c)}`);
    }
    if (c.fan_in_fan_out) throw new Error(`${source}/adapter_config.json: fan_in_fan_out adapters (GPT-2 Conv1D) do not apply to LLaMA`);
    if ((c as { use_dora?: boolean }).use_dora) throw new Error(`${source}/adapter_config.json: DoRA adapters are not supported (use_dora: true)`);
    if (c.bias && c.bias !== 'none') throw new Error(`${source}/adapter_config.json: bias "${c.bias}" is not supported (only "none")`);
    const r = c.r, alpha = c.lora_alpha;
    if (!Number.isInteger(r) || r! < 1 || !(typeof alpha === 'number' && alpha > 0)) {
      throw new Error(`${source}/adapter_config.json: r must be an integer ≥ 1 and lora_alpha > 0, found r=${r}, lora_alpha=${alpha}`);
    }
    const tensors = parseSafetensors(weights, `${source}/adapter_model.safetensors`).tensors;
    const full: PeftAdapterConfig = {
      ...(c as PeftAdapterConfig), lora_dropout: c.lora_dropout ?? 0, use_rslora: c.use_rslora ?? false,
      target_modules: Array.isArray(c.target_modules) ? c.target_modules : [],
    };
    const peft = new PeftModel(model, full, 0);
    const linears = linearsOf(model);
    const seen = new Set<string>();
    for (const [path, lin] of linears) {
      const ka = `${PREFIX}${path}.lora_A.weight`, kb = `${PREFIX}${path}.lora_B.weight`;
      const a = tensors.get(ka), b = tensors.get(kb);
      if (!a && !b) continue;
      if (!a || !b) throw new Error(`${source}/adapter_model.safetensors: ${a ? kb : ka} is missing (each adapted module needs lora_A and lora_B)`);
      const wantA = [r!, lin.inFeatures], wantB = [lin.outFeatures, r!];
      if (a.shape.join() !== wantA.join() || b.shape.join() !== wantB.join()) {
        throw new Error(`${source}/adapter_model.safetensors: ${path} has lora_A ${shapeStr(a.shape)} and lora_B ${shapeStr(b.shape)}, ` +
          `the model and r=${r} need ${shapeStr(wantA)} and ${shapeStr(wantB)} (is the adapter for this base model?)`);
      }
      peft.attach(path, lin, a.data as Float32Array, b.data as Float32Array);
      seen.add(ka); seen.add(kb);
    }
    const unused = [...tensors.keys()].filter((k) => !seen.has(k));
    if (unused.length > 0) {
      throw new Error(`${source}/adapter_model.safetensors: ${unused.length} tensors match no Linear of the model ` +
        `(first: ${unused[0]}); expected keys like ${PREFIX}model.layers.0.self_attn.q_proj.lora_A.weight`);
    }
    if (seen.size === 0) throw new Error(`${source}/adapter_model.safetensors: no LoRA tensors found`);
    peft.freezeBase();
    return peft;
  }

  /**
   * Folds every adapter into its base weight (W ← W + scaling · B·A, on the device), removes the adapters and
   * unfreezes the base: the plain model, which savePretrained exports as an ordinary HF checkpoint.
   */
  mergeAndUnload(): LlamaForCausalLM {
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

/** PEFT's get_peft_model for LoRA: freezes `model` and adds adapters; train `peft.parameters()`. */
export function getPeftModel(model: LlamaForCausalLM, opts: LoraOptions = {}): PeftModel {
  return PeftModel.create(model, opts);
}
