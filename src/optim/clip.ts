// Gradient clipping with torch.nn.utils semantics, on the device: the global norm is one reduction over all
// gradients (a device scalar) and clipping multiplies by a coefficient computed on the device from it, so a
// training step needs no read here. clipGradNorm reads the norm once, at its end, to return it as a number.

import { type Tensor, globalNorm, kernel, markReleased } from '../core/index.js';

export interface ClipOptions {
  /** 2 (default), any p ≥ 1, or Infinity (max-abs). */
  normType?: number;
  /** Throw when the total norm is NaN or infinite. Default false (as torch). */
  errorIfNonfinite?: boolean;
}

function checkNormType(normType: number, where: string): void {
  if (!(normType >= 1 || normType === Infinity)) throw new RangeError(`${where}: normType must be ≥ 1 or Infinity, got ${normType}`);
}

function gradsOf(params: Iterable<Tensor>): Tensor[] {
  return [...params].map((p) => p.grad).filter((g): g is Tensor => g !== null);
}

/** The global norm of all gradients as a device scalar [] (null when no parameter has a gradient). No read. */
export function gradNormTensor(params: Iterable<Tensor>, normType = 2): Tensor | null {
  checkNormType(normType, 'gradNormTensor');
  const grads = gradsOf(params);
  return grads.length === 0 ? null : globalNorm(grads, normType);
}

/** The global norm of all gradients (of the given type), as one number (one read). */
export async function gradNorm(params: Iterable<Tensor>, normType = 2): Promise<number> {
  const norm = gradNormTensor(params, normType);
  return norm ? norm.item() : 0;
}

/**
 * Scales every gradient in place by torch's clip coefficient min(1, maxNorm / (norm + 1e-6)), computed on the
 * device from `norm` (a device scalar from gradNormTensor). A non-finite norm leaves the gradients unchanged (so
 * the culprit can still be found; torch would fill them with NaN). No read.
 */
export function clipGradsByNorm(params: Iterable<Tensor>, norm: Tensor, maxNorm: number): void {
  if (!(maxNorm > 0)) throw new RangeError(`clipGradsByNorm: maxNorm must be > 0, got ${maxNorm}`);
  const grads = gradsOf(params);
  if (grads.length === 0) return;
  const be = grads[0]!.backend;
  for (const g of grads) {
    if (g.backend !== be || g.dtype !== grads[0]!.dtype) throw new Error('clipGradsByNorm: gradients on different backends or dtypes');
  }
  kernel(be, 'clipByNorm')(grads.map((g) => g.storage), grads.map((g) => g.size), norm.storage, maxNorm, grads[0]!.dtype);
}

/**
 * Scales all gradients so their global norm is at most maxNorm (torch.nn.utils.clip_grad_norm_): coefficient
 * maxNorm / (total + 1e-6), clamped to 1, applied on the device. Returns the total norm before clipping (read
 * once, after the clipping was queued).
 */
export async function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipOptions = {}): Promise<number> {
  const normType = opts.normType ?? 2;
  checkNormType(normType, 'clipGradNorm');
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const list = [...params];
  const norm = gradNormTensor(list, normType);
  if (!norm) return 0;
  clipGradsByNorm(list, norm, maxNorm);
  const total = await norm.item();
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    throw new Error(`clipGradNorm: the total norm of order ${normType} of the gradients is ${total}; ` +
      'some gradient is NaN or infinite (check the learning rate, the data, or use loss scaling)');
  }
  return total;
}

/** torch's clip coefficient: maxNorm / (total + 1e-6), clamped to 1 (the host form of what clipByNorm computes). */
export function clipCoefficient(totalNorm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (totalNorm + 1e-6));
}

/** grad *= coef for every parameter with a gradient (a host number; no-op for coef = 1). */
export function scaleGrads(params: Iterable<Tensor>, coef: number): void {
  if (coef === 1) return;
  for (const p of params) if (p.grad) kernel(p.backend, 'scaleInPlace')(p.grad.storage, coef, p.grad.dtype);
}

/** Clamps every gradient entry to [−clipValue, clipValue] on the device (torch.nn.utils.clip_grad_value_). */
export function clipGradValue(params: Iterable<Tensor>, clipValue: number): void {
  if (!(clipValue > 0)) throw new RangeError(`clipGradValue: clipValue must be > 0, got ${clipValue}`);
  for (const p of params) {
    const g = p.grad;
    if (!g) continue;
    const old = g.storage;
    g.storage = kernel(p.backend, 'clamp')(old, -clipValue, clipValue, g.dtype); // the same tensor object, new values
    p.backend.memory?.release(old);
    markReleased([old]);
  }
}
