// Token shard files: the byte layout (header written out by hand), windows read at file offsets, and bad data
// (ids ≥ vocab named by file and token offset, truncated files, wrong magic, empty files).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, decodeTokenShard, encodeTokenShard, TokenWindowDataset, packedCollate } from '../../src/data/index.js';
import { TokenShardDataset, TokenShardWriter, encodeDocumentsToShard, readTokenShardHeader, validateTokenShardFile, writeTokenShardFile } from '../../src/data/node.js';

const dir = mkdtempSync(join(tmpdir(), 'llamatrain-shards-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('byte layout: magic, version, width, count, vocab, little-endian ids', () => {
  const bytes = encodeTokenShard([1, 2, 65535], { vocabSize: 65536 });
  const expected = [
    ...'LTTOKENS'.split('').map((c) => c.charCodeAt(0)),
    1, 0, 0, 0, // version 1
    2, 0, 0, 0, // 2 bytes per token (uint16)
    3, 0, 0, 0, 0, 0, 0, 0, // 3 tokens (u64)
    0, 0, 1, 0, // vocabSize 65536
    0, 0, 0, 0, // reserved
    1, 0, 2, 0, 0xff, 0xff,
  ];
  assert.deepEqual(Array.from(bytes), expected);
  const wide = encodeTokenShard([70000], { vocabSize: 100000 });
  assert.deepEqual(Array.from(wide.subarray(12, 16)), [4, 0, 0, 0]);
  assert.deepEqual(Array.from(wide.subarray(32)), [0x70, 0x11, 0x01, 0x00]); // 70000 = 0x011170
  const { header, tokens } = decodeTokenShard(wide);
  assert.equal(header.dtype, 'uint32');
  assert.deepEqual(Array.from(tokens), [70000]);
  assert.throws(() => encodeTokenShard([5], { vocabSize: 5 }), /token id 5 at token offset 0 is ≥ vocabSize 5/);
});

test('a streamed writer and the file-backed dataset: windows at offsets, across several files', () => {
  const a = join(dir, 'a.bin'), b = join(dir, 'b.bin');
  const w = new TokenShardWriter(a, { vocabSize: 1000 });
  for (let start = 0; start < 100; start += 30) w.append(Array.from({ length: Math.min(30, 100 - start) }, (_, i) => start + i));
  const h = w.close();
  assert.equal(h.tokenCount, 100);
  assert.equal(readFileSync(a).length, 32 + 100 * 2);
  writeTokenShardFile(b, Array.from({ length: 25 }, (_, i) => 500 + i), { vocabSize: 1000 });
  assert.deepEqual(readTokenShardHeader(b), { version: 1, dtype: 'uint16', bytesPerToken: 2, tokenCount: 25, vocabSize: 1000 });

  const ds = new TokenShardDataset([a, b], { seqLen: 10 });
  assert.equal(ds.length, 10 + 2); // 100 → 10 windows; 25 → 2 (tail of 5 unused, windows never cross files)
  assert.deepEqual(Array.from(ds.get(3).inputIds), [30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
  assert.deepEqual(Array.from(ds.get(11).inputIds), [510, 511, 512, 513, 514, 515, 516, 517, 518, 519]);
  assert.deepEqual(Array.from(ds.get(11).labels), [-100, 511, 512, 513, 514, 515, 516, 517, 518, 519]);
  const strided = new TokenShardDataset(a, { seqLen: 10, stride: 5 });
  assert.equal(strided.length, 19);
  assert.deepEqual(Array.from(strided.get(1).inputIds), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  // a shuffled loader over the shard gives fixed-shape batches
  const batch = new DataLoader({ dataset: ds, batchSize: 4, shuffle: true, seed: 3, collate: packedCollate }).nextBatch();
  assert.deepEqual(batch.shape, [4, 10]);
  ds.close();
  strided.close();
});

test('EOS in the stream starts a new document inside a window', () => {
  const p = join(dir, 'eos.bin');
  writeTokenShardFile(p, [5, 6, 0, 7, 8, 9, 0, 4], { vocabSize: 10 });
  const ds = new TokenShardDataset(p, { seqLen: 8, eosId: 0 });
  const r = ds.get(0);
  assert.deepEqual(Array.from(r.labels), [-100, 6, 0, -100, 8, 9, 0, -100]);
  assert.deepEqual(Array.from(r.documentIds), [0, 0, 0, 1, 1, 1, 1, 2]);
  ds.close();
  const mem = new TokenWindowDataset([5, 6, 0, 7, 8, 9, 0, 4], { seqLen: 4, eosId: 0 });
  assert.equal(mem.length, 2);
  assert.deepEqual(Array.from(mem.get(1).positionIds), [0, 1, 2, 0]);
});

test('a token id ≥ vocab in a shard: the error names the file and the token offset', () => {
  const p = join(dir, 'bad-ids.bin');
  const tokens = Array.from({ length: 40 }, (_, i) => i % 7);
  tokens[27] = 999;
  writeTokenShardFile(p, tokens, { dtype: 'uint16' }); // no vocab recorded: the writer cannot check
  const ds = new TokenShardDataset(p, { seqLen: 10, vocabSize: 500 });
  assert.doesNotThrow(() => ds.get(1));
  assert.throws(() => ds.get(2), (e: Error) => e.message.includes(`${p}: token id 999 at token offset 27 is ≥ vocabSize 500`));
  ds.close();
  assert.throws(() => validateTokenShardFile(p, 500, 8), (e: Error) => e.message.includes(`${p}: token id 999 at token offset 27`));
  // the vocab size recorded in the header is enforced by default
  const q = join(dir, 'recorded.bin');
  writeFileSync(q, encodeTokenShard([1, 2, 3, 0], { vocabSize: 4, dtype: 'uint16' }).fill(9, 32 + 2 * 2, 32 + 2 * 2 + 1));
  const ds2 = new TokenShardDataset(q, { seqLen: 4 });
  assert.throws(() => ds2.get(0), (e: Error) => e.message.includes(`${q}: token id 9 at token offset 2 is ≥ vocabSize 4`));
  ds2.close();
  // the writer refuses ids outside the vocab it is told about
  assert.throws(() => writeTokenShardFile(join(dir, 'w.bin'), [1, 70], { vocabSize: 50 }), /w\.bin: token id 70 at token offset 1 is ≥ vocabSize 50/);
});

test('truncated, foreign, empty and too-short shards are rejected with the file name', () => {
  const good = encodeTokenShard([1, 2, 3, 4], { vocabSize: 10 });
  const cut = join(dir, 'cut.bin');
  writeFileSync(cut, good.subarray(0, good.length - 1));
  assert.throws(() => readTokenShardHeader(cut), (e: Error) => e.message.startsWith(`${cut}: header says 4 tokens`) && /truncated or corrupt/.test(e.message));
  const foreign = join(dir, 'foreign.bin');
  writeFileSync(foreign, Buffer.concat([Buffer.from('NOTASHRD'), Buffer.alloc(40)]));
  assert.throws(() => readTokenShardHeader(foreign), /foreign\.bin: not a llamatrain token shard/);
  const empty = join(dir, 'empty.bin');
  writeFileSync(empty, '');
  assert.throws(() => new TokenShardDataset(empty, { seqLen: 4 }), /empty\.bin: file is empty \(0 bytes\)/);
  const short = join(dir, 'short.bin');
  writeTokenShardFile(short, [1, 2, 3], { vocabSize: 10 });
  assert.throws(() => new TokenShardDataset(short, { seqLen: 4 }), /dataset is empty: expected at least one window of 4 tokens, found 0 in .*short\.bin/);
  assert.throws(() => new TokenShardDataset(join(dir, 'missing.bin'), { seqLen: 4 }),
    /missing\.bin: no such file or directory \(while reading a token shard\); check the path$/);
  // the same wording as the model files (io/files.ts): a write into a missing directory says what to check
  assert.throws(() => writeTokenShardFile(join(dir, 'no-dir', 'x.bin'), [1], { vocabSize: 10 }),
    /no-dir\/x\.bin\.tmp-\d+: no such file or directory \(while writing a token shard\); check the path and that its directory exists/);
});

test('encodeDocumentsToShard streams documents (async iterable) into a shard with EOS after each', async () => {
  const p = join(dir, 'docs.bin');
  async function* docs() { yield 'ab'; yield 'é'; }
  const encode = (s: string) => Array.from(Buffer.from(s, 'utf8')); // a byte "tokenizer"
  const r = await encodeDocumentsToShard(p, docs(), encode, { vocabSize: 257, eosId: 256 });
  assert.deepEqual(r, { documents: 2, tokens: 6, bytes: 4 });
  const ds = new TokenShardDataset(p, { seqLen: 6, eosId: 256 });
  assert.deepEqual(Array.from(ds.get(0).inputIds), [97, 98, 256, 0xc3, 0xa9, 256]);
  assert.deepEqual(Array.from(ds.get(0).documentIds), [0, 0, 0, 1, 1, 1]);
  ds.close();
  await assert.rejects(encodeDocumentsToShard(join(dir, 'none.bin'), [], encode), /none\.bin: no documents to write/);
});
