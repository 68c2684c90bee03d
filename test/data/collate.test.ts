// Padding collate: the tutorial's ragged batch (rows of 5 and 6 tokens, each ending with EOS). Expected arrays are
// written out by hand; the "mask on targets" claim is checked end to end through the causal-LM loss's gradient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { padCollate } from '../../src/data/index.js';
import { RNG, causalLMLoss, tensor } from '../../src/index.js';
import { randn } from '../gradcheck.js';

const EOS = 2;
const rows = [
  [5, 0, 7, 3, EOS], // length 5; contains a real token 0
  [4, 6, 0, 8, 1, EOS], // length 6
];

test('ragged rows → right-padded inputIds, attentionMask, labels (-100 on padding, EOS kept), positionIds', () => {
  const b = padCollate({ padId: 0 })(rows);
  assert.deepEqual(b.shape, [2, 6]);
  assert.deepEqual(Array.from(b.inputIds), [5, 0, 7, 3, 2, 0, /**/ 4, 6, 0, 8, 1, 2]);
  assert.deepEqual(Array.from(b.attentionMask), [1, 1, 1, 1, 1, 0, /**/ 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(b.labels), [5, 0, 7, 3, 2, -100, /**/ 4, 6, 0, 8, 1, 2]);
  assert.deepEqual(Array.from(b.positionIds), [0, 1, 2, 3, 4, 0, /**/ 0, 1, 2, 3, 4, 5]);
});

test('the pad id may be a real token id (0, or EOS itself): labels and mask do not change', () => {
  const with0 = padCollate({ padId: 0 })(rows);
  const withEos = padCollate({ padId: EOS })(rows);
  assert.deepEqual(Array.from(withEos.labels), Array.from(with0.labels));
  assert.deepEqual(Array.from(withEos.attentionMask), Array.from(with0.attentionMask));
  assert.deepEqual(Array.from(withEos.inputIds), [5, 0, 7, 3, 2, 2, /**/ 4, 6, 0, 8, 1, 2]);
  // the real 0 in row 0 (position 1) and row 1 (position 2) are still targets
  assert.equal(withEos.labels[1], 0);
  assert.equal(withEos.labels[6 + 2], 0);
});

test('mask on the targets: exactly the positions whose NEXT token is real get gradient; EOS is learned', () => {
  const b = padCollate({ padId: EOS })(rows);
  const [B, T] = b.shape;
  const V = 10;
  const logits = randn([B, T, V], new RNG(5)).requireGrad();
  const loss = causalLMLoss(logits, tensor(b.labels, [B, T], 'int32'));
  loss.backward();
  const g = logits.grad!.dataSync();
  const trained = (bb: number, t: number) => {
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.abs(g[(bb * T + t) * V + v]!);
    return s > 0;
  };
  // By hand: row 0 (5 real tokens) trains positions 0..3 — position 3 predicts the EOS; position 4 (the EOS,
  // attentionMask 1) would predict padding and is NOT trained; position 5 is padding. Row 1 trains 0..4.
  const expected = [[true, true, true, true, false, false], [true, true, true, true, true, false]];
  for (let bb = 0; bb < B; bb++) for (let t = 0; t < T; t++) assert.equal(trained(bb, t), expected[bb]![t], `row ${bb} position ${t}`);
  // a mask built on the inputs would have trained row 0 position 4 (its attentionMask is 1): not what we do
  assert.equal(b.attentionMask[4], 1);
  // EOS learned: the gradient at the position before each EOS pushes the EOS logit up (negative gradient)
  assert.ok(g[(0 * T + 3) * V + EOS]! < 0);
  assert.ok(g[(1 * T + 4) * V + EOS]! < 0);
});

test('left padding, truncation, fixed length, per-item labels', () => {
  const left = padCollate({ padId: 9, padSide: 'left' })(rows);
  assert.deepEqual(Array.from(left.inputIds), [9, 5, 0, 7, 3, 2, /**/ 4, 6, 0, 8, 1, 2]);
  assert.deepEqual(Array.from(left.labels), [-100, 5, 0, 7, 3, 2, /**/ 4, 6, 0, 8, 1, 2]);
  assert.deepEqual(Array.from(left.attentionMask), [0, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(left.positionIds), [0, 0, 1, 2, 3, 4, /**/ 0, 1, 2, 3, 4, 5]);

  const trunc = padCollate({ padId: 0, maxLength: 4 })(rows);
  assert.deepEqual(trunc.shape, [2, 4]);
  assert.deepEqual(Array.from(trunc.inputIds), [5, 0, 7, 3, /**/ 4, 6, 0, 8]);

  const fixed = padCollate({ padId: 0, maxLength: 8, padToMaxLength: true })([[1, 2]]);
  assert.deepEqual(fixed.shape, [1, 8]);
  assert.deepEqual(Array.from(fixed.labels), [1, 2, -100, -100, -100, -100, -100, -100]);

  // SFT-style item with its own labels (prompt masked) keeps them; padding still -100
  const sft = padCollate({ padId: 0 })([{ inputIds: [7, 8, 9], labels: [-100, -100, 9] }, [1, 2, 3, 4]]);
  assert.deepEqual(Array.from(sft.labels), [-100, -100, 9, -100, /**/ 1, 2, 3, 4]);
  assert.deepEqual(Array.from(sft.attentionMask), [1, 1, 1, 0, /**/ 1, 1, 1, 1]);
});

test('bad input: empty batch, negative ids, mismatched labels, bad options', () => {
  assert.throws(() => padCollate({ padId: 0 })([]), /at least one row/);
  assert.throws(() => padCollate({ padId: 0 })([[1, -3]]), /row 0 position 1 holds -3/);
  assert.throws(() => padCollate({ padId: 0 })([{ inputIds: [1, 2], labels: [1] }]), /row 0 has 2 input ids but 1 labels/);
  assert.throws(() => padCollate({ padId: 0 })([[], []]), /every row of the batch is empty/);
  assert.throws(() => padCollate({ padId: 0, padToMaxLength: true }), /padToMaxLength needs maxLength/);
  assert.throws(() => padCollate({ padId: 0.5 }), /padId must be an integer/);
});
