// Differentiable ops. Each op = one forward kernel call + one backward rule (which calls kernels through
// other ops, with the tape off). Gradient checks for every op live in test/core/ops.test.ts.

import { type BinaryOp, type Storage, type UnaryOp, hasKernel, kernel } from './backend.js';
import {
  type DType, type Shape, type TypedArray, broadcastShapes, isFloat, isHalf, normAxis, sameShape, shapeStr, sizeOf,
} from './dtype.js';
import { InputError } from './errors.js';
import { Tensor, hostInts, makeResult, tensor } from './tensor.js';

// ---- helpers ----------------------------------------------------------------------------------------------

/** The kernel `name` for an op on t; refuses a half (bfloat16/float16) t, which only three ops accept. */
function k<K extends Parameters<typeof kernel>[1]>(t: Tensor, name: K) {
  noHalf(name, t);
  return kernel(t.backend, name);
}

/**
 * Throws an InputError when one of `ts` is stored as bfloat16/float16: such a tensor is a frozen weight that
 * only matmul (as the B operand), embedding (the table) and linearCrossEntropy (the head) convert on the fly.
 */
export function noHalf(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (isHalf(t.dtype)) {
      throw new InputError(`${op}: got a ${t.dtype} tensor ${shapeStr(t.shape)}, the storage of a frozen weight; only matmul (as the ` +
        `B operand), embedding and linearCrossEntropy read half weights. Widen it first with widenHalf(t) (float32), or load ` +
        "the model with weights: 'float32'", { source: op });
    }
  }
}

function requireFloat(t: Tensor, op: string): void {
  noHalf(op, t);
  if (!isFloat(t.dtype)) throw new TypeError(`${op}: expected a floating-point tensor, got ${t.dtype} ${shapeStr(t.shape)}`);
}

function sameBackend(a: Tensor, b: Tensor, op: string): void {
  if (a.backend !== b.backend) throw new Error(`${op}: tensors live on different backends ('${a.backend.name}' and '${b.backend.name}')`);
}

/** Turns a number into a 0-d tensor like `like`. */
function asTensor(x: Tensor | number, like: Tensor): Tensor {
  return typeof x === 'number' ? tensor(x, [], like.dtype, like.backend) : x;
}

/** Sums a broadcast gradient back down to `shape`. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const off = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < off || (shape[i - off] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const s = sum(g, axes, true);
  return reshape(s, shape);
}

// ---- elementwise ------------------------------------------------------------------------------------------

function binary(op: BinaryOp, a: Tensor | number, b: Tensor | number): Tensor {
  const ta = typeof a === 'number' ? asTensor(a, b as Tensor) : a;
  const tb = asTensor(b, ta);
  noHalf(op, ta, tb);
  sameBackend(ta, tb, op);
  if (ta.dtype !== tb.dtype) throw new TypeError(`${op}: dtypes differ (${ta.dtype} and ${tb.dtype}); cast one first`);
  const outShape = broadcastShapes(ta.shape, tb.shape);
  const out = k(ta, 'binary')(op, ta.storage, ta.shape, tb.storage, tb.shape, outShape, ta.dtype);
  return makeResult(out, outShape, ta.dtype, ta.backend, {
    name: op,
    inputs: [ta, tb],
    backward: (g) => {
      switch (op) {
        case 'add': return [sumTo(g, ta.shape), sumTo(g, tb.shape)];
        case 'sub': return [sumTo(g, ta.shape), sumTo(neg(g), tb.shape)];
        case 'mul': return [sumTo(mul(g, tb), ta.shape), sumTo(mul(g, ta), tb.shape)];
        case 'div': {
          const ga = div(g, tb);
          return [sumTo(ga, ta.shape), sumTo(neg(mul(ga, div(ta, tb))), tb.shape)];
        }
      }
    },
  });
}

export const add = (a: Tensor | number, b: Tensor | number): Tensor => binary('add', a, b);
export const sub = (a: Tensor | number, b: Tensor | number): Tensor => binary('sub', a, b);
export const mul = (a: Tensor | number, b: Tensor | number): Tensor => binary('mul', a, b);
export const div = (a: Tensor | number, b: Tensor | number): Tensor => binary('div', a, b);

function unary(op: UnaryOp, x: Tensor, backward: (g: Tensor, y: Tensor) => Tensor): Tensor {
  requireFloat(x, op);
  const out = k(x, 'unary')(op, x.storage, x.dtype);
  const y: Tensor = makeResult(out, x.shape, x.dtype, x.backend, {
    name: op,
    inputs: [x],
    backward: (g) => [backward(g, new Tensor(y.storage, y.shape, y.dtype, y.backend))],
  });
  return y;
}

export const neg = (x: Tensor): Tensor => unary('neg', x, (g) => neg(g));
export const exp = (x: Tensor): Tensor => unary('exp', x, (g, y) => mul(g, y));
export const log = (x: Tensor): Tensor => unary('log', x, (g) => div(g, x));
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x, (g, y) => div(mul(g, 0.5), y));
/** 1/sqrt(x); d/dx = -0.5 · y³ */
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x, (g, y) => mul(g, mul(mul(y, mul(y, y)), -0.5)));
export const tanh = (x: Tensor): Tensor => unary('tanh', x, (g, y) => mul(g, sub(1, mul(y, y))));
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x, (g, y) => mul(g, mul(y, sub(1, y))));
export const square = (x: Tensor): Tensor => unary('square', x, (g) => mul(g, mul(x, 2)));
/** |x|; the gradient at 0 is 0 (as torch). */
export const abs = (x: Tensor): Tensor =>
  unary('abs', x, (g) => mul(g, new Tensor(k(x, 'unary')('sign', x.storage, x.dtype), x.shape, x.dtype, x.backend)));
/** SiLU(x) = x·σ(x), the gate of LLaMA's SwiGLU MLP. */
export const silu = (x: Tensor): Tensor =>
  unary('silu', x, (g) => new Tensor(k(x, 'siluBackward')(x.storage, g.storage, x.dtype), x.shape, x.dtype, x.backend));

/** SwiGLU's gated product silu(gate) · up (same shapes), one kernel each way: LLaMA's MLP is down(swiglu(gate(x), up(x))). */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  requireFloat(gate, 'swiglu');
  sameBackend(gate, up, 'swiglu');
  if (!sameShape(gate.shape, up.shape) || gate.dtype !== up.dtype) {
    throw new Error(`swiglu: gate and up must have the same shape and dtype, got ${gate.dtype} ${shapeStr(gate.shape)} and ${up.dtype} ${shapeStr(up.shape)}`);
  }
  const out = k(gate, 'swiglu')(gate.storage, up.storage, gate.dtype);
  return makeResult(out, gate.shape, gate.dtype, gate.backend, {
    name: 'swiglu',
    inputs: [gate, up],
    freshGrads: true,
    backward: (g) => {
      const { dGate, dUp } = k(gate, 'swigluBackward')(gate.storage, up.storage, g.storage, gate.dtype);
      return [new Tensor(dGate, gate.shape, gate.dtype, gate.backend), new Tensor(dUp, up.shape, up.dtype, up.backend)];
    },
  });
}

/**
 * min(max(x, lo), hi) elementwise; the gradient passes where lo ≤ x ≤ hi (torch.clamp). NaN stays NaN.
 * (clipGradValue clamps gradients with the same kernel.)
 */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  requireFloat(x, 'clamp');
  if (!(lo <= hi)) throw new RangeError(`clamp: needs lo ≤ hi, got [${lo}, ${hi}]`);
  const out = k(x, 'clamp')(x.storage, lo, hi, x.dtype);
  return makeResult(out, x.shape, x.dtype, x.backend, {
    name: 'clamp',
    inputs: [x],
    freshGrads: true,
    backward: (g) => [new Tensor(k(x, 'clampBackward')(x.storage, g.storage, lo, hi, x.dtype), x.shape, x.dtype, x.backend)],
  });
}

/** Converts dtype (no gradient across int32; float↔float passes the gradient through, cast back). */
export function cast(x: Tensor, dtype: DType): Tensor {
  noHalf('cast', x);
  if (isHalf(dtype)) throw new InputError(`cast: ${dtype} is storage for frozen weights, not a dtype to compute in; cast to float32 or float64`, { source: 'cast' });
  if (x.dtype === dtype) return x;
  const out = k(x, 'cast')(x.storage, dtype);
  const from = x.dtype;
  return makeResult(out, x.shape, dtype, x.backend, isFloat(dtype) && isFloat(from) ? {
    name: 'cast', inputs: [x], backward: (g) => [cast(g, from)],
  } : undefined);
}

// ---- reductions -------------------------------------------------------------------------------------------

function reducedShape(shape: Shape, axes: readonly number[], keepDim: boolean): number[] {
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (axes.includes(i)) { if (keepDim) out.push(1); } else out.push(d);
  });
  return out;
}

function normAxes(x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return [...new Set(list.map((a) => normAxis(a, x.rank)))].sort((p, q) => p - q);
}

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  requireFloat(x, 'sum');
  const ax = normAxes(x, axes);
  const out = k(x, 'sum')(x.storage, x.shape, ax, x.dtype);
  const keptShape = reducedShape(x.shape, ax, true);
  return makeResult(out, reducedShape(x.shape, ax, keepDim), x.dtype, x.backend, {
    name: 'sum',
    inputs: [x],
    backward: (g) => [expand(reshape(g, keptShape), x.shape)],
  });
}

export function mean(x: Tensor, axes?: number | readonly number[], keepDim = false): Tensor {
  const ax = normAxes(x, axes);
  const n = ax.reduce((p, a) => p * x.shape[a]!, 1);
  return div(sum(x, ax, keepDim), n);
}

/** Max along one axis; the gradient flows to the first maximal element. */
export function max(x: Tensor, axis = -1, keepDim = false): Tensor {
  requireFloat(x, 'max');
  const ax = normAxis(axis, x.rank);
  const { values, indices } = k(x, 'max')(x.storage, x.shape, ax, x.dtype);
  return makeResult(values, reducedShape(x.shape, [ax], keepDim), x.dtype, x.backend, {
    name: 'max',
    inputs: [x],
    backward: (g) => [new Tensor(k(x, 'maxBackward')(g.storage, indices, x.shape, ax, x.dtype), x.shape, x.dtype, x.backend)],
  });
}

/** Broadcasts x to `shape` (a copy); the backward sums over the broadcast dimensions. */
export function expand(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const outShape = broadcastShapes(x.shape, shape);
  if (!sameShape(outShape, shape)) throw new RangeError(`expand: cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  const out = k(x, 'expand')(x.storage, x.shape, shape, x.dtype);
  return makeResult(out, shape, x.dtype, x.backend, { name: 'expand', inputs: [x], backward: (g) => [sumTo(g, x.shape)] });
}

// ---- matmul -----------------------------------------------------------------------------------------------

export interface MatmulOptions { transA?: boolean; transB?: boolean }

/**
 * Batched matrix product op(a) · op(b) with op = transpose when requested. a [..., M, K], b [..., K, N]
 * (as stored: [..., K, M] when transA, [..., N, K] when transB); leading batch dims broadcast; b may be 2-D.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  requireFloat(a, 'matmul'); sameBackend(a, b, 'matmul');
  if (isHalf(b.dtype)) {
    // a frozen weight in its 2-byte storage (x·Wᵀ of a Linear, or dy·W of its backward): converted next to the GEMM
    if (a.dtype !== 'float32' || b.rank !== 2 || transA) {
      throw new InputError(`matmul: a ${b.dtype} B operand ${shapeStr(b.shape)} needs a float32 A without transA and a 2-D B ` +
        `(a frozen weight); got A ${a.dtype} ${shapeStr(a.shape)}${transA ? ' with transA' : ''}. Widen B with widenHalf(b) for other products`, { source: 'matmul' });
    }
  } else {
    requireFloat(b, 'matmul');
    if (a.dtype !== b.dtype) throw new TypeError(`matmul: dtypes differ (${a.dtype} and ${b.dtype})`);
  }
  if (a.rank < 2 || b.rank < 2) throw new RangeError(`matmul: both operands need rank ≥ 2, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const K2 = transB ? bc : br, N = transB ? br : bc;
  if (K !== K2) {
    throw new RangeError(`matmul: inner dimensions differ: ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} · ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''} (${K} vs ${K2})`);
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const outShape = [...batch, M, N];
  const out = isHalf(b.dtype)
    ? k(a, 'matmul')(a.storage, a.shape, b.storage, b.shape, transA, transB, outShape, a.dtype, b.dtype)
    : k(a, 'matmul')(a.storage, a.shape, b.storage, b.shape, transA, transB, outShape, a.dtype);
  return makeResult(out, outShape, a.dtype, a.backend, {
    name: 'matmul',
    freshGrads: true, // the gradients are new buffers: the engine adds into them and hands them to leaves without a copy
    inputs: [a, b],
    backward: (g) => {
      // only what is needed: a frozen weight (LoRA's base) costs no gradient GEMM
      const da = !a.requiresGrad ? null : transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
      const db = !b.requiresGrad ? null : transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
      return [da && sumTo(da, a.shape), db && sumTo(db, b.shape)];
    },
  });
}

/**
 * LoRA's update added to a linear layer's output: y + scaling · (x Aᵀ) Bᵀ with y [N, out], x [N, in], A [r, in],
 * B [out, r]. One op so that a step keeps only the [N, r] product for backward: the [N, out] intermediate is freed
 * as soon as it is added (LoRA exists to save memory; three [N, out] temporaries per adapted layer did not).
 * Backward: dy = g, dB = s·gᵀ·(xAᵀ), d(xAᵀ) = s·g·B, dA = d(xAᵀ)ᵀ·x, dx = d(xAᵀ)·A.
 */
export function loraAdd(y: Tensor, x: Tensor, a: Tensor, b: Tensor, scaling: number): Tensor {
  for (const t of [y, x, a, b]) { requireFloat(t, 'loraAdd'); sameBackend(y, t, 'loraAdd'); }
  if (a.dtype !== y.dtype || b.dtype !== y.dtype || x.dtype !== y.dtype) {
    throw new TypeError(`loraAdd: dtypes differ (y ${y.dtype}, x ${x.dtype}, A ${a.dtype}, B ${b.dtype})`);
  }
  const [N, out] = y.shape as [number, number], [Nx, inF] = x.shape as [number, number], [r, inA] = a.shape as [number, number];
  if (y.rank !== 2 || x.rank !== 2 || a.rank !== 2 || b.rank !== 2 || Nx !== N || inA !== inF || b.shape[0] !== out || b.shape[1] !== r) {
    throw new RangeError(`loraAdd: expected y [N, out], x [N, in], A [r, in], B [out, r]; got ${shapeStr(y.shape)}, ${shapeStr(x.shape)}, ` +
      `${shapeStr(a.shape)}, ${shapeStr(b.shape)}`);
  }
  const mm = k(y, 'matmul'), dt = y.dtype;
  const low = new Tensor(mm(x.storage, x.shape, a.storage, a.shape, false, true, [N, r], dt), [N, r], dt, y.backend); // x Aᵀ  [N, r]
  const scaled = new Tensor(k(y, 'binary')('mul', low.storage, low.shape, tensor(scaling, [], dt, y.backend).storage, [], [N, r], dt), [N, r], dt, y.backend);
  low.dispose();
  const delta = new Tensor(mm(scaled.storage, scaled.shape, b.storage, b.shape, false, true, [N, out], dt), [N, out], dt, y.backend); // [N, out]
  const sum = k(y, 'binary')('add', y.storage, y.shape, delta.storage, delta.shape, [N, out], dt);
  delta.dispose(); // not needed by backward
  return makeResult(sum, [N, out], dt, y.backend, {
    name: 'loraAdd',
    inputs: [y, x, a, b],
    backward: (g) => {
      const dB = b.requiresGrad ? matmul(g, scaled, { transA: true }) : null; // [out, r]
      const dLow = mul(matmul(g, b), scaling); // [N, r]
      const dA = a.requiresGrad ? matmul(dLow, x, { transA: true }) : null; // [r, in]
      const dx = x.requiresGrad ? matmul(dLow, a) : null; // [N, in]
      return [g, dx, dA, dB];
    },
  });
}

// ---- shape ops --------------------------------------------------------------------------------------------

/** A view with a new shape (shares storage). One dimension may be -1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const s = [...shape];
  const inferred = s.indexOf(-1);
  if (inferred >= 0) {
    const rest = s.reduce((p, d, i) => (i === inferred ? p : p * d), 1);
    s[inferred] = rest === 0 ? 0 : x.size / rest;
  }
  if (sizeOf(s) !== x.size || s.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`reshape: cannot view ${shapeStr(x.shape)} (${x.size} elements) as ${shapeStr(shape)}`);
  }
  const out = makeResult(x.storage, s, x.dtype, x.backend, { name: 'reshape', inputs: [x], backward: (g) => [reshape(g, x.shape)] });
  out.hostData = x.hostData; // same values (ids, labels): validation still reads them on the host
  return out;
}

/** Permutes dimensions (a copy). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  noHalf('permute', x);
  if (perm.length !== x.rank || [...perm].sort((p, q) => p - q).some((p, i) => p !== i)) {
    throw new RangeError(`permute: ${JSON.stringify(perm)} is not a permutation of ${x.rank} dimensions`);
  }
  const out = k(x, 'permute')(x.storage, x.shape, perm, x.dtype);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => { inv[p] = i; });
  return makeResult(out, perm.map((p) => x.shape[p]!), x.dtype, x.backend, {
    name: 'permute', inputs: [x], backward: (g) => [permute(g, inv)],
  });
}

/** Swaps two dimensions. */
export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normAxis(d0, x.rank), b = normAxis(d1, x.rank);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b; perm[b] = a;
  return permute(x, perm);
}

/** x[start:end] along `axis` (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis(axis, x.rank);
  const d = x.shape[ax]!;
  if (!(0 <= start && start <= end && end <= d)) {
    throw new RangeError(`slice: [${start}, ${end}) is out of range for axis ${ax} of size ${d}`);
  }
  const starts = x.shape.map((_, i) => (i === ax ? start : 0));
  const ends = x.shape.map((s, i) => (i === ax ? end : s));
  const outShape = x.shape.map((s, i) => (i === ax ? end - start : s));
  const out = k(x, 'slice')(x.storage, x.shape, starts, ends, x.dtype);
  const y = makeResult(out, outShape, x.dtype, x.backend, {
    name: 'slice',
    inputs: [x],
    backward: (g) => [new Tensor(k(x, 'pad')(g.storage, g.shape, x.shape, starts, x.dtype), x.shape, x.dtype, x.backend)],
  });
  if (x.hostData && x.dtype === 'int32') y.hostData = sliceHost(x.hostData, x.shape, ax, start, end); // ids, labels: keep a host copy
  return y;
}

/** The host copy of x[start:end] along `axis` (x row-major of `shape`). */
function sliceHost(data: TypedArray, shape: Shape, axis: number, start: number, end: number): TypedArray {
  const inner = sizeOf(shape.slice(axis + 1)), outer = sizeOf(shape.slice(0, axis)), d = shape[axis]!;
  const out = new (data.constructor as new (n: number) => TypedArray)(outer * (end - start) * inner);
  for (let o = 0; o < outer; o++) out.set(data.subarray((o * d + start) * inner, (o * d + end) * inner), o * (end - start) * inner);
  return out;
}

/** Concatenates along `axis`. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  noHalf('concat', ...xs);
  if (xs.length === 0) throw new RangeError('concat: needs at least one tensor');
  const first = xs[0]!;
  const ax = normAxis(axis, first.rank);
  for (const t of xs) {
    sameBackend(first, t, 'concat');
    if (t.dtype !== first.dtype || t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new RangeError(`concat: ${shapeStr(t.shape)} ${t.dtype} does not match ${shapeStr(first.shape)} ${first.dtype} outside axis ${ax}`);
    }
  }
  const outShape = [...first.shape];
  outShape[ax] = xs.reduce((p, t) => p + t.shape[ax]!, 0);
  let acc: Storage | null = null;
  let offset = 0;
  const offsets: number[] = [];
  for (const t of xs) {
    const starts = outShape.map((_, i) => (i === ax ? offset : 0));
    const part = k(first, 'pad')(t.storage, t.shape, outShape, starts, first.dtype);
    if (acc === null) acc = part;
    else k(first, 'addInPlace')(acc, part, first.dtype);
    offsets.push(offset);
    offset += t.shape[ax]!;
  }
  return makeResult(acc!, outShape, first.dtype, first.backend, {
    name: 'concat',
    inputs: xs,
    backward: (g) => xs.map((t, i) => slice(g, ax, offsets[i]!, offsets[i]! + t.shape[ax]!)),
  });
}

// ---- fused row ops ----------------------------------------------------------------------------------------

function rowsOf(x: Tensor): [number, number] {
  const cols = x.shape[x.rank - 1] ?? 1;
  return [cols === 0 ? 0 : x.size / cols, cols];
}

function softmaxImpl(x: Tensor, isLog: boolean): Tensor {
  requireFloat(x, isLog ? 'logSoftmax' : 'softmax');
  const [rows, cols] = rowsOf(x);
  const out = k(x, 'softmax')(x.storage, rows, cols, isLog, x.dtype);
  return makeResult(out, x.shape, x.dtype, x.backend, {
    name: isLog ? 'logSoftmax' : 'softmax',
    inputs: [x],
    backward: (g) => [new Tensor(k(x, 'softmaxBackward')(out, g.storage, rows, cols, isLog, x.dtype), x.shape, x.dtype, x.backend)],
  });
}

/** Softmax over the last axis (max-subtracted). */
export const softmax = (x: Tensor): Tensor => softmaxImpl(x, false);
/** Log-softmax over the last axis (max-subtracted). */
export const logSoftmax = (x: Tensor): Tensor => softmaxImpl(x, true);

/** log Σ exp over the last axis, max-subtracted: shape without the last axis. */
export function logsumexp(x: Tensor): Tensor {
  requireFloat(x, 'logsumexp');
  const [rows, cols] = rowsOf(x);
  const out = k(x, 'logsumexp')(x.storage, rows, cols, x.dtype);
  const outShape = x.shape.slice(0, -1);
  const lse: Tensor = makeResult(out, outShape, x.dtype, x.backend, {
    name: 'logsumexp',
    inputs: [x],
    backward: (g) => {
      // d lse / dx = softmax(x) = exp(x − lse)
      const l = reshape(new Tensor(out, outShape, x.dtype, x.backend), [...outShape, 1]);
      return [mul(exp(sub(x.detach(), l)), reshape(g, [...outShape, 1]))];
    },
  });
  return lse;
}

/** RMSNorm over the last axis: x · rsqrt(mean(x²) + eps) · weight (HF LlamaRMSNorm). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  noHalf('rmsNorm', x, weight);
  requireFloat(x, 'rmsNorm'); sameBackend(x, weight, 'rmsNorm');
  const [rows, C] = rowsOf(x);
  if (weight.rank !== 1 || weight.shape[0] !== C) {
    throw new RangeError(`rmsNorm: weight must be [${C}] for input ${shapeStr(x.shape)}, got ${shapeStr(weight.shape)}`);
  }
  const { y, rstd } = k(x, 'rmsNorm')(x.storage, weight.storage, rows, C, eps, x.dtype);
  return makeResult(y, x.shape, x.dtype, x.backend, {
    name: 'rmsNorm',
    freshGrads: true,
    inputs: [x, weight],
    backward: (g) => {
      const { dx, dw } = k(x, 'rmsNormBackward')(x.storage, weight.storage, rstd, g.storage, rows, C, x.dtype);
      return [new Tensor(dx, x.shape, x.dtype, x.backend), new Tensor(dw, weight.shape, x.dtype, x.backend)];
    },
  });
}

/** Rotary embedding data: inverse frequencies [HD/2] and HF's attention scaling of cos/sin. */
export interface RopeFreqs {
  /** [HD/2], float32 as HF's inv_freq buffer (and as a GPU reads it). */
  invFreq: Float32Array;
  attentionScaling: number;
}

/**
 * RoPE on x [B, T, H, HD] in HF's rotate_half convention; positions [B, T] int32 (per-row positions allow
 * packing and KV-cache offsets).
 */
export function rope(x: Tensor, positions: Tensor, freqs: RopeFreqs): Tensor {
  requireFloat(x, 'rope');
  if (x.rank !== 4) throw new RangeError(`rope: expected x [B, T, H, HD], got ${shapeStr(x.shape)}`);
  const [B, T, H, HD] = x.shape as [number, number, number, number];
  if (HD % 2 !== 0 || freqs.invFreq.length !== HD / 2) {
    throw new RangeError(`rope: head dim ${HD} needs ${HD / 2} inverse frequencies, got ${freqs.invFreq.length}`);
  }
  if (positions.dtype !== 'int32' || !sameShape(positions.shape, [B, T])) {
    throw new RangeError(`rope: positions must be int32 [${B}, ${T}], got ${positions.dtype} ${shapeStr(positions.shape)}`);
  }
  const run = (s: Storage, inverse: boolean) =>
    k(x, 'rope')(s, B, T, H, HD, positions.storage, freqs.invFreq, freqs.attentionScaling, inverse, x.dtype);
  return makeResult(run(x.storage, false), x.shape, x.dtype, x.backend, {
    name: 'rope',
    freshGrads: true,
    inputs: [x],
    backward: (g) => [new Tensor(run(g.storage, true), x.shape, x.dtype, x.backend)],
  });
}

export interface AttentionOptions {
  causal?: boolean;
  /** Softmax scale; default 1/sqrt(HD). */
  scale?: number;
  /** [B, S] int32, 1 = real key, 0 = padding (never attended). */
  keyMask?: Tensor | null;
  /** Absolute position of the first query (KV cache). Default S − T. */
  qOffset?: number;
  /** [B, S] int32 document ids (packed rows): attention stays inside each document (block-diagonal). */
  documentIds?: Tensor | null;
  /**
   * Sliding window (transformers' Mistral semantics): the query at absolute position p attends only to keys j with
   * p − window < j (besides the other rules). null/undefined: no window.
   */
  window?: number | null;
}

/**
 * Scaled-dot-product attention with GQA: q [B, T, NH, HD], k and v [B, S, NKV, HD] → [B, T, NH, HD].
 * Query head h uses KV head floor(h / (NH / NKV)) (HF repeat_kv). A query with no allowed key outputs 0.
 */
export function attention(q: Tensor, kT: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  noHalf('attention', q, kT, v);
  requireFloat(q, 'attention');
  if (q.rank !== 4 || kT.rank !== 4 || v.rank !== 4) {
    throw new RangeError(`attention: expected q [B,T,NH,HD], k/v [B,S,NKV,HD], got ${shapeStr(q.shape)}, ${shapeStr(kT.shape)}, ${shapeStr(v.shape)}`);
  }
  const [B, T, NH, HD] = q.shape as [number, number, number, number];
  const [Bk, S, NKV, HDk] = kT.shape as [number, number, number, number];
  if (Bk !== B || HDk !== HD || !sameShape(kT.shape, v.shape) || NH % NKV !== 0) {
    throw new RangeError(`attention: incompatible shapes q ${shapeStr(q.shape)}, k ${shapeStr(kT.shape)}, v ${shapeStr(v.shape)} (NH must be a multiple of NKV)`);
  }
  const keyMask = opts.keyMask ?? null;
  if (keyMask && (keyMask.dtype !== 'int32' || !sameShape(keyMask.shape, [B, S]))) {
    throw new RangeError(`attention: keyMask must be int32 [${B}, ${S}], got ${keyMask.dtype} ${shapeStr(keyMask.shape)}`);
  }
  const docs = opts.documentIds ?? null;
  if (docs && (docs.dtype !== 'int32' || !sameShape(docs.shape, [B, S]))) {
    throw new RangeError(`attention: documentIds must be int32 [${B}, ${S}], got ${docs.dtype} ${shapeStr(docs.shape)}`);
  }
  const window = opts.window ?? 0;
  if (!Number.isSafeInteger(window) || window < 0) {
    throw new InputError(`attention: window must be a positive integer (keys per query) or null for none, found ${String(window)}`, { source: 'attention' });
  }
  const args = {
    B, T, S, NH, NKV, HD, window,
    scale: opts.scale ?? 1 / Math.sqrt(HD),
    causal: opts.causal ?? true,
    qOffset: opts.qOffset ?? S - T,
    keyMask: keyMask ? keyMask.storage : null,
    docIds: docs ? docs.storage : null,
  };
  const { out, lse } = k(q, 'attention')(q.storage, kT.storage, v.storage, args, q.dtype);
  return makeResult(out, q.shape, q.dtype, q.backend, {
    name: 'attention',
    freshGrads: true,
    inputs: [q, kT, v],
    backward: (g) => {
      const r = k(q, 'attentionBackward')(q.storage, kT.storage, v.storage, out, lse, g.storage, args, q.dtype);
      return [new Tensor(r.dq, q.shape, q.dtype, q.backend), new Tensor(r.dk, kT.shape, q.dtype, q.backend),
        new Tensor(r.dv, v.shape, q.dtype, q.backend)];
    },
  });
}

/** Row lookup: weight [V, C], ids [...] int32 → [..., C]; backward scatter-adds into the weight. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== 'int32') throw new TypeError(`embedding: ids must be int32, got ${ids.dtype}`);
  if (weight.rank !== 2) throw new RangeError(`embedding: weight must be [V, C], got ${shapeStr(weight.shape)}`);
  const [V, C] = weight.shape as [number, number];
  const N = ids.size;
  const host = hostInts(ids);
  if (host) validateTokenIds(host, V);
  if (isHalf(weight.dtype)) {
    // a frozen table in its 2-byte storage: the looked-up rows come out float32; no gradient reaches the table
    const out = kernel(weight.backend, 'embedding')(weight.storage, V, C, ids.storage, N, weight.dtype);
    return makeResult(out, [...ids.shape, C], 'float32', weight.backend);
  }
  const out = k(weight, 'embedding')(weight.storage, V, C, ids.storage, N, weight.dtype);
  return makeResult(out, [...ids.shape, C], weight.dtype, weight.backend, {
    name: 'embedding',
    freshGrads: true,
    inputs: [weight],
    backward: (g) => [new Tensor(k(weight, 'embeddingBackward')(g.storage, ids.storage, N, V, C, weight.dtype), weight.shape, weight.dtype, weight.backend)],
    accumulateInto: (g, into) => { k(weight, 'embeddingBackward')(g.storage, ids.storage, N, V, C, weight.dtype, into.storage); },
  });
}

export interface CrossEntropyRowOptions { ignoreIndex: number; labelSmoothing: number; zLoss: number }

/**
 * Per-row cross-entropy (the fused kernel under every loss): logits [N, V], targets [N] int32 → [N],
 * 0 on ignored rows. Reductions are composed on top (src/loss).
 */
export function crossEntropyRows(logits: Tensor, targets: Tensor, o: CrossEntropyRowOptions): Tensor {
  requireFloat(logits, 'crossEntropy');
  const [N, V] = logits.shape as [number, number];
  if (targets.dtype !== 'int32') throw new TypeError(`crossEntropy: targets must be an int32 tensor of class ids, got ${targets.dtype}`);
  const host = hostInts(targets);
  if (host) validateTargets(host, V, o.ignoreIndex);
  const args = { N, V, ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing, zLoss: o.zLoss };
  const { loss, lse } = k(logits, 'crossEntropy')(logits.storage, targets.storage, args, logits.dtype);
  return makeResult(loss, [N], logits.dtype, logits.backend, {
    name: 'crossEntropy',
    inputs: [logits],
    backward: (g) => [new Tensor(k(logits, 'crossEntropyBackward')(logits.storage, lse, targets.storage, g.storage, args, logits.dtype),
      logits.shape, logits.dtype, logits.backend)],
  });
}

// ---- host-side validation (before upload: kernels never read ids on the host) ---------------------------------

/** Every token id is in [0, V). */
export function validateTokenIds(ids: Int32Array, V: number): void {
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n]!;
    if (id < 0 || id >= V) {
      throw new RangeError(`embedding: token id ${id} at position ${n} is outside the vocabulary [0, ${V}); ` +
        `check the tokenizer's vocab size against the model's vocab_size (${V})`);
    }
  }
}

/** Every target is a class id in [0, V) or ignoreIndex. */
export function validateTargets(t: Int32Array, V: number, ignoreIndex: number): void {
  for (let n = 0; n < t.length; n++) {
    const y = t[n]!;
    if (y !== ignoreIndex && (y < 0 || y >= V)) {
      throw new RangeError(`cross-entropy: target ${y} at row ${n} is outside [0, ${V}) (vocab size ${V}) and is not ` +
        `ignoreIndex (${ignoreIndex}); fix the labels or mark the position with ${ignoreIndex}`);
    }
  }
}

// ---- multi-tensor ops (gradient clipping, optimizers): one kernel call for a whole list --------------------

/**
 * The global norm of `tensors` (2 by default, any p ≥ 1, or Infinity) as a device scalar [] — one reduction over
 * all of them, nothing read on the host. Without a `globalNorm` kernel it is composed from per-tensor ops.
 */
export function globalNorm(tensors: readonly Tensor[], normType = 2): Tensor {
  if (tensors.length === 0) throw new RangeError('globalNorm: needs at least one tensor');
  noHalf('globalNorm', ...tensors);
  const first = tensors[0]!;
  for (const t of tensors) { requireFloat(t, 'globalNorm'); sameBackend(first, t, 'globalNorm'); }
  if (hasKernel(first.backend, 'globalNorm')) {
    const out = k(first, 'globalNorm')(tensors.map((t) => t.storage), tensors.map((t) => t.size), normType, first.dtype);
    return new Tensor(out, [], first.dtype, first.backend);
  }
  // composed fallback (MLX's way): per-tensor reductions on the device, combined on the device
  const parts = tensors.map((t) => {
    const flat = reshape(t.detach(), [t.size]);
    const part = normType === Infinity ? max(abs(flat), 0) : sum(normType === 2 ? square(flat) : powScalar(abs(flat), normType));
    return reshape(part, [1]);
  });
  const all = concat(parts, 0); // [tensors.length]
  if (normType === Infinity) return max(all, 0);
  return normType === 2 ? sqrt(sum(all)) : powScalar(sum(all), 1 / normType);
}

/** x^p for x ≥ 0 (composed: exp(p·log x); 0^p = 0 for p > 0). */
function powScalar(x: Tensor, p: number): Tensor {
  return exp(mul(log(x), p));
}

/**
 * A float32 copy of a half (bfloat16/float16) tensor, on its backend (the embedding kernel gathers every row, so
 * each backend's own conversion runs). A float tensor is returned as it is. Not differentiable (half tensors are frozen).
 */
export function widenHalf(t: Tensor): Tensor {
  if (!isHalf(t.dtype)) return t;
  const rows = t.rank >= 2 ? t.shape[0]! : 1, cols = rows === 0 ? 0 : t.size / rows;
  const ids = new Int32Array(rows);
  for (let i = 0; i < rows; i++) ids[i] = i;
  const idT = tensor(ids, [rows], 'int32', t.backend);
  const out = kernel(t.backend, 'embedding')(t.storage, rows, cols, idT.storage, rows, t.dtype); // [rows, cols]
  idT.dispose();
  return new Tensor(out, t.shape, 'float32', t.backend);
}
