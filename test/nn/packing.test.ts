// Packed rows: documents concatenated in one row must not see each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LlamaForCausalLM, type Tensor, tensor } from '../../src/index.js';

const ints = (a: number[], shape: number[]) => tensor(Int32Array.from(a), shape, 'int32');

test('packing: a token of document B never attends to document A nor is predicted from it', () => {
  const model = new LlamaForCausalLM({
    vocabSize: 30, hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
    initializerRange: 0.3,
  }, { seed: 2, dtype: 'float64' });
  const docA = [5, 6, 7, 8], docB = [9, 10, 11];
  const ids = ints([...docA, ...docB], [1, 7]);
  const positionIds = ints([0, 1, 2, 3, 0, 1, 2], [1, 7]);
  const documentIds = ints([0, 0, 0, 0, 1, 1, 1], [1, 7]);
  // Loss on B only: labels -100 on A and on B's first token (nothing of B precedes it).
  const labelsB = ints([-100, -100, -100, -100, -100, 10, 11], [1, 7]);
  const emb = model.model.embedTokens.weight.dataSync();
  const embeds = tensor(Float64Array.from([...docA, ...docB].flatMap((id) => Array.from(emb.subarray(id * 16, id * 16 + 16)))), [1, 7, 16], 'float64').requireGrad();
  const { logits, loss } = model.forward(ids, { positionIds, documentIds, labels: labelsB, inputsEmbeds: embeds });
  loss!.backward();
  const g = embeds.grad!.dataSync();
  assert.ok(g.subarray(0, 4 * 16).every((x) => x === 0), 'd loss_B / d embeddings of A must be exactly 0');
  assert.ok(g.subarray(4 * 16).some((x) => x !== 0), 'B’s own embeddings do get a gradient');
  // B's logits equal running B alone.
  const alone = model.forward(ints(docB, [1, 3])).logits.dataSync();
  const packed = (logits as Tensor).dataSync().subarray(4 * 30);
  for (let i = 0; i < alone.length; i++) assert.ok(Math.abs(alone[i]! - packed[i]!) < 1e-12);
});
