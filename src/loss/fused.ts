// The loss without the logits: LM head + cross-entropy in chunks of rows, memory O(chunk·V) instead of O(N·V).
//
// Because the loss is the last op of the graph, each chunk's gradient (softmax − target distribution, scaled)
// is turned into dHidden and dWeight right in the forward pass (Liger's FusedLinearCrossEntropy); backward then
// only scales them by the incoming gradient (1 for a plain loss.backward()). reduction 'none' returns per-row
// losses whose upstream gradient is not known in advance, so it recomputes in backward instead.

import {
  InputError, Tensor, div, hostInts, isGradEnabled, isHalf, kernel, knownScalar, makeResult, mul, noGrad, noHalf, shapeStr, sum,
  validateTargets,
} from '../core/index.js';
import { type CrossEntropyOptions, countValid, hostTargets } from './cross-entropy.js';

export interface LinearCrossEntropyOptions extends CrossEntropyOptions {
  /** Valid targets of the whole optimizer step: the loss is sum / numItemsInBatch (gradient accumulation). */
  numItemsInBatch?: number;
  /** Logit soft-cap c (Gemma 2): logits become c·tanh(z/c) before the loss. 0 = off (default). */
  softcap?: number;
  /** Rows per chunk; default keeps a chunk of logits near 4 MB on `ref`. The wasm backend uses at least 512 rows
   *  per chunk (measured faster there); either way the logits never exceed one chunk. */
  chunkSize?: number;
}

/**
 * Cross-entropy of hidden [N, C] · weightᵀ (weight [V, C], the LM head) against targets [N], never holding the
 * [N, V] logits. Same numbers, options and gradients as crossEntropy(matmul(hidden, weight, {transB}), targets).
 */
export function linearCrossEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, opts: LinearCrossEntropyOptions = {}): Tensor {
  const [N, C] = hidden.shape as [number, number];
  const [V, Cw] = weight.shape as [number, number];
  if (hidden.rank !== 2 || weight.rank !== 2 || C !== Cw || targets.rank !== 1 || targets.shape[0] !== N) {
    throw new RangeError(`linearCrossEntropy: expected hidden [N, C], weight [V, C] and targets [N]; got ${shapeStr(hidden.shape)}, ` +
      `${shapeStr(weight.shape)} and ${shapeStr(targets.shape)}`);
  }
  if (targets.dtype !== 'int32') throw new TypeError(`linearCrossEntropy: targets must be int32, got ${targets.dtype}`);
  noHalf('linearCrossEntropy', hidden);
  // a frozen head in its 2-byte storage (bfloat16/float16) is converted next to each GEMM; compute stays float32
  const halfHead = isHalf(weight.dtype);
  if (halfHead && hidden.dtype !== 'float32') {
    throw new InputError(`linearCrossEntropy: a ${weight.dtype} head needs float32 hidden states, got ${hidden.dtype}`, { source: 'linearCrossEntropy' });
  }
  if (!halfHead && hidden.dtype !== weight.dtype) throw new TypeError(`linearCrossEntropy: hidden is ${hidden.dtype}, weight is ${weight.dtype}`);
  const reduction = opts.reduction ?? 'mean';
  const softcap = opts.softcap ?? 0;
  if (!(softcap >= 0)) throw new RangeError(`linearCrossEntropy: softcap must be ≥ 0, got ${softcap}`);
  const labelSmoothing = opts.labelSmoothing ?? 0, zLoss = opts.zLoss ?? 0, ignoreIndex = opts.ignoreIndex ?? -100;
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new RangeError(`linearCrossEntropy: labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  if (!(zLoss >= 0)) throw new RangeError(`linearCrossEntropy: zLoss must be ≥ 0, got ${zLoss}`);
  const chunkSize = opts.chunkSize ?? Math.max(1, Math.floor((1 << 20) / V));
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`linearCrossEntropy: chunkSize must be a positive integer, got ${chunkSize}`);
  const args = { N, C, V, ignoreIndex, labelSmoothing, zLoss, softcap, chunkSize, weightGrad: weight.requiresGrad };
  const host = hostInts(targets);
  if (host) validateTargets(host, V, ignoreIndex);
  const lce = kernel(hidden.backend, 'linearCrossEntropy');
  const run: typeof lce = (h, w, t, a, g, dt) => (halfHead ? lce(h, w, t, a, g, dt, weight.dtype) : lce(h, w, t, a, g, dt));
  const wantGrad = isGradEnabled() && (hidden.requiresGrad || weight.requiresGrad);
  const grads = (dH: object | null, dW: object | null) => [
    dH ? makeResult(dH, hidden.shape, hidden.dtype, hidden.backend) : null,
    dW ? makeResult(dW, weight.shape, weight.dtype, weight.backend) : null,
  ];

  if (reduction === 'none') {
    const { loss } = run(hidden.storage, weight.storage, targets.storage, args, null, hidden.dtype);
    return makeResult(loss, [N], hidden.dtype, hidden.backend, {
      name: 'linearCrossEntropy', inputs: [hidden, weight],
      backward: (g) => {
        const r = run(hidden.storage, weight.storage, targets.storage, args, { rows: g.storage }, hidden.dtype);
        return grads(r.dHidden, r.dWeight);
      },
    });
  }

  // sum / mean: the scalar's own gradient is computed now, then scaled by the upstream gradient.
  let denom = 1;
  if (reduction === 'mean' || opts.numItemsInBatch !== undefined) {
    const valid = countValid(host ?? hostTargets(targets, 'linearCrossEntropy'), ignoreIndex); // host: read once, above
    denom = Math.max(1, valid); // all ignored → 0 with zero gradient, never NaN (as crossEntropy)
    if (opts.numItemsInBatch !== undefined) {
      const n = opts.numItemsInBatch;
      if (!Number.isInteger(n) || n < valid) {
        throw new RangeError(`linearCrossEntropy: numItemsInBatch must be an integer ≥ this batch's ${valid} valid targets, got ${n}`);
      }
      denom = Math.max(1, n);
    }
  }
  const r = run(hidden.storage, weight.storage, targets.storage, args, wantGrad ? { scale: 1 / denom } : null, hidden.dtype);
  // the loss stays on the device: Σ rows / denom, a scalar nothing reads here
  const value = noGrad(() => div(sum(new Tensor(r.loss, [N], hidden.dtype, hidden.backend)), denom));
  const [dH, dW] = grads(r.dHidden, r.dWeight);
  return makeResult(value.storage, [], hidden.dtype, hidden.backend, wantGrad ? {
    name: 'linearCrossEntropy', inputs: [hidden, weight], freshGrads: true, // dW becomes the head's .grad, no copy
    backward: (g) => {
      // the usual loss.backward() seeds 1, which the host knows without a read: hand the gradients over as they are
      const unit = knownScalar(g) === 1;
      return [dH && (unit ? dH : mul(dH, g)), dW && (unit ? dW : mul(dW, g))];
    },
  } : undefined);
}
