// Tensor and the eager autograd tape. An op computes its output now; when grad mode is on and an input
// requires grad, it records a Node holding its inputs and a backward rule. backward() walks the tape in
// reverse topological order and accumulates into the leaves' `.grad` (PyTorch semantics).

import { type Backend, type Storage, getBackend, kernel } from './backend.js';
import { type DType, type Shape, type TypedArray, arrayFor, checkShape, dtypeOf, isFloat, sizeOf, shapeStr } from './dtype.js';
import { InputError } from './errors.js';
import { isReleased, markReleased } from './scope.js';

export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Maps the output's gradient to one gradient per input (null where none is needed). */
  backward(grad: Tensor): (Tensor | null)[];
  /** The gradients backward returns are fresh buffers nothing else holds (the engine may then reuse them). */
  readonly freshGrads?: boolean;
  /**
   * For single-input nodes: adds the input's gradient into `into` (a buffer the engine owns, of the input's
   * shape) instead of returning a new one. The tied LM head's gradient takes the embedding's rows this way
   * without a second [V, C] buffer.
   */
  accumulateInto?(grad: Tensor, into: Tensor): void;
}

/** Open noGrad sections (synchronous ones, and async ones until their promise settles). */
let noGradDepth = 0;

/**
 * Runs `fn` without recording the tape (inference, optimizer updates). An async fn keeps grad mode off until its
 * promise settles, across its awaits; note that other work interleaved at those awaits also runs without grad.
 */
export function noGrad<T>(fn: () => T): T {
  noGradDepth++;
  let r: T;
  try {
    r = fn();
  } catch (e) {
    noGradDepth--;
    throw e;
  }
  if (r instanceof Promise) return r.finally(() => { noGradDepth--; }) as T;
  noGradDepth--;
  return r;
}

export function isGradEnabled(): boolean {
  return noGradDepth === 0;
}

/**
 * Runs a sync `fn` with grad mode on, even inside noGrad or a backward pass (torch.enable_grad): checkpoint()'s
 * backward records the recomputed forward this way.
 */
export function enableGrad<T>(fn: () => T): T {
  const depth = noGradDepth;
  noGradDepth = 0;
  try {
    return fn();
  } finally {
    noGradDepth = depth;
  }
}

/** While set, told of every input requiring grad that an op reads (checkpoint()'s forward finds its parameters). */
let gradInputWatcher: ((t: Tensor) => void) | null = null;

/**
 * Runs a sync `fn` and calls `watch` with each tensor requiring grad that an op in it takes as an input, recorded
 * or not (under noGrad too): the leaves among them are the parameters fn uses. Watchers nest (each is told).
 */
export function watchGradInputs<T>(watch: (t: Tensor) => void, fn: () => T): T {
  const outer = gradInputWatcher;
  gradInputWatcher = outer ? (t) => { watch(t); outer(t); } : watch;
  try {
    return fn();
  } finally {
    gradInputWatcher = outer;
  }
}

export class Tensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly backend: Backend;
  private _storage: Storage;
  /** Kept across step scopes (parameters, gradients, optimizer state): see keep(). */
  persistent = false;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it is part of a tape. */
  node: GradNode | null = null;
  /** Set when backward() freed this tensor's tape node: a second backward through it is an error. */
  graphFreed = false;
  /**
   * The host values of a tensor made from host data, kept when they are cheap and useful: int32 tensors (ids,
   * labels, masks, positions: validation and label shifting read these, never the device) and single values
   * (a known backward seed). Null otherwise. Tensors are never written in place except parameters, gradients
   * and optimizer state: keep() and requireGrad() drop it.
   */
  hostData: TypedArray | null;

  constructor(storage: Storage, shape: Shape, dtype: DType, backend: Backend, requiresGrad = false, hostData: TypedArray | null = null) {
    this._storage = storage;
    this.hostData = hostData;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.backend = backend;
    this.requiresGrad = requiresGrad;
  }

  /** The backend buffer; shared between views made by reshape. Throws once the buffer was released. */
  get storage(): Storage {
    const s = this._storage;
    if (isReleased(s)) {
      throw new Error(`${this.toString()} was released (by the step scope it was made in, or by dispose()/zeroGrad()); ` +
        'read what you need inside the step, or keep(t) it before the scope closes');
    }
    return s;
  }

  set storage(s: Storage) {
    this._storage = s;
    if (this.persistent) this.backend.memory?.persist(s);
  }

  /** Frees the storage now (the wasm backend returns its memory at once); any later use is an error. */
  dispose(): void {
    const s = this._storage;
    if (isReleased(s)) return;
    this.backend.memory?.release(s);
    markReleased([s]);
  }

  get size(): number { return sizeOf(this.shape); }
  get rank(): number { return this.shape.length; }
  /** A leaf is a tensor no recorded op produced (parameters, inputs). */
  get isLeaf(): boolean { return this.node === null; }

  /** A copy of the contents as a typed array (async so GPU backends fit). */
  data(): Promise<TypedArray> {
    return this.backend.download(this.storage, this.dtype, this.size);
  }

  /**
   * Synchronous read: a convenience for user code on CPU backends (ref, wasm), which throws on backends that cannot
   * block (GPUs). The library itself never calls it inside a training step; use `await t.data()`.
   */
  dataSync(): TypedArray {
    if (!this.backend.downloadSync) throw new Error(`backend '${this.backend.name}' cannot be read synchronously; use await t.data()`);
    return this.backend.downloadSync(this.storage, this.dtype, this.size);
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`item() needs a tensor with one element, got shape ${shapeStr(this.shape)}`);
    return (await this.data())[0]!;
  }

  /** Same storage, cut from the tape. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.dtype, this.backend, false, this.hostData);
  }

  /** Marks a leaf as trainable (returns this). */
  requireGrad(flag = true): this {
    if (flag && !isFloat(this.dtype)) throw new TypeError(`only floating-point tensors can require grad, got ${this.dtype}`);
    this.requiresGrad = flag;
    if (flag) this.hostData = null; // it will be updated in place
    return this;
  }

  /**
   * Backpropagates from this tensor. With no argument the tensor must be a scalar (gradient 1).
   * The tape is freed afterwards (a second backward through the same graph is an error, as in PyTorch).
   */
  backward(grad?: Tensor): void {
    if (this.graphFreed) {
      throw new Error('backward(): the graph behind this tensor was already freed by an earlier backward(); ' +
        'run the forward pass again (one backward per forward, as in PyTorch without retain_graph)');
    }
    if (!this.requiresGrad) {
      throw new Error('backward(): this tensor does not require grad (no input of the computation requires grad, or it was computed under noGrad)');
    }
    let seed = grad;
    if (!seed) {
      if (this.size !== 1) throw new Error(`backward() without a gradient needs a scalar, got shape ${shapeStr(this.shape)}`);
      seed = full(this.shape, 1, this.dtype, this.backend);
    }
    runBackward(this, seed);
  }

  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/**
 * The values of an int32 tensor on the host without touching the device: its host copy (tensors made by
 * `tensor()` from host data keep one), else a synchronous read where the backend allows one (CPU backends),
 * else null. Validation and label shifting use it; a GPU backend's device-made ids give null.
 */
export function hostInts(t: Tensor): Int32Array | null {
  if (t.dtype !== 'int32') return null;
  if (t.hostData) return t.hostData as Int32Array;
  return t.backend.downloadSync ? (t.backend.downloadSync(t.storage, t.dtype, t.size) as Int32Array) : null;
}

/** The value of a one-element tensor when the host knows it without a read (a seed made by full()), else null. */
export function knownScalar(t: Tensor): number | null {
  return t.size === 1 && t.hostData ? t.hostData[0]! : null;
}

/**
 * Keeps t's storage alive across step scopes (until dispose() or until it is unreachable): parameters,
 * gradients and optimizer state. Returns t.
 */
export function keep<T extends Tensor>(t: T): T {
  t.persistent = true;
  t.hostData = null; // kept tensors may be updated in place
  t.backend.memory?.persist(t.storage);
  return t;
}

/** Gradients backward() allocated for leaves: zeroGrad may free them (nothing outside the engine made them). */
const engineGrads = new WeakSet<Tensor>();

/** Drops p's gradient (PyTorch's set_to_none), freeing it at once when backward() allocated it. */
export function releaseGrad(p: Tensor): void {
  if (p.grad && engineGrads.has(p.grad)) p.grad.dispose();
  p.grad = null;
}

/** Creates the output of an op and, when needed, records its tape node. */
export function makeResult(storage: Storage, shape: Shape, dtype: DType, backend: Backend,
                           node?: Omit<GradNode, 'inputs'> & { inputs: readonly Tensor[] }): Tensor {
  if (gradInputWatcher && node) for (const x of node.inputs) if (x.requiresGrad) gradInputWatcher(x);
  const needsGrad = noGradDepth === 0 && node !== undefined && node.inputs.some((t) => t.requiresGrad);
  const t = new Tensor(storage, shape, dtype, backend, needsGrad);
  if (needsGrad) t.node = node!;
  return t;
}

/**
 * Backpropagates `seed` from `root` as backward() does — parameters reached accumulate into their `.grad` — except
 * that the gradients of the leaves `wrt` are returned instead (null where none arrived): fresh buffers the caller
 * owns, never a `.grad`. The graph behind root is freed. checkpoint() backpropagates a recomputed layer with it.
 */
export function backwardTo(root: Tensor, seed: Tensor, wrt: readonly Tensor[]): (Tensor | null)[] {
  const capture = new Map<Tensor, Tensor | null>(wrt.map((t) => [t, null]));
  runBackward(root, seed, capture);
  return wrt.map((t) => capture.get(t) ?? null);
}

function runBackward(root: Tensor, seed: Tensor, capture?: Map<Tensor, Tensor | null>): void {
  if (root.isLeaf) {
    if (capture?.has(root)) capture.set(root, copyOf(seed));
    else accumulate(root, seed);
    return;
  }
  // Iterative post-order DFS: reverse of it is a topological order from the root.
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i]!;
      if (c.requiresGrad && !visited.has(c)) { visited.add(c); stack.push([c, 0]); }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  const made = new EngineGrads();
  noGradDepth++;
  try {
    for (let n = order.length - 1; n >= 0; n--) {
      const t = order[n]!;
      const g = grads.get(t);
      grads.delete(t);
      if (!g) continue;
      // g is consumed here; until spend(g) below its storage counts this use, so nothing adds into it in place
      if (t.isLeaf && capture?.has(t)) {
        // a gradient the caller takes: the buffer itself when nothing else holds it, else a copy
        if (made.sole(g)) { made.handOver(g); capture.set(t, g); } else { capture.set(t, copyOf(g)); made.spend(g); }
        continue;
      }
      if (t.isLeaf) {
        if (!t.grad && made.sole(g)) {
          made.handOver(g);
          accumulate(t, g, true); // becomes t.grad as it is
        } else {
          accumulate(t, g); // copied into a new t.grad, or added into t.grad
          made.spend(g);
        }
        continue;
      }
      const node = t.node!;
      const only = node.inputs.length === 1 ? node.inputs[0]! : null;
      const pending = only ? grads.get(only) : undefined;
      if (node.accumulateInto && only?.requiresGrad && pending && made.sole(pending)) {
        node.accumulateInto(g, pending);
      } else {
        const inGrads = node.backward(g);
        node.inputs.forEach((x, i) => {
          const gi = inGrads[i];
          if (!x.requiresGrad || !gi) return;
          if (gi.shape.length !== x.shape.length || gi.shape.some((d, k) => d !== x.shape[k])) {
            throw new Error(`internal: backward of '${node.name}' gave a gradient of shape ${shapeStr(gi.shape)} for an input of shape ${shapeStr(x.shape)}`);
          }
          if (node.freshGrads && inGrads.indexOf(gi) === i && inGrads.lastIndexOf(gi) === i) made.add(gi);
          else made.hold(gi); // passed on (g itself, or a view of it): one more holder of an engine-made storage
          const old = grads.get(x);
          if (!old) { grads.set(x, gi); return; }
          // a second gradient for x: add into whichever of the two is the sole holder of an engine-made buffer
          // (a + b = b + a exactly), else into a new sum; the spent one is freed when nothing else holds it
          if (made.sole(old)) {
            kernel(old.backend, 'addInPlace')(old.storage, gi.storage, old.dtype);
            made.spend(gi);
          } else if (made.sole(gi)) {
            kernel(gi.backend, 'addInPlace')(gi.storage, old.storage, gi.dtype);
            made.spend(old);
            grads.set(x, gi);
          } else {
            const sum = addSameShape(old, gi);
            made.add(sum);
            made.spend(old);
            made.spend(gi);
            grads.set(x, sum);
          }
        });
      }
      t.node = null; // free the tape as we go
      t.graphFreed = true;
      made.spend(g);
    }
  } finally {
    noGradDepth--;
  }
}

/**
 * The gradient buffers backward() allocated itself, and how many pending gradients hold each (add hands its g to
 * both inputs, reshape a view of it; the node consuming a gradient holds it too while it runs). A buffer is freed
 * as soon as its last holder is spent, so the next op's gradient reuses that memory while it is still in cache and
 * backward's footprint stays a few buffers instead of one per op (the residual stream's included). A sole holder
 * may be added into in place and handed to a leaf as its .grad without a copy; nothing else references it.
 */
class EngineGrads {
  private readonly holders = new Map<Storage, number>();

  /** t is a new buffer the engine (or a backward rule with fresh gradients) made: one holder. */
  add(t: Tensor): void {
    this.holders.set(t.storage, 1);
  }

  /** t holds a buffer already counted (a gradient passed on): one more holder. */
  hold(t: Tensor): void {
    const n = this.holders.get(t.storage);
    if (n !== undefined) this.holders.set(t.storage, n + 1);
  }

  /** t is the only holder of an engine-made buffer. */
  sole(t: Tensor): boolean {
    return this.holders.get(t.storage) === 1;
  }

  /** t is done with its buffer: the last holder frees it. */
  spend(t: Tensor): void {
    const n = this.holders.get(t.storage);
    if (n === undefined) return;
    if (n > 1) { this.holders.set(t.storage, n - 1); return; }
    this.holders.delete(t.storage);
    t.dispose();
  }

  /** t (a sole holder) leaves the engine as a leaf's .grad. */
  handOver(t: Tensor): void {
    this.holders.delete(t.storage);
  }
}

function addSameShape(a: Tensor, b: Tensor): Tensor {
  const out = kernel(a.backend, 'binary')('add', a.storage, a.shape, b.storage, b.shape, a.shape, a.dtype);
  return new Tensor(out, a.shape, a.dtype, a.backend);
}

/** A new buffer with g's values. */
function copyOf(g: Tensor): Tensor {
  const s = kernel(g.backend, 'fill')(g.dtype, g.size, 0);
  kernel(g.backend, 'addInPlace')(s, g.storage, g.dtype);
  return new Tensor(s, g.shape, g.dtype, g.backend);
}

/** leaf.grad += g (a private copy the first time, so in-place updates never alias; `owned` g is taken as is). */
function accumulate(leaf: Tensor, g: Tensor, owned = false): void {
  if (!leaf.grad) {
    let s = g.storage;
    if (!owned) {
      s = kernel(leaf.backend, 'fill')(g.dtype, g.size, 0);
      kernel(leaf.backend, 'addInPlace')(s, g.storage, g.dtype);
    }
    leaf.grad = keep(new Tensor(s, leaf.shape, g.dtype, leaf.backend));
    engineGrads.add(leaf.grad);
  } else {
    kernel(leaf.backend, 'addInPlace')(leaf.grad.storage, g.storage, g.dtype);
  }
}

// ---- creation ---------------------------------------------------------------------------------------------

type NumericInput = TypedArray | readonly number[] | number;

/** Creates a tensor from host data. dtype defaults to the array's (float32 for plain numbers). */
export function tensor(data: NumericInput, shape?: Shape, dtype?: DType, backend?: Backend): Tensor {
  const be = backend ?? getBackend();
  if (shape !== undefined) checkShape(shape, 'tensor()');
  if (dtype !== undefined && dtype !== 'float32' && dtype !== 'float64' && dtype !== 'int32') {
    throw new InputError(`tensor(): dtype ${JSON.stringify(dtype)} is not one of float32, float64, int32`, { source: 'tensor()' });
  }
  let arr: TypedArray;
  const dt: DType = dtype ?? (typeof data === 'number' || Array.isArray(data) ? 'float32' : dtypeOf(data as TypedArray));
  if (typeof data === 'number') {
    arr = arrayFor(dt, 1); arr[0] = data;
  } else if (Array.isArray(data)) {
    arr = arrayFor(dt, data.length);
    (arr as Float64Array).set(data as number[]);
  } else {
    const src = data as TypedArray;
    if (dtypeOf(src) === dt) arr = src.slice();
    else { arr = arrayFor(dt, src.length); (arr as Float64Array).set(src as unknown as ArrayLike<number>); }
  }
  if (dt === 'int32') {
    for (let i = 0; i < arr.length; i++) {
      const v = (typeof data === 'number' ? data : Array.isArray(data) ? data[i] : (data as TypedArray)[i])!;
      if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
        throw new InputError(`tensor(): int32 data must be integers, found ${v} at index ${i} (int32 holds integers in [-2^31, 2^31))`, { source: 'tensor()' });
      }
    }
  }
  const sh = shape ? shape.map((d) => d + 0) : typeof data === 'number' ? [] : [arr.length]; // + 0: -0 → 0
  if (sizeOf(sh) !== arr.length) {
    throw new InputError(`tensor(): shape ${shapeStr(sh)} holds ${sizeOf(sh)} elements but the data has ${arr.length}`, { source: 'tensor()' });
  }
  if (!be.supports(dt)) throw new TypeError(`backend '${be.name}' does not support ${dt}`);
  // a private copy: upload may keep a reference to arr (ref does), so the host copy is a second array
  const host = dt === 'int32' || arr.length === 1 ? arr.slice() : null;
  return new Tensor(be.upload(arr), sh, dt, be, false, host);
}

export function full(shape: Shape, value: number, dtype: DType = 'float32', backend?: Backend): Tensor {
  const be = backend ?? getBackend();
  checkShape(shape, 'full()');
  shape = shape.map((d) => d + 0); // -0 → 0
  const size = sizeOf(shape);
  const host = size === 1 || dtype === 'int32' ? arrayFor(dtype, size).fill(value) : null;
  return new Tensor(kernel(be, 'fill')(dtype, size, value), shape, dtype, be, false, host);
}

export function zeros(shape: Shape, dtype: DType = 'float32', backend?: Backend): Tensor {
  return full(shape, 0, dtype, backend);
}

export function ones(shape: Shape, dtype: DType = 'float32', backend?: Backend): Tensor {
  return full(shape, 1, dtype, backend);
}
