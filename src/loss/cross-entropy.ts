// The loss — the centre of the product.
//
// crossEntropy: torch.nn.functional.cross_entropy semantics over logits [N, V] (or [..., V]) and int32 targets
// [N] (or [...]). causalLMLoss: HF ForCausalLMLoss — the LABELS are shifted (target at t is label t+1, the last
// position gets ignoreIndex), never a shifted copy of the logits; masks therefore live on the targets.
//
// All-ignored batches: PyTorch's 'mean' returns NaN (0/0). We return 0 with a zero gradient instead, so a
// micro-batch without any target (an SFT row with no assistant token, a chunk of pure padding) contributes
// nothing and never poisons training with a silent NaN. 'sum' of nothing is 0 in both.

import { type Tensor, crossEntropyRows, div, hostInts, reshape, sum, tensor } from '../core/index.js';
import { shapeStr } from '../core/dtype.js';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped: no loss, no gradient, not counted by 'mean'. Default -100 (PyTorch, HF). */
  ignoreIndex?: number;
  /** 'mean' (default) divides by the number of non-ignored targets; 'none' returns per-target losses, 0 where ignored. */
  reduction?: Reduction;
  /** ε in [0, 1): target distribution (1−ε)·onehot + ε/V. Default 0. */
  labelSmoothing?: number;
  /** λ ≥ 0: adds λ·logsumexp(logits)² per target (PaLM's z-loss) to keep the softmax normaliser near 1. Default 0. */
  zLoss?: number;
}

interface Resolved { ignoreIndex: number; labelSmoothing: number; zLoss: number }

function resolve(o: CrossEntropyOptions, where: string): Resolved & { reduction: Reduction } {
  const ignoreIndex = o.ignoreIndex ?? -100;
  const labelSmoothing = o.labelSmoothing ?? 0;
  const zLoss = o.zLoss ?? 0;
  const reduction = o.reduction ?? 'mean';
  if (!Number.isInteger(ignoreIndex)) throw new TypeError(`${where}: ignoreIndex must be an integer, got ${ignoreIndex}`);
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new RangeError(`${where}: labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  if (!(zLoss >= 0 && Number.isFinite(zLoss))) throw new RangeError(`${where}: zLoss must be a finite number ≥ 0, got ${zLoss}`);
  if (!['mean', 'sum', 'none'].includes(reduction)) throw new RangeError(`${where}: reduction must be 'mean', 'sum' or 'none', got '${reduction}'`);
  return { ignoreIndex, labelSmoothing, zLoss, reduction };
}

/**
 * The host values of targets / labels (their host copy: tensor() keeps one for int32 data). Counting and shifting
 * happen on the host, from the batch, never by reading the device.
 */
export function hostTargets(t: Tensor, where: string): Int32Array {
  if (t.dtype !== 'int32') throw new TypeError(`${where}: targets must be an int32 tensor of class ids, got ${t.dtype}`);
  const host = hostInts(t);
  if (!host) {
    throw new Error(`${where}: the targets/labels live on backend '${t.backend.name}' without a host copy; make them ` +
      'from host data with tensor(int32Array, shape, \'int32\', backend) (the loss counts and shifts them on the host)');
  }
  return host;
}

/** Number of targets that are not ignoreIndex. */
export function countValid(targets: Int32Array, ignoreIndex = -100): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== ignoreIndex) n++;
  return n;
}

/**
 * Cross-entropy between logits [N, V] (or [..., V]) and int32 targets [N] (or [...]), as
 * torch.nn.functional.cross_entropy with ignore_index, reduction and label_smoothing.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const o = resolve(opts, 'crossEntropy');
  const V = logits.shape[logits.rank - 1]!;
  const lead = logits.shape.slice(0, -1);
  if (logits.rank < 2 || target.rank !== lead.length || target.shape.some((d, i) => d !== lead[i])) {
    throw new RangeError(`crossEntropy: logits ${shapeStr(logits.shape)} need targets of shape ${shapeStr(lead)} ` +
      `(one class id per row of V=${V} logits), got ${shapeStr(target.shape)}`);
  }
  const N = target.size;
  const rows = crossEntropyRows(reshape(logits, [N, V]), reshape(target, [N]), o);
  switch (o.reduction) {
    case 'none': return reshape(rows, target.shape);
    case 'sum': return sum(rows);
    case 'mean': return div(sum(rows), Math.max(1, countValid(hostTargets(target, 'crossEntropy'), o.ignoreIndex)));
  }
}

/** The module form of crossEntropy, holding its options (PyTorch's nn.CrossEntropyLoss). */
export class CrossEntropyLoss {
  constructor(readonly options: CrossEntropyOptions = {}) {
    resolve(options, 'CrossEntropyLoss');
  }
  forward(logits: Tensor, target: Tensor): Tensor {
    return crossEntropy(logits, target, this.options);
  }
}

export interface CausalLMLossOptions {
  ignoreIndex?: number;
  /**
   * The number of valid (non-ignored, shifted) targets in the whole optimizer step. When given, the loss is
   * sum / numItemsInBatch, so gradients accumulated over micro-batches equal the full batch's gradient.
   * When omitted: the mean over this batch's valid targets.
   */
  numItemsInBatch?: number;
  labelSmoothing?: number;
  zLoss?: number;
}

/** Next-token targets from labels [B, T]: target[b, t] = labels[b, t+1]; target[b, T−1] = ignoreIndex. */
export function shiftLabels(labels: Int32Array, B: number, T: number, ignoreIndex = -100): Int32Array {
  const out = new Int32Array(B * T).fill(ignoreIndex);
  for (let b = 0; b < B; b++) out.set(labels.subarray(b * T + 1, b * T + T), b * T);
  return out;
}

/** The number of targets a causal-LM loss will train on: non-ignored labels at positions 1..T−1 of each row. */
export function countCausalTargets(labels: Tensor, ignoreIndex = -100): number {
  const [B, T] = labels.shape as [number, number];
  return countValid(shiftLabels(hostTargets(labels, 'countCausalTargets'), B, T, ignoreIndex), ignoreIndex);
}

/**
 * HF ForCausalLMLoss: logits [B, T, V], labels [B, T] (int32, ignoreIndex where no loss is wanted, e.g. padding).
 * The labels are shifted inside: position t predicts label t+1.
 */
export function causalLMLoss(logits: Tensor, labels: Tensor, opts: CausalLMLossOptions = {}): Tensor {
  const o = resolve({ ...opts, reduction: 'sum' }, 'causalLMLoss');
  if (logits.rank !== 3 || labels.rank !== 2 || labels.shape[0] !== logits.shape[0] || labels.shape[1] !== logits.shape[1]) {
    throw new RangeError(`causalLMLoss: labels must be [B, T] matching logits [B, T, V]; got logits ${shapeStr(logits.shape)} ` +
      `and labels ${shapeStr(labels.shape)}`);
  }
  const [B, T, V] = logits.shape as [number, number, number];
  const targets = shiftLabels(hostTargets(labels, 'causalLMLoss'), B, T, o.ignoreIndex);
  const valid = countValid(targets, o.ignoreIndex);
  let denom = Math.max(1, valid);
  if (opts.numItemsInBatch !== undefined) {
    const n = opts.numItemsInBatch;
    if (!Number.isInteger(n) || n < valid || (n === 0 && valid > 0)) {
      throw new RangeError(`causalLMLoss: numItemsInBatch must be an integer ≥ this batch's ${valid} valid targets ` +
        `(it counts the valid targets of all micro-batches of the step), got ${n}`);
    }
    denom = Math.max(1, n);
  }
  const t = tensor(targets, [B * T], 'int32', labels.backend);
  const rows = crossEntropyRows(reshape(logits, [B * T, V]), t, o);
  return div(sum(rows), denom);
}
