// Small deterministic batch sources for trainer tests.
import {
  AdamW, type Batch, type BatchSource, LRScheduler, type LlamaConfigInput, type LlamaForCausalLM, RNG, Trainer, type TrainerOptions, decayGroups,
  warmupCosine,
} from '../../src/index.js';
import { saveCheckpoint } from '../../src/node.js';

/** Cycles over a fixed list of batches; its position is its state. */
export class ListSource implements BatchSource {
  private i = 0;
  constructor(private readonly batches: Batch[]) {}
  next(): Batch | null { return this.batches[this.i++ % this.batches.length] ?? null; }
  state(): unknown { return { i: this.i }; }
  loadState(s: unknown): void { this.i = (s as { i: number }).i; }
}

/** Random right-padded batches [b, T] over a vocab, labels = ids with -100 on padding. */
export function randomBatches(n: number, b: number, T: number, V: number, seed: number): Batch[] {
  const rng = new RNG(seed);
  return Array.from({ length: n }, () => {
    const inputIds = new Int32Array(b * T), labels = new Int32Array(b * T), attentionMask = new Int32Array(b * T);
    for (let r = 0; r < b; r++) {
      const len = 2 + rng.int(T - 1);
      for (let t = 0; t < T; t++) {
        const i = r * T + t, real = t < len;
        inputIds[i] = real ? rng.int(V) : 0;
        labels[i] = real ? inputIds[i]! : -100;
        attentionMask[i] = real ? 1 : 0;
      }
    }
    return { shape: [b, T] as const, inputIds, labels, attentionMask };
  });
}

export const cfg: LlamaConfigInput = {
  vocabSize: 48, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
  initializerRange: 0.1, tieWordEmbeddings: true,
};

export function makeTrainer(model: LlamaForCausalLM, source: ListSource, extra: Partial<TrainerOptions> = {}): Trainer {
  const optimizer = extra.optimizer ?? new AdamW(decayGroups(model.namedParameters(), 0.1), { lr: 1e-2, betas: [0.9, 0.95] });
  const scheduler = new LRScheduler(optimizer, warmupCosine({ warmupSteps: 2, totalSteps: 8, minLrRatio: 0.1 }));
  return new Trainer({ model, optimizer, scheduler, train: source, gradAccumSteps: 2, maxSteps: 8, clipGradNorm: 1.0,
    checkpointWriter: saveCheckpoint, ...extra });
}

