// Building blocks: Linear, Embedding, RMSNorm. Weights follow PyTorch layouts (Linear.weight is [out, in]).

import {
  type Backend, type DType, type HalfDType, InputError, RNG, Tensor, add, embedding, getBackend, loraAdd, matmul, reshape,
  rmsNorm, tensor, zeros, arrayFor, ones,
} from '../core/index.js';
import { Module } from './module.js';

export interface InitOptions {
  dtype?: DType;
  backend?: Backend;
  /** Draws the initial weights; omitted → zeros (fine when a checkpoint is loaded right after). */
  rng?: RNG;
  /** Std of the normal init. */
  std?: number;
  /** Linear and Embedding weights are frozen zeros in this 2-byte storage (a half checkpoint is loaded into them). */
  frozenDtype?: HalfDType;
}

/** The weight matrix of a Linear/Embedding: normalInit, or frozen half zeros with `frozenDtype`. */
function weightInit(shape: number[], o: InitOptions): Tensor {
  if (!o.frozenDtype) return normalInit(shape, o);
  if (o.frozenDtype !== 'bfloat16' && o.frozenDtype !== 'float16') {
    throw new InputError(`frozenDtype must be 'bfloat16' or 'float16', found ${JSON.stringify(o.frozenDtype)}`, { source: 'frozenDtype' });
  }
  const be = o.backend ?? getBackend();
  const n = shape.reduce((p, d) => p * d, 1);
  return new Tensor(be.upload(new Uint16Array(n), o.frozenDtype), shape, o.frozenDtype, be); // [rows, cols] half bits, frozen
}

/** N(0, std²) tensor from `rng` (zeros without an rng). */
export function normalInit(shape: number[], o: InitOptions): Tensor {
  const dtype = o.dtype ?? 'float32';
  if (!o.rng) return zeros(shape, dtype, o.backend ?? getBackend());
  const n = shape.reduce((p, d) => p * d, 1);
  const a = arrayFor(dtype, n);
  const std = o.std ?? 0.02;
  for (let i = 0; i < n; i++) a[i] = o.rng.normal() * std;
  return tensor(a, shape, dtype, o.backend);
}

/**
 * A low-rank adapter on a Linear (LoRA): y += scaling · dropout(x) · Aᵀ · Bᵀ. It lives outside the module tree
 * (the model's parameters and checkpoints stay the base model's); src/peft attaches and owns it.
 */
export interface LinearAdapter {
  /** [r, in] */
  readonly a: Tensor;
  /** [out, r] */
  readonly b: Tensor;
  readonly scaling: number;
  /** x → dropout(x) while training (identity when the rate is 0 or in eval mode). */
  dropout(x: Tensor): Tensor;
}

export class Linear extends Module {
  readonly weight: Tensor; // [out, in]
  readonly bias: Tensor | null; // [out]
  /** A LoRA adapter (see src/peft), or null. */
  adapter: LinearAdapter | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, bias: boolean, init: InitOptions = {}) {
    super();
    this.weight = this.registerParameter('weight', weightInit([outFeatures, inFeatures], init));
    this.bias = bias ? this.registerParameter('bias', zeros([outFeatures], init.dtype ?? 'float32', init.backend)) : null;
  }

  /** x [..., in] → [..., out] = x · Wᵀ + b */
  forward(x: Tensor): Tensor {
    const lead = x.shape.slice(0, -1);
    const x2 = reshape(x, [-1, this.inFeatures]); // [N, in]
    let y = matmul(x2, this.weight, { transB: true }); // [N, out]
    if (this.bias) y = add(y, this.bias);
    const ad = this.adapter;
    if (ad) y = loraAdd(y, ad.dropout(x2), ad.a, ad.b, ad.scaling); // + scaling · (x Aᵀ) Bᵀ
    return reshape(y, [...lead, this.outFeatures]);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor; // [V, C]

  constructor(readonly numEmbeddings: number, readonly dim: number, init: InitOptions = {}) {
    super();
    this.weight = this.registerParameter('weight', weightInit([numEmbeddings, dim], init));
  }

  /** ids [...] int32 → [..., C]; an id outside [0, V) is a clear error. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

export class RMSNorm extends Module {
  readonly weight: Tensor; // [C]

  constructor(readonly dim: number, readonly eps: number, init: InitOptions = {}) {
    super();
    this.weight = this.registerParameter('weight', ones([dim], init.dtype ?? 'float32', init.backend));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
