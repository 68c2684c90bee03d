// Evaluation: plain next-token NLL (no smoothing, no z-loss), weighted by tokens over the whole set.

import { noGrad, withScope } from '../core/index.js';
import type { LlamaForCausalLM } from '../nn/index.js';
import { type Batch, countTargets, toTensors } from './batch.js';

export interface EvalResult {
  /** Mean NLL per target token, in nats. */
  loss: number;
  perplexity: number;
  /** Total NLL in bits / UTF-8 bytes of the targets; null when the batches do not carry byte counts. */
  bitsPerByte: number | null;
  tokens: number;
}

export function evaluate(model: LlamaForCausalLM, batches: Iterable<Batch>): EvalResult {
  const wasTraining = model.training;
  model.eval();
  let nats = 0, tokens = 0, bytes = 0, haveBytes = true;
  try {
    for (const b of batches) {
      const n = countTargets(b);
      if (n === 0) continue;
      // one scope per batch: its inputs and activations are freed as soon as its loss is read
      const l = withScope(model.backend, () => {
        const t = toTensors(b, model.backend);
        return noGrad(() => model.forward(t.inputIds, {
          attentionMask: t.attentionMask, labels: t.labels, positionIds: t.positionIds, documentIds: t.documentIds, numItemsInBatch: n,
          fusedLoss: true, // only the loss is needed: never form the logits
        }).loss!.dataSync()[0]!);
      });
      nats += l * n; // sum over targets
      tokens += n;
      if (b.targetBytes === undefined) haveBytes = false; else bytes += b.targetBytes;
    }
  } finally {
    model.train(wasTraining);
  }
  if (tokens === 0) throw new Error('evaluate: the evaluation set has no target tokens (every label is -100 or rows are one token long)');
  const loss = nats / tokens;
  return { loss, perplexity: Math.exp(loss), bitsPerByte: haveBytes && bytes > 0 ? nats / Math.LN2 / bytes : null, tokens };
}
