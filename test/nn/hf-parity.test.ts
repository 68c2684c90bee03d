// Parity with Hugging Face transformers on the reference fixtures (see test/fixtures/*/README or reference.json).
// Float32 parity on every fixture (loss, logits, gradients, fused loss, accumulation, greedy tokens) runs in the
// conformance suite, for every backend; here the float64 references pin the loss to 1e-12 on ref.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { countCausalTargets, parseSafetensors, refBackend, tensor } from '../../src/index.js';
import { fixturePath } from '../helpers.js';
import { checkHfParity } from '../conformance/suite.js';

test('the hf-llama-tiny fixture has 34 valid shifted targets', () => {
  const labels = parseSafetensors(readFileSync(fixturePath('hf-llama-tiny', 'reference.safetensors'))).tensors.get('labels')!;
  assert.equal(countCausalTargets(tensor(labels.data, labels.shape, 'int32')), 34);
});

test('parity in float64: loss to 1e-12 on the pure-float64 references', async () => {
  await checkHfParity(refBackend, 'llama-tied-gqa4', { dtype: 'float64', lossTol: 1e-12 });
  await checkHfParity(refBackend, 'llama-mha-bias-llama3', { dtype: 'float64', lossTol: 1e-12 });
});
