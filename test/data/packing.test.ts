// Packing: expected rows written out by hand from the rules in src/data/packing.ts, plus invariants on random
// documents (no label is predicted across a document boundary; positions restart per document).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { documentAttentionMask, packDocuments, packedCollate, segmentWindow, type PackedRow } from '../../src/data/index.js';

const EOS = 2;
const A = [11, 12, 13];
const B = [21, 22];
const C = [31, 32, 33, 34, 35, 36, 37]; // longer than a row once EOS is added (8 > 6)
const X = -100;

const arr = (r: PackedRow) => ({
  inputIds: Array.from(r.inputIds),
  labels: Array.from(r.labels),
  positionIds: Array.from(r.positionIds),
  documentIds: Array.from(r.documentIds),
});

test('streamed packing: -100 at each document start, positions reset, document ids, long document split across rows', () => {
  const rows = packDocuments([A, B, C], { seqLen: 6, eosId: EOS }).map(arr);
  assert.equal(rows.length, 3);
  // row 0: A+EOS, then the first two tokens of B
  assert.deepEqual(rows[0], {
    inputIds: [11, 12, 13, 2, 21, 22],
    labels: [X, 12, 13, 2, X, 22],
    positionIds: [0, 1, 2, 3, 0, 1],
    documentIds: [0, 0, 0, 0, 1, 1],
  });
  // row 1: the rest of B (its EOS) continues as a new segment, then C's first five tokens
  assert.deepEqual(rows[1], {
    inputIds: [2, 31, 32, 33, 34, 35],
    labels: [X, X, 32, 33, 34, 35],
    positionIds: [0, 0, 1, 2, 3, 4],
    documentIds: [0, 1, 1, 1, 1, 1],
  });
  // row 2: the rest of C, padded with the pad id (default: EOS), labels -100, document id -1
  assert.deepEqual(rows[2], {
    inputIds: [36, 37, 2, 2, 2, 2],
    labels: [X, 37, 2, X, X, X],
    positionIds: [0, 1, 2, 0, 0, 0],
    documentIds: [0, 0, 0, -1, -1, -1],
  });
});

test('splitDocuments: false starts a document on a new row when it does not fit; only over-long ones are cut', () => {
  const rows = packDocuments([A, B, C], { seqLen: 6, eosId: EOS, padId: 0, splitDocuments: false }).map(arr);
  assert.deepEqual(rows, [
    { inputIds: [11, 12, 13, 2, 0, 0], labels: [X, 12, 13, 2, X, X], positionIds: [0, 1, 2, 3, 0, 0], documentIds: [0, 0, 0, 0, -1, -1] },
    { inputIds: [21, 22, 2, 0, 0, 0], labels: [X, 22, 2, X, X, X], positionIds: [0, 1, 2, 0, 0, 0], documentIds: [0, 0, 0, -1, -1, -1] },
    { inputIds: [31, 32, 33, 34, 35, 36], labels: [X, 32, 33, 34, 35, 36], positionIds: [0, 1, 2, 3, 4, 5], documentIds: [0, 0, 0, 0, 0, 0] },
    { inputIds: [37, 2, 0, 0, 0, 0], labels: [X, 2, X, X, X, X], positionIds: [0, 1, 0, 0, 0, 0], documentIds: [0, 0, -1, -1, -1, -1] },
  ]);
});

test('dropRemainder, BOS, an EOS already present is not doubled, empty documents are skipped', () => {
  assert.equal(packDocuments([A, B, C], { seqLen: 6, eosId: EOS, dropRemainder: true }).length, 2);
  const rows = packDocuments([[5, 6, EOS], [], [7]], { seqLen: 4, eosId: EOS, bosId: 1 }).map(arr);
  assert.deepEqual(rows.map((r) => r.inputIds), [[1, 5, 6, 2], [1, 7, 2, 2]]);
  assert.deepEqual(rows.map((r) => r.labels), [[X, 5, 6, 2], [X, 7, 2, X]]);
  // no EOS at all: plain concatenation with boundaries still marked
  const plain = packDocuments([[5, 6], [7, 8, 9]], { seqLen: 5 }).map(arr);
  assert.deepEqual(plain, [{ inputIds: [5, 6, 7, 8, 9], labels: [X, 6, X, 8, 9], positionIds: [0, 1, 0, 1, 2], documentIds: [0, 0, 1, 1, 1] }]);
});

test('invariants on random documents: nothing is predicted across a boundary; positions count within a document', () => {
  let seed = 12345;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % n);
  const docs = Array.from({ length: 60 }, () => Array.from({ length: 1 + rand(40) }, () => 3 + rand(100)));
  for (const splitDocuments of [true, false]) {
    const rows = packDocuments(docs, { seqLen: 16, eosId: EOS, splitDocuments });
    // every real token of every document appears exactly once, in order
    const real = rows.flatMap((r) => Array.from(r.inputIds).filter((_, t) => r.documentIds[t]! >= 0));
    assert.deepEqual(real, docs.flatMap((d) => [...d, EOS]));
    for (const r of rows) {
      for (let t = 0; t < 16; t++) {
        const d = r.documentIds[t]!;
        if (t > 0 && r.labels[t] !== X) {
          assert.equal(r.documentIds[t - 1], d, 'a scored target must be predicted from the same document');
          assert.equal(r.positionIds[t], r.positionIds[t - 1]! + 1);
          assert.equal(r.labels[t], r.inputIds[t]);
        }
        if (d >= 0 && (t === 0 || r.documentIds[t - 1] !== d)) {
          assert.equal(r.positionIds[t], 0);
          assert.equal(r.labels[t], X);
        }
        if (d < 0) assert.equal(r.labels[t], X);
      }
    }
  }
});

test('documentAttentionMask: block-diagonal causal; padding sees only padding', () => {
  const ids = Int32Array.from([0, 0, 1, 1, -1, -1]);
  const m = documentAttentionMask(ids, 1, 6);
  const expected = [
    [1, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0],
    [0, 0, 1, 1, 0, 0],
    [0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 1, 1],
  ];
  assert.deepEqual(Array.from({ length: 6 }, (_, i) => Array.from(m.subarray(i * 6, i * 6 + 6))), expected);
});

test('segmentWindow splits a token-stream window after each EOS; packedCollate stacks rows', () => {
  const r = arr(segmentWindow([5, 6, 2, 7, 8, 2, 9], EOS));
  assert.deepEqual(r, {
    inputIds: [5, 6, 2, 7, 8, 2, 9],
    labels: [X, 6, 2, X, 8, 2, X],
    positionIds: [0, 1, 2, 0, 1, 2, 0],
    documentIds: [0, 0, 0, 1, 1, 1, 2],
  });
  const rows = packDocuments([A, B, C], { seqLen: 6, eosId: EOS });
  const b = packedCollate(rows);
  assert.deepEqual(b.shape, [3, 6]);
  assert.deepEqual(Array.from(b.labels.subarray(6, 12)), [X, X, 32, 33, 34, 35]);
  assert.deepEqual(Array.from(b.attentionMask.subarray(12, 18)), [1, 1, 1, 0, 0, 0]);
  assert.throws(() => packedCollate([rows[0]!, segmentWindow([1, 2, 3])]), /packed rows must share one length/);
});

test('bad options and ids', () => {
  assert.throws(() => packDocuments([A], { seqLen: 0 }), /seqLen must be a positive integer/);
  assert.throws(() => packDocuments([[1, -1]], { seqLen: 4 }), /document 0 position 1 holds -1/);
  assert.throws(() => packDocuments([A], { seqLen: 4, appendEos: true }), /appendEos needs eosId/);
});
