// Evaluation: plain next-token NLL (no smoothing, no z-loss), weighted by tokens over the whole set. Each batch's
// loss stays a device scalar; all of them are read together at the end.

import { type Tensor, concat, noGrad, reshape, withScope } from '../core/index.js';
import type { TrainableModel } from './model.js';
import { type Batch, countTargets, toTensors } from './batch.js';

export interface EvalResult {
  /** Mean NLL per target token, in nats. */
  loss: number;
  perplexity: number;
  /** Total NLL in bits / UTF-8 bytes of the targets; null when the batches do not carry byte counts. */
  bitsPerByte: number | null;
  tokens: number;
}

export async function evaluate(model: TrainableModel, batches: Iterable<Batch>): Promise<EvalResult> {
  const wasTraining = model.training;
  model.eval();
  const losses: Tensor[] = []; // [1] each, kept out of the batches' scopes
  const counts: number[] = [];
  let tokens = 0, bytes = 0, haveBytes = true;
  try {
    for (const b of batches) {
      const n = countTargets(b);
      if (n === 0) continue;
      // one scope per batch: its inputs and activations are freed as soon as its loss is computed
      losses.push(withScope(model.backend, () => {
        const t = toTensors(b, model.backend);
        return noGrad(() => reshape(model.forward(t.inputIds, {
          attentionMask: t.attentionMask, labels: t.labels, positionIds: t.positionIds, documentIds: t.documentIds, numItemsInBatch: n,
          fusedLoss: true, // only the loss is needed: never form the logits
        }).loss!, [1]));
      }));
      counts.push(n);
      tokens += n;
      if (b.targetBytes === undefined) haveBytes = false; else bytes += b.targetBytes;
    }
    if (tokens === 0) throw new Error('evaluate: the evaluation set has no target tokens (every label is -100 or rows are one token long)');
    const read = await withScope(model.backend, () => noGrad(() => concat(losses, 0)).data());
    let nats = 0;
    counts.forEach((n, i) => { nats += read[i]! * n; }); // sum over targets, in float64
    const loss = nats / tokens;
    return { loss, perplexity: Math.exp(loss), bitsPerByte: haveBytes && bytes > 0 ? nats / Math.LN2 / bytes : null, tokens };
  } finally {
    for (const l of losses) l.dispose();
    model.train(wasTraining);
  }
}
