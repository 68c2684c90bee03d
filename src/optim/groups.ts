// Parameter groups for weight decay: matrices decay, 1-D parameters (norm weights, biases) do not; embeddings
// optionally do not (a common choice for small models).

import type { Tensor } from '../core/index.js';
import type { ParamGroup } from './optimizer.js';

export function decayGroups(named: Iterable<[string, Tensor]>, weightDecay: number,
                            opts: { decayEmbeddings?: boolean } = {}): (Partial<ParamGroup> & { params: Tensor[] })[] {
  const decay: Tensor[] = [], noDecay: Tensor[] = [];
  for (const [name, p] of named) {
    const isEmbedding = name.endsWith('embed_tokens.weight');
    if (p.rank < 2 || (isEmbedding && opts.decayEmbeddings === false)) noDecay.push(p);
    else decay.push(p);
  }
  return [{ params: decay, weightDecay }, { params: noDecay, weightDecay: 0 }].filter((g) => g.params.length > 0);
}
