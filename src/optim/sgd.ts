// SGD with PyTorch semantics (torch.optim.SGD): L2 weight decay on the gradient, momentum buffer initialised to
// the first gradient, dampening, Nesterov.

import { type Tensor, kernel } from '../core/index.js';
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

  protected override stateBuffers(g: SGDGroup): readonly string[] {
    return g.momentum !== 0 ? ['momentumBuffer'] : [];
  }

  protected updateGroup(g: SGDGroup, params: Tensor[], gate: Tensor | null): void {
    // the momentum buffer starts as the first gradient: "first" = no completed step (older checkpoints carry no
    // step count, only the buffer)
    const firstStep = params.map((p) => {
      const st = this.stateOf(p);
      return st.step === undefined ? st.momentumBuffer === undefined : st.step === 0;
    });
    params.forEach((p) => this.advance(p));
    kernel(params[0]!.backend, 'sgdStep')({
      params: params.map((p) => p.storage), grads: params.map((p) => p.grad!.storage),
      bufs: g.momentum !== 0 ? params.map((p) => this.buffer(p, 'momentumBuffer').storage) : null,
      sizes: params.map((p) => p.size), firstStep,
    }, { lr: g.lr, momentum: g.momentum, dampening: g.dampening, nesterov: g.nesterov, weightDecay: g.weightDecay },
    gate ? gate.storage : null, params[0]!.dtype);
  }
}
