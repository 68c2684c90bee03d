// The Backend interface and the kernel registry (tfjs-style: kernels keyed by backend and name).
// `ref` implements every kernel in plain TypeScript and is the oracle; faster backends may implement a subset.
// Storage is opaque here: `ref` stores TypedArrays, a GPU backend stores buffer handles. Reads are async.

import type { DType, Shape, TypedArray } from './dtype.js';

/** A backend's buffer. Only the backend that made it knows what is inside. */
export type Storage = object;

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'sigmoid' | 'silu' | 'square' | 'abs' | 'sign';

export interface AttentionArgs {
  B: number; T: number; S: number; NH: number; NKV: number; HD: number;
  scale: number;
  causal: boolean;
  /** Absolute position of query row 0 (KV cache: the number of cached positions). */
  qOffset: number;
  /** [B, S] int32, 0 = padded key (never attended), or null. */
  keyMask: Storage | null;
  /** [B, S] int32 document id of every key position (packing): a query attends only to keys of its own document.
   *  The query at row t has the id of key position qOffset + t. Null: one document. */
  docIds: Storage | null;
  /** Sliding window (Mistral): the query at absolute position p sees only keys j > p − window. 0: no window. */
  window: number;
}

export interface CrossEntropyArgs {
  N: number; V: number;
  ignoreIndex: number;
  labelSmoothing: number;
  zLoss: number;
}

export interface AdamArgs {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number;
  /** true: AdamW (p ← p·(1 − lr·wd) before the update); false: Adam (g ← g + wd·p, L2). */
  decoupled: boolean;
  amsgrad: boolean;
}

/** The tensors of one optimizer group, as parallel lists (one entry per parameter that has a gradient). */
export interface AdamGroupStorages {
  params: Storage[]; grads: Storage[]; m: Storage[]; v: Storage[];
  /** amsgrad's running max of v, or null without amsgrad. */
  vMax: Storage[] | null;
  sizes: number[];
  /** 1-based step count of each parameter (bias correction). */
  steps: number[];
}

export interface SGDArgs {
  lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number;
}

export interface SGDGroupStorages {
  params: Storage[]; grads: Storage[];
  /** Momentum buffers (null without momentum). */
  bufs: Storage[] | null;
  sizes: number[];
  /** Per parameter: the momentum buffer is initialised to this first gradient (PyTorch), not blended. */
  firstStep: boolean[];
}

/** Muon's momentum hyper-parameters (see muonMomentum / muonStep). */
export interface MuonMomentumArgs {
  /** β: the buffer becomes buf + (1 − β)·(g − buf) (an exponential average of the gradients). */
  momentum: number;
  /** true: the update direction is g + β·(buf' − g) (Nesterov); false: buf'. */
  nesterov: boolean;
}

export interface MuonStepArgs {
  lr: number;
  momentum: number;
  /** Decoupled: p ← p·(1 − lr·wd) before the update. */
  weightDecay: number;
  /** The shape-based scale of the orthogonalised update (the same for every parameter of the call). */
  scale: number;
}

/** The tensors of one Muon call, as parallel lists (one entry per parameter; all of one shape). */
export interface MuonGroupStorages {
  params: Storage[]; grads: Storage[];
  /** Momentum buffers. */
  bufs: Storage[];
  sizes: number[];
}

export interface LinearCrossEntropyArgs {
  N: number; C: number; V: number;
  ignoreIndex: number;
  labelSmoothing: number;
  zLoss: number;
  /** Logit soft-cap c > 0 (z = c·tanh(z/c)); 0 = off. */
  softcap: number;
  /** Rows of logits held at once ([chunkSize, V] is the only logits buffer). */
  chunkSize: number;
  /** Whether dWeight is wanted (false for a frozen head, e.g. under LoRA: the [V, C] GEMMs are skipped). */
  weightGrad: boolean;
}

/** Which gradient the fused loss should produce: of Σ_n scale·loss_n, of Σ_n rows[n]·loss_n, or none. */
export type LossGradRequest = { scale: number } | { rows: Storage } | null;

/** Every kernel a backend can provide. Shapes are passed explicitly; outputs are fresh storages. */
export interface KernelTable {
  fill(dtype: DType, size: number, value: number): Storage;
  cast(a: Storage, to: DType): Storage;
  binary(op: BinaryOp, a: Storage, aShape: Shape, b: Storage, bShape: Shape, outShape: Shape, dtype: DType): Storage;
  unary(op: UnaryOp, a: Storage, dtype: DType): Storage;
  /** d silu(x) / dx · g */
  siluBackward(x: Storage, g: Storage, dtype: DType): Storage;
  /** SwiGLU's product silu(gate) · up, elementwise (same sizes). */
  swiglu(gate: Storage, up: Storage, dtype: DType): Storage;
  /** Gradients of silu(gate) · up given g: dGate = g · up · silu'(gate), dUp = g · silu(gate). */
  swigluBackward(gate: Storage, up: Storage, g: Storage, dtype: DType): { dGate: Storage; dUp: Storage };
  /** Sum over `axes` (kept as size-1 dims in the result's layout). */
  sum(a: Storage, shape: Shape, axes: readonly number[], dtype: DType): Storage;
  /** Max along one axis: values and the index of the first maximum. */
  max(a: Storage, shape: Shape, axis: number, dtype: DType): { values: Storage; indices: Storage };
  /** Scatter g (reduced shape) to the positions in `indices` along `axis` of a zero tensor of `shape`. */
  maxBackward(g: Storage, indices: Storage, shape: Shape, axis: number, dtype: DType): Storage;
  expand(a: Storage, aShape: Shape, outShape: Shape, dtype: DType): Storage;
  /**
   * C[..., M, N] = op(A)[..., M, K] · op(B)[..., K, N], batch dims broadcast. `bDtype` (default `dtype`) may be a
   * half storage dtype when `dtype` is float32 and B is one 2-D matrix (a frozen weight): B is converted to float32
   * next to the GEMM, never as a whole.
   */
  matmul(a: Storage, aShape: Shape, b: Storage, bShape: Shape, transA: boolean, transB: boolean, outShape: Shape, dtype: DType,
         bDtype?: DType): Storage;
  permute(a: Storage, shape: Shape, perm: readonly number[], dtype: DType): Storage;
  /** Copies the box [starts, ends) out of `a`. */
  slice(a: Storage, shape: Shape, starts: readonly number[], ends: readonly number[], dtype: DType): Storage;
  /** Writes `a` (the box's shape) into a zero tensor of `outShape` at `starts` (slice's backward, concat's forward). */
  pad(a: Storage, aShape: Shape, outShape: Shape, starts: readonly number[], dtype: DType): Storage;
  /** out[n, :] = w[ids[n], :]; w [V, C], ids [N] → [N, C]. The op validates ids where the host knows them; a kernel
   *  never reads ids on the host, and writes NaN rows for ids outside [0, V) (never reads out of bounds).
   *  `dtype` is w's: a half table gives float32 rows (converted as they are gathered). */
  embedding(w: Storage, V: number, C: number, ids: Storage, N: number, dtype: DType): Storage;
  /** dW[V, C] = scatter-add of g[N, C] at ids[N]; with `into` ([V, C]) the rows are added to it in place and it is returned. */
  embeddingBackward(g: Storage, ids: Storage, N: number, V: number, C: number, dtype: DType, into?: Storage): Storage;
  /** Row-wise (last axis, `cols` wide) softmax or log-softmax, max-subtracted. */
  softmax(a: Storage, rows: number, cols: number, log: boolean, dtype: DType): Storage;
  /** Given y = softmax (or log-softmax) output and g = dL/dy, returns dL/dx. */
  softmaxBackward(y: Storage, g: Storage, rows: number, cols: number, log: boolean, dtype: DType): Storage;
  /** Row-wise log-sum-exp over the last axis, max-subtracted: [rows]. */
  logsumexp(a: Storage, rows: number, cols: number, dtype: DType): Storage;
  /** y = x · rsqrt(mean(x²) + eps) · w over rows of C; also returns rstd [rows] for the backward. */
  rmsNorm(x: Storage, w: Storage, rows: number, C: number, eps: number, dtype: DType): { y: Storage; rstd: Storage };
  rmsNormBackward(x: Storage, w: Storage, rstd: Storage, g: Storage, rows: number, C: number, dtype: DType): { dx: Storage; dw: Storage };
  /**
   * RoPE in HF's rotate_half convention on x [B, T, H, HD]: out = x·cos + rotate_half(x)·sin with angle
   * positions[b, t] · invFreq[j] (positions [B, T] int32). inverse = true applies the transpose (the backward).
   */
  rope(x: Storage, B: number, T: number, H: number, HD: number, positions: Storage, invFreq: Float32Array,
       attentionScaling: number, inverse: boolean, dtype: DType): Storage;
  /** Causal scaled-dot-product attention, q [B,T,NH,HD], k/v [B,S,NKV,HD] → out [B,T,NH,HD], lse [B,NH,T]. */
  attention(q: Storage, k: Storage, v: Storage, args: AttentionArgs, dtype: DType): { out: Storage; lse: Storage };
  attentionBackward(q: Storage, k: Storage, v: Storage, out: Storage, lse: Storage, g: Storage, args: AttentionArgs,
                    dtype: DType): { dq: Storage; dk: Storage; dv: Storage };
  /**
   * Per-row cross-entropy of logits [N, V] against targets [N] (int32): loss[n] = (1-ε)·(lse − z_t) +
   * ε·(lse − mean z) + zLoss·lse², 0 where target = ignoreIndex. A target outside [0, V) gives a NaN loss (the op
   * validates targets on the host before upload; kernels never read them there).
   */
  crossEntropy(logits: Storage, targets: Storage, args: CrossEntropyArgs, dtype: DType): { loss: Storage; lse: Storage };
  /** dlogits[n, :] = g[n] · (p − (1-ε)·onehot − ε/V + 2·zLoss·lse·p), 0 on ignored rows. */
  crossEntropyBackward(logits: Storage, lse: Storage, targets: Storage, g: Storage, args: CrossEntropyArgs, dtype: DType): Storage;
  /**
   * Fused LM head + cross-entropy over hidden [N, C], weight [V, C], targets [N], chunk by chunk: per-row losses
   * [N] (as crossEntropy, on logits hidden·Wᵀ after the optional soft-cap) and, when asked, dHidden [N, C] and
   * dWeight [V, C] of the requested weighted sum — without ever holding [N, V] logits. `wDtype` (default `dtype`)
   * may be a half storage dtype with float32 compute (a frozen head: `weightGrad` false).
   */
  linearCrossEntropy(hidden: Storage, weight: Storage, targets: Storage, args: LinearCrossEntropyArgs, grad: LossGradRequest,
                     dtype: DType, wDtype?: DType): { loss: Storage; dHidden: Storage | null; dWeight: Storage | null };
  /** dst += src (same size), in place: gradient accumulation. */
  addInPlace(dst: Storage, src: Storage, dtype: DType): void;
  /** a *= s, in place (a host scalar). */
  scaleInPlace(a: Storage, s: number, dtype: DType): void;
  /** min(max(x, lo), hi) elementwise (NaN stays NaN). */
  clamp(a: Storage, lo: number, hi: number, dtype: DType): Storage;
  /** clamp's gradient: g where lo ≤ x ≤ hi, else 0. */
  clampBackward(x: Storage, g: Storage, lo: number, hi: number, dtype: DType): Storage;
  /**
   * The global norm of many tensors as one [1] storage: (Σ |x|^p)^(1/p) over all of them (normType p ≥ 1), or
   * max |x| for Infinity. NaN or ±Infinity anywhere makes it non-finite. One call for all gradients of a step.
   */
  globalNorm(list: readonly Storage[], sizes: readonly number[], normType: number, dtype: DType): Storage;
  /**
   * Multiplies every tensor of the list in place by min(1, maxNorm / (norm + 1e-6)), norm being the [1] storage
   * globalNorm made (read on the device, never on the host). A non-finite norm leaves them unchanged.
   */
  clipByNorm(list: readonly Storage[], sizes: readonly number[], norm: Storage, maxNorm: number, dtype: DType): void;
  /**
   * One Adam/AdamW update of every parameter of a group in place (PyTorch semantics); m, v (and vMax) too.
   * gate: a [1] storage or null; when its value is not finite the call changes nothing (a step whose loss or
   * gradient norm is NaN/Inf is skipped on the device, without a read).
   */
  adamStep(group: AdamGroupStorages, args: AdamArgs, gate: Storage | null, dtype: DType): void;
  /** One SGD update of every parameter of a group in place (PyTorch semantics); gate as adamStep's. */
  sgdStep(group: SGDGroupStorages, args: SGDArgs, gate: Storage | null, dtype: DType): void;
  /**
   * Muon's direction before orthogonalisation, for every parameter of the list, concatenated in list order into one
   * fresh storage (Σ sizes): with buf' = buf + (1 − β)·(g − buf) rounded to the dtype, g + β·(buf' − g) (Nesterov)
   * or buf'. The buffers are not changed (muonStep does that, gated).
   */
  muonMomentum(group: { grads: Storage[]; bufs: Storage[]; sizes: number[] }, args: MuonMomentumArgs, dtype: DType): Storage;
  /**
   * Muon's update in place, gated as adamStep's: every buffer becomes buf' (the same value muonMomentum used) and
   * every parameter p ← p·(1 − lr·wd) − lr·scale·o, o being its part of `update` (the orthogonalised directions
   * concatenated in list order, as muonMomentum laid them out).
   */
  muonStep(group: MuonGroupStorages, update: Storage, args: MuonStepArgs, gate: Storage | null, dtype: DType): void;
}

export type KernelName = keyof KernelTable;

export interface Backend {
  readonly name: string;
  /**
   * Moves host data into a storage of this backend (may keep a reference to `data`). A Uint16Array holds the bit
   * patterns of a half dtype, which `dtype` names ('bfloat16' or 'float16'); other arrays need no dtype.
   */
  upload(data: TypedArray, dtype?: DType): Storage;
  /** A copy of the storage's contents on the host (a half tensor's values come back as a Float32Array). */
  download(s: Storage, dtype: DType, size: number): Promise<TypedArray>;
  /** Synchronous read, only for CPU backends (undefined elsewhere). */
  downloadSync?(s: Storage, dtype: DType, size: number): TypedArray;
  /** Which dtypes this backend stores. */
  supports(dtype: DType): boolean;
  /** Explicit lifetimes, for backends whose storages the JS GC cannot free in time (see core/scope.ts). */
  readonly memory?: BackendMemory;
  /**
   * Bytes of `dtype` tensors this backend can still allocate, when it has a limit of its own (the wasm backend's
   * 4 GiB wasm32 memory), with how to name that limit in a message. Undefined: only the host's memory limits it.
   */
  memoryLimit?(dtype: DType): { bytes: number; what: string } | undefined;
}

/**
 * The machine's memory in bytes where the platform tells (Node: os.totalmem(), reached through
 * process.getBuiltinModule so this file stays browser-safe), else undefined.
 */
export function hostMemoryBytes(): number | undefined {
  const p = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  try {
    const os = p?.getBuiltinModule?.('node:os') as { totalmem?: () => number } | undefined;
    const n = os?.totalmem?.();
    return typeof n === 'number' && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Memory a backend manages itself (the wasm backend's tensors live in its WebAssembly.Memory). */
export interface BackendMemory {
  /** Starts tracking new storages; returns the scope's depth (1 = outermost). */
  openScope(): number;
  /**
   * Ends the scope opened at `depth` (and any left open inside it): frees every storage allocated in it except
   * those in `keep`, which move to the enclosing scope (or, outside every scope, back to GC management).
   * Returns the freed storages.
   */
  closeScope(depth: number, keep: ReadonlySet<Storage>): Storage[];
  /** Exempts a storage from every scope: it lives until release() or until it is unreachable. */
  persist(s: Storage): void;
  /** Frees a storage now (dispose()); false when this backend did not allocate it. */
  release(s: Storage): boolean;
}

const backends = new Map<string, Backend>();
const kernels = new Map<string, Partial<KernelTable>>();
let current: string | null = null;

export function registerBackend(backend: Backend, table: Partial<KernelTable>): void {
  backends.set(backend.name, backend);
  kernels.set(backend.name, table);
  if (current === null) current = backend.name;
}

export function getBackend(name?: string): Backend {
  const n = name ?? current;
  const b = n === null ? undefined : backends.get(n);
  if (!b) {
    throw new Error(`backend '${n}' is not registered (registered: ${[...backends.keys()].join(', ') || 'none'}); ` +
      `import 'llamatrain' (which registers 'ref') before creating tensors`);
  }
  return b;
}

export function setBackend(name: string): void {
  getBackend(name);
  current = name;
}

export function backendNames(): string[] {
  return [...backends.keys()];
}

/** Whether `backend` implements kernel `name` (ops compose a fallback when it does not). */
export function hasKernel(backend: Backend, name: KernelName): boolean {
  return kernels.get(backend.name)?.[name] !== undefined;
}

/** The kernel `name` of `backend`; throws a clear error when the backend does not implement it. */
export function kernel<K extends KernelName>(backend: Backend, name: K): KernelTable[K] {
  const k = kernels.get(backend.name)?.[name];
  if (!k) throw new Error(`backend '${backend.name}' has no kernel '${name}'`);
  return k;
}
