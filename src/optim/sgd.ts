// SGD with PyTorch semantics (torch.optim.SGD): L2 weight decay on the gradient, momentum buffer initialised to
// the first gradient, dampening, Nesterov.

import { kernel } from '../core/index.js';
import { Optimizer, type ParamGroup, type ParamsInput } from './optimizer.js';

export interface SGDGroup extends ParamGroup {
  momentum: number;
  dampening: number;
  nesterov: boolean;
}

export type SGDOptions = Partial<Omit<SGDGroup, 'params'>> & { lr: number };

export class SGD extends Optimizer<SGDGroup> {
  constructor(params: ParamsInput<SGDGroup>, opts: SGDOptions) {
    super(params, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, ...opts });
  }

  protected override validateGroup(g: SGDGroup, gi: number): void {
    super.validateGroup(g, gi);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) {
      throw new RangeError(`SGD: group ${gi}: Nesterov momentum requires momentum > 0 and dampening 0 (as in PyTorch)`);
    }
  }

  step(): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        if (!p.grad) continue;
        const st = this.stateOf(p);
        const firstStep = st.momentumBuffer === undefined;
        const buf = g.momentum !== 0 ? this.buffer(p, 'momentumBuffer') : null;
        kernel(p.backend, 'sgdStep')(p.storage, p.grad.storage, buf ? buf.storage : null, {
          lr: g.lr, momentum: g.momentum, dampening: g.dampening, nesterov: g.nesterov, weightDecay: g.weightDecay, firstStep,
        }, p.dtype);
      }
    }
  }
}
