// Gradient clipping with torch.nn.utils semantics.

import { type Tensor, abs, kernel, max, noGrad, reshape, square, sum } from '../core/index.js';

export interface ClipOptions {
  /** 2 (default), any p ≥ 1, or Infinity (max-abs). */
  normType?: number;
  /** Throw when the total norm is NaN or infinite instead of scaling by it. Default false (as torch). */
  errorIfNonfinite?: boolean;
}

/** The global norm of all gradients (of the given type), as one number. */
export async function gradNorm(params: Iterable<Tensor>, normType = 2): Promise<number> {
  const grads = [...params].map((p) => p.grad).filter((g): g is Tensor => g !== null);
  if (grads.length === 0) return 0;
  let total = 0;
  for (const g of grads) {
    const flat = reshape(g, [g.size]);
    if (normType === Infinity) {
      total = Math.max(total, await noGrad(() => max(abs(flat), 0)).item());
    } else if (normType === 2) {
      total += await noGrad(() => sum(square(flat))).item();
    } else {
      const a = (await flat.data()) as Float32Array;
      let s = 0;
      for (let i = 0; i < a.length; i++) s += Math.abs(a[i]!) ** normType;
      total += s;
    }
  }
  return normType === Infinity ? total : normType === 2 ? Math.sqrt(total) : total ** (1 / normType);
}

/**
 * Scales all gradients so their global norm is at most maxNorm (torch.nn.utils.clip_grad_norm_): coefficient
 * maxNorm / (total + 1e-6), clamped to 1. Returns the total norm before clipping.
 */
export async function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipOptions = {}): Promise<number> {
  const normType = opts.normType ?? 2;
  if (!(normType >= 1 || normType === Infinity)) throw new RangeError(`clipGradNorm: normType must be ≥ 1 or Infinity, got ${normType}`);
  if (!(maxNorm > 0)) throw new RangeError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const list = [...params];
  const total = await gradNorm(list, normType);
  if (opts.errorIfNonfinite && !Number.isFinite(total)) {
    throw new Error(`clipGradNorm: the total norm of order ${normType} of the gradients is ${total}; ` +
      'some gradient is NaN or infinite (check the learning rate, the data, or use loss scaling)');
  }
  scaleGrads(list, clipCoefficient(total, maxNorm));
  return total;
}

/** torch's clip coefficient: maxNorm / (total + 1e-6), clamped to 1. */
export function clipCoefficient(totalNorm: number, maxNorm: number): number {
  return Math.min(1, maxNorm / (totalNorm + 1e-6));
}

/** grad *= coef for every parameter with a gradient (no-op for coef = 1). */
export function scaleGrads(params: Iterable<Tensor>, coef: number): void {
  if (coef === 1) return;
  for (const p of params) if (p.grad) kernel(p.backend, 'scaleInPlace')(p.grad.storage, coef, p.grad.dtype);
}

/** Clamps every gradient entry to [−clipValue, clipValue] (torch.nn.utils.clip_grad_value_). */
export async function clipGradValue(params: Iterable<Tensor>, clipValue: number): Promise<void> {
  if (!(clipValue > 0)) throw new RangeError(`clipGradValue: clipValue must be > 0, got ${clipValue}`);
  for (const p of params) {
    if (!p.grad) continue;
    const a = await p.grad.data();
    for (let i = 0; i < a.length; i++) a[i] = Math.min(clipValue, Math.max(-clipValue, a[i]!));
    p.grad.storage = p.backend.upload(a);
  }
}
