// Adam and AdamW with PyTorch semantics (torch.optim.Adam / AdamW): bias correction, eps outside the square
// root, amsgrad, weight decay coupled (Adam: L2 added to the gradient) or decoupled (AdamW: p ← p·(1 − lr·wd)).

import { type Tensor, kernel } from '../core/index.js';
import { Optimizer, type ParamGroup, type ParamsInput } from './optimizer.js';

export interface AdamGroup extends ParamGroup {
  betas: [number, number];
  eps: number;
  amsgrad: boolean;
}

export type AdamOptions = Partial<Omit<AdamGroup, 'params'>>;

abstract class AdamBase extends Optimizer<AdamGroup> {
  protected abstract readonly decoupled: boolean;

  protected override validateGroup(g: AdamGroup, gi: number): void {
    super.validateGroup(g, gi);
    const [b1, b2] = g.betas;
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw new RangeError(`${this.constructor.name}: group ${gi} betas must be in [0, 1), got [${b1}, ${b2}]`);
    if (!(g.eps >= 0)) throw new RangeError(`${this.constructor.name}: group ${gi} eps must be ≥ 0, got ${g.eps}`);
  }

  protected override stateBuffers(g: AdamGroup): readonly string[] {
    return g.amsgrad ? ['expAvg', 'expAvgSq', 'maxExpAvgSq'] : ['expAvg', 'expAvgSq'];
  }

  protected updateGroup(g: AdamGroup, params: Tensor[], gate: Tensor | null): void {
    const steps = params.map((p) => this.advance(p));
    const buffers = (name: string) => params.map((p) => this.buffer(p, name).storage);
    kernel(params[0]!.backend, 'adamStep')({
      params: params.map((p) => p.storage), grads: params.map((p) => p.grad!.storage),
      m: buffers('expAvg'), v: buffers('expAvgSq'), vMax: g.amsgrad ? buffers('maxExpAvgSq') : null,
      sizes: params.map((p) => p.size), steps,
    }, {
      lr: g.lr, beta1: g.betas[0], beta2: g.betas[1], eps: g.eps, weightDecay: g.weightDecay, decoupled: this.decoupled, amsgrad: g.amsgrad,
    }, gate ? gate.storage : null, params[0]!.dtype);
  }
}

/** torch.optim.Adam defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weightDecay 0 (L2), amsgrad false. */
export class Adam extends AdamBase {
  protected readonly decoupled = false;
  constructor(params: ParamsInput<AdamGroup>, opts: AdamOptions = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, ...opts });
  }
}

/** torch.optim.AdamW defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weightDecay 0.01 (decoupled), amsgrad false. */
export class AdamW extends AdamBase {
  protected readonly decoupled = true;
  constructor(params: ParamsInput<AdamGroup>, opts: AdamOptions = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, ...opts });
  }
}
