// Optimizer base: PyTorch-shaped parameter groups (writable lr / weightDecay), zeroGrad, step, and a state dict
// that checkpoints can store (tensors by parameter index, as torch's optimizer.state_dict()).

import { InputError, type Tensor, isFloat, isHalf, keep, releaseGrad, shapeStr, tensor, zeros } from '../core/index.js';

export interface ParamGroup {
  params: Tensor[];
  lr: number;
  weightDecay: number;
}

/** A plain Tensor[] or groups with per-group overrides of the defaults. */
export type ParamsInput<G extends ParamGroup> = Tensor[] | (Partial<G> & { params: Tensor[] })[];

export interface OptimizerStateDict {
  /** Per parameter index (order of paramGroups, then params): named state tensors as arrays, plus numbers. */
  state: Record<number, Record<string, number | { shape: number[]; data: Float32Array | Float64Array }>>;
  paramGroups: Record<string, unknown>[];
}

export interface StepOptions {
  /** A device scalar: when it is NaN or infinite the update is skipped on the device (no read). */
  gate?: Tensor | null;
}

/** Splits params by (backend, dtype): each part is one multi-tensor kernel call. */
function byBackendAndDtype(params: Tensor[]): Tensor[][] {
  const parts = new Map<string, Tensor[]>();
  for (const p of params) {
    const key = `${p.backend.name}/${p.dtype}`;
    let list = parts.get(key);
    if (!list) { list = []; parts.set(key, list); }
    list.push(p);
  }
  return [...parts.values()];
}

export abstract class Optimizer<G extends ParamGroup = ParamGroup> {
  readonly paramGroups: G[];
  /** Per-parameter state (moment estimates, step counts). */
  protected readonly state = new Map<Tensor, Record<string, Tensor | number>>();
  /** Step counts before the last step(), for cancelStep(). */
  private readonly stepUndo = new Map<Tensor, number | undefined>();
  /** State buffers made with the optimizer, not yet used: buffer() takes them (see stateBuffers). */
  private readonly reserved = new Map<Tensor, Map<string, Tensor>>();

  constructor(params: ParamsInput<G>, defaults: Omit<G, 'params'>) {
    const groups = params.length > 0 && !('params' in (params[0] as object)) ? [{ params: params as Tensor[] }] : params as (Partial<G> & { params: Tensor[] })[];
    if (groups.length === 0 || groups.every((g) => g.params.length === 0)) {
      throw new Error(`${this.constructor.name}: got no parameters to optimise (pass model.parameters() or parameter groups)`);
    }
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      for (const p of g.params) {
        if (seen.has(p)) throw new Error(`${this.constructor.name}: a parameter appears in more than one group (group ${gi})`);
        if (isHalf(p.dtype)) {
          throw new InputError(`${this.constructor.name}: parameter ${shapeStr(p.shape)} is ${p.dtype} storage, a frozen weight (the model was ` +
            "loaded with weights: 'as-stored'); full fine-tuning needs float32 weights: load with weights: 'float32', or train LoRA " +
            'adapters (getPeftModel) and give the optimizer peft.parameters()', { source: this.constructor.name });
        }
        if (!isFloat(p.dtype)) throw new TypeError(`${this.constructor.name}: parameter ${shapeStr(p.shape)} is ${p.dtype}; only floating-point tensors can be optimised`);
        seen.add(p);
      }
      const merged = { ...defaults, ...g, params: [...g.params] } as G;
      this.validateGroup(merged, gi);
      return merged;
    });
    // The state is allocated now, before any step: made inside the first step it would sit above that step's
    // activations in a backend's heap, and every later step's peak would spill past it (s15M on wasm: 47 MB more
    // memory touched). Parameters that need no gradient get none.
    for (const g of this.paramGroups) {
      for (const name of this.stateBuffers(g)) {
        for (const p of g.params) {
          if (!p.requiresGrad) continue;
          let mine = this.reserved.get(p);
          if (!mine) { mine = new Map(); this.reserved.set(p, mine); }
          mine.set(name, keep(zeros(p.shape, p.dtype, p.backend)));
        }
      }
    }
  }

  /** The state buffers (names as buffer() takes them) an update of group g uses: allocated with the optimizer. */
  protected stateBuffers(_g: G): readonly string[] {
    return [];
  }

  protected validateGroup(g: G, gi: number): void {
    if (!(g.lr >= 0)) throw new RangeError(`${this.constructor.name}: group ${gi} lr must be ≥ 0, got ${g.lr}`);
    if (!(g.weightDecay >= 0)) throw new RangeError(`${this.constructor.name}: group ${gi} weightDecay must be ≥ 0, got ${g.weightDecay}`);
  }

  /** Drops every gradient (PyTorch's set_to_none). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) releaseGrad(p);
  }

  /**
   * One update of every parameter that has a gradient: one kernel call per group, nothing read from the device.
   * With a `gate` (a device scalar, e.g. the gradient norm) the kernels change nothing when its value is NaN or
   * infinite — the step is skipped on the device; call cancelStep() once the host knows, to undo the step counts.
   */
  step(opts: StepOptions = {}): void {
    this.stepUndo.clear();
    for (const g of this.paramGroups) {
      const withGrad = g.params.filter((p) => p.grad !== null);
      for (const batch of byBackendAndDtype(withGrad)) this.updateGroup(g, batch, opts.gate ?? null);
    }
  }

  /** Updates params (all with a gradient, one backend and dtype) of group g in one kernel call. */
  protected abstract updateGroup(g: G, params: Tensor[], gate: Tensor | null): void;

  /** Increments p's step count (1-based after the call) and remembers the old one for cancelStep(). */
  protected advance(p: Tensor): number {
    const st = this.stateOf(p);
    const old = st.step as number | undefined;
    this.stepUndo.set(p, old);
    st.step = (old ?? 0) + 1;
    return st.step;
  }

  /** Undoes the step counts of the last step() (its gate skipped the update on the device). */
  cancelStep(): void {
    for (const [p, old] of this.stepUndo) {
      const st = this.stateOf(p);
      st.step = old ?? 0; // 0, not absent: SGD's "first step" reads it
    }
    this.stepUndo.clear();
  }

  /** The state tensor `name` of p: zeros on first use (those made with the optimizer, when it named them). */
  protected buffer(p: Tensor, name: string): Tensor {
    const st = this.stateOf(p);
    let b = st[name] as Tensor | undefined;
    if (!b) {
      const mine = this.reserved.get(p);
      b = mine?.get(name) ?? keep(zeros(p.shape, p.dtype, p.backend));
      mine?.delete(name);
      st[name] = b;
    }
    return b;
  }

  protected stateOf(p: Tensor): Record<string, Tensor | number> {
    let st = this.state.get(p);
    if (!st) { st = {}; this.state.set(p, st); }
    return st;
  }

  private allParams(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /** The state as host arrays (async: it reads every state tensor from the device). */
  async stateDict(): Promise<OptimizerStateDict> {
    const state: OptimizerStateDict['state'] = {};
    const all = this.allParams();
    for (let i = 0; i < all.length; i++) {
      const st = this.state.get(all[i]!);
      if (!st) continue;
      const out: Record<string, number | { shape: number[]; data: Float32Array | Float64Array }> = {};
      for (const [k, v] of Object.entries(st)) {
        out[k] = typeof v === 'number' ? v : { shape: [...v.shape], data: (await v.data()) as Float32Array };
      }
      state[i] = out;
    }
    let idx = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...hyper } = g;
      return { ...hyper, params: params.map(() => idx++) };
    });
    return { state, paramGroups };
  }

  loadStateDict(sd: OptimizerStateDict): void {
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`optimizer state has ${sd.paramGroups.length} parameter groups, this optimizer has ${this.paramGroups.length}`);
    }
    sd.paramGroups.forEach((g, gi) => {
      const own = this.paramGroups[gi]!;
      if ((g.params as number[]).length !== own.params.length) {
        throw new Error(`optimizer state group ${gi} has ${(g.params as number[]).length} parameters, this optimizer has ${own.params.length}`);
      }
      const { params: _ignored, ...hyper } = g;
      Object.assign(own, hyper);
    });
    const all = this.allParams();
    for (const mine of this.reserved.values()) for (const t of mine.values()) t.dispose(); // the loaded state replaces them
    this.reserved.clear();
    this.state.clear();
    for (const [k, st] of Object.entries(sd.state)) {
      const p = all[Number(k)];
      if (!p) throw new Error(`optimizer state refers to parameter ${k}, but there are only ${all.length}`);
      const restored: Record<string, Tensor | number> = {};
      for (const [name, v] of Object.entries(st)) {
        if (typeof v === 'number') { restored[name] = v; continue; }
        if (v.shape.length !== p.shape.length || v.shape.some((d, i) => d !== p.shape[i])) {
          throw new Error(`optimizer state '${name}' of parameter ${k} has shape ${shapeStr(v.shape)}, the parameter is ${shapeStr(p.shape)}`);
        }
        restored[name] = keep(tensor(v.data, v.shape, p.dtype, p.backend));
      }
      this.state.set(p, restored);
    }
  }
}
