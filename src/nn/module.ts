// Module: a tree of named parameters and sub-modules, PyTorch-style. Names are dotted paths that equal
// Hugging Face's parameter names for the LLaMA modules (`model.layers.0.self_attn.q_proj.weight`), so
// loading and exporting checkpoints is a rename-free copy.

import {
  type Backend, type DType, InputError, Tensor, type TypedArray, arrayFor, float32ToHalf, halfToFloat32, isHalf, keep, kernel, releaseGrad,
  replaceStorage, shapeStr, sizeOf,
} from '../core/index.js';

/** What loadStateDict accepts: our tensors or raw arrays (e.g. straight from a safetensors file). */
export interface StateEntry { shape: readonly number[]; dtype: DType; data?: TypedArray }

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  protected registerParameter(name: string, t: Tensor): Tensor {
    keep(isHalf(t.dtype) ? t : t.requireGrad(true)); // parameters outlive every step scope; half weights stay frozen
    this.params.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** [hfName, parameter] pairs; a parameter shared by two modules (tied embeddings) appears once. */
  *namedParameters(prefix = '', seen = new Set<Tensor>()): Generator<[string, Tensor]> {
    for (const [n, p] of this.params) {
      if (seen.has(p)) continue;
      seen.add(p);
      yield [prefix + n, p];
    }
    for (const [n, c] of this.children) yield* c.namedParameters(`${prefix}${n}.`, seen);
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** [path, module] pairs below this one ('model.layers.0.self_attn.q_proj', …), depth first. */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    for (const [n, c] of this.children) {
      const path = prefix ? `${prefix}.${n}` : n;
      yield [path, c];
      yield* c.namedModules(path);
    }
  }

  *modules(): Generator<Module> {
    yield this;
    for (const c of this.children.values()) yield* c.modules();
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient (PyTorch's set_to_none default). */
  zeroGrad(): void {
    for (const p of this.parameters()) releaseGrad(p);
  }

  /** Parameters by HF name (shared parameters once, under their first name). */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters());
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /**
   * Copies values into the parameters by name, converting dtype. strict: every parameter must be present and
   * nothing unexpected may be left (names in `ignorable` may be extra, e.g. a tied lm_head.weight).
   */
  loadStateDict(entries: Map<string, StateEntry> | Record<string, StateEntry>,
                opts: { strict?: boolean; ignorable?: readonly string[]; source?: string } = {}): void {
    const strict = opts.strict ?? true;
    const src = opts.source ?? 'state dict';
    const map = entries instanceof Map ? entries : new Map(Object.entries(entries));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((n) => !map.has(n));
    const unexpected = [...map.keys()].filter((n) => !own.has(n) && !(opts.ignorable ?? []).includes(n));
    if (strict && (missing.length > 0 || unexpected.length > 0)) {
      const list = (xs: string[]) => xs.slice(0, 8).join(', ') + (xs.length > 8 ? `, … (${xs.length} in all)` : '');
      throw new InputError(`${src}: parameter names do not match the model.` +
        (missing.length ? ` Missing: ${list(missing)}.` : '') +
        (unexpected.length ? ` Unexpected: ${list(unexpected)}.` : '') +
        ' Check that the checkpoint and config.json belong to the same LLaMA model (HF parameter names expected).');
    }
    for (const [name, p] of own) {
      const e = map.get(name);
      if (!e) continue;
      if (e.shape.length !== p.shape.length || e.shape.some((d, i) => d !== p.shape[i])) {
        throw new InputError(`${src}: '${name}' has shape ${shapeStr(e.shape)} but the model expects ${shapeStr(p.shape)} ` +
          '(does config.json match the weights?)', { source: src });
      }
      if (e instanceof Tensor) copyTensorInto(p, e, name, src);
      else if (e.data) copyInto(p, e.data, e.dtype);
      else throw new InputError(`${src}: entry '${name}' has no data`, { source: src });
    }
  }
}

/** Copies a tensor's values into parameter p on the device (same backend and dtype; nothing read on the host). */
function copyTensorInto(p: Tensor, t: Tensor, name: string, src: string): void {
  if (isHalf(t.dtype) || isHalf(p.dtype)) {
    throw new InputError(`${src}: '${name}' is ${t.dtype} and the parameter ${p.dtype}; half weights load from bit patterns: pass ` +
      "{ shape, dtype: 'bfloat16' | 'float16', data: Uint16Array } (or float32 values) instead of a tensor", { source: src });
  }
  if (t.backend !== p.backend || t.dtype !== p.dtype) {
    throw new Error(`${src}: '${name}' is a ${t.dtype} tensor on backend '${t.backend.name}', the parameter is ${p.dtype} on ` +
      `'${p.backend.name}'; pass { shape, data: await t.data() } to convert it`);
  }
  const copy = kernel(p.backend, 'fill')(p.dtype, p.size, 0);
  kernel(p.backend, 'addInPlace')(copy, t.storage, p.dtype);
  p.storage = copy;
}

/**
 * Replaces a parameter's contents (the tensor object, and so optimizer references to it, stay the same). `dtype`
 * names what `data` holds when it is a Uint16Array of half bits; a half parameter keeps its storage dtype (bits
 * copied, or values rounded to it). The old storage is freed at once (a model being loaded never holds two copies
 * of its weights: on the wasm backend the initial ones would stay until the GC ran).
 */
export function copyInto(p: Tensor, data: TypedArray, dtype?: DType): void {
  if (data.length !== sizeOf(p.shape)) throw new InputError(`copyInto: ${data.length} values for a tensor of shape ${shapeStr(p.shape)}`);
  if (data instanceof Uint16Array && !(dtype && isHalf(dtype))) {
    throw new InputError(`copyInto: a Uint16Array holds bfloat16 or float16 bits; name which with the entry's dtype`);
  }
  if (isHalf(p.dtype)) {
    const bits = data instanceof Uint16Array && dtype === p.dtype ? data.slice()
      : float32ToHalf(data instanceof Uint16Array ? halfToFloat32(data, dtype as 'bfloat16') : data, p.dtype);
    replaceStorage(p, p.backend.upload(bits, p.dtype), p.dtype);
    return;
  }
  if (data instanceof Uint16Array) data = halfToFloat32(data, dtype as 'bfloat16'); // widened: a float parameter
  const arr = arrayFor(p.dtype, data.length);
  (arr as Float64Array).set(data);
  replaceStorage(p, (p.backend as Backend).upload(arr), p.dtype); // frees the old values at once
}
