// Checkpoint files under failure: a save that fails midway (a full disk) leaves no temporary behind and later saves
// work; leftovers of killed saves are removed; pruning never removes what `latest` names; checksums catch damage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaForCausalLM } from '../../src/index.js';
import { loadCheckpoint, removeTemporaries, resolveCheckpoint, saveCheckpoint, verifyCheckpoint } from '../../src/node.js';
import { ListSource, cfg, makeTrainer, randomBatches } from '../train/util.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'llamatrain-ckpt-'));
const trainer = () => makeTrainer(new LlamaForCausalLM(cfg, { seed: 3 }), new ListSource(randomBatches(2, 2, 8, 48, 1)));

test('a save that fails midway (disk full) removes its temporary directory; the previous checkpoint stays; the next save works', async () => {
  const root = tmp();
  const t = trainer();
  await t.train(1);
  await t.saveCheckpoint(root);
  await t.train(2);
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  await assert.rejects(t.saveCheckpoint(root, { beforeCommit: () => { throw full; } }), /ENOSPC/);
  assert.deepEqual(readdirSync(root).sort(), ['latest', 'step-00000001'], 'no .tmp-* left behind');
  assert.equal(readFileSync(join(root, 'latest'), 'utf8').trim(), 'step-00000001');
  assert.equal((await loadCheckpoint(root)).state.step, 1);
  await t.saveCheckpoint(root);
  assert.equal((await loadCheckpoint(root)).state.step, 2);
});

test('leftovers of a killed save are removed by the next save', async () => {
  const root = tmp();
  mkdirSync(join(root, '.tmp-step-00000009-deadbeef'), { recursive: true });
  writeFileSync(join(root, '.tmp-step-00000009-deadbeef', 'model.safetensors'), 'half');
  mkdirSync(join(root, '.old-step-00000003-cafe'));
  const t = trainer();
  await t.train(1);
  await t.saveCheckpoint(root);
  assert.deepEqual(readdirSync(root).sort(), ['latest', 'step-00000001']);
  mkdirSync(join(root, '.tmp-x'));
  assert.deepEqual(await removeTemporaries(root), ['.tmp-x']);
});

test('pruning keeps what latest names: a later, shorter run never leaves latest dangling', async () => {
  const root = tmp();
  const t = trainer();
  await t.train(4);
  await t.saveCheckpoint(root); // step 4
  const u = trainer();
  await u.train(1);
  await u.saveCheckpoint(root); // step 1, written after step 4 (a resume from an earlier step)
  assert.equal(readFileSync(join(root, 'latest'), 'utf8').trim(), 'step-00000001');
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('step-')), ['step-00000001'], 'the abandoned future (step 4) goes');
  await u.train(2); await u.saveCheckpoint(root);
  await u.train(3); await u.saveCheckpoint(root);
  assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('step-')).sort(), ['step-00000002', 'step-00000003'], 'keep 2');
  assert.equal((await loadCheckpoint(root)).state.step, 3);
});

test('a manifest with SHA-256 checksums: a flipped byte is named; a damaged latest falls back to the previous step with a warning', async () => {
  const root = tmp();
  const t = trainer();
  await t.train(1); await t.saveCheckpoint(root);
  await t.train(2); await t.saveCheckpoint(root);
  const manifest = JSON.parse(readFileSync(join(root, 'step-00000002', 'manifest.json'), 'utf8'));
  assert.deepEqual(Object.keys(manifest.files).sort(), ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
  await verifyCheckpoint(join(root, 'step-00000002'));
  const f = join(root, 'step-00000002', 'optimizer.safetensors');
  const b = readFileSync(f); b[b.length - 1] ^= 0x40; writeFileSync(f, b);
  await assert.rejects(verifyCheckpoint(join(root, 'step-00000002')), /step-00000002\/optimizer\.safetensors: SHA-256 checksum mismatch with manifest\.json/);
  await assert.rejects(resolveCheckpoint(join(root, 'step-00000002')), /checksum mismatch/, 'a step directory given directly is checked too');
  const warnings: string[] = [];
  const ck = await loadCheckpoint(root, {}, { onWarning: (m) => warnings.push(m) });
  assert.equal(ck.state.step, 1);
  assert.match(warnings.join(), /optimizer\.safetensors: SHA-256 checksum mismatch .* using the previous intact checkpoint, .*step-00000001/);
  writeFileSync(join(root, 'step-00000001', 'model.safetensors'), 'x'); // both damaged: an error that lists both
  await assert.rejects(loadCheckpoint(root), /no intact checkpoint \(.*step-00000002\/optimizer\.safetensors.*step-00000001\/model\.safetensors: 1 bytes, the manifest says/);
  assert.ok(!existsSync(join(root, 'nothing')));
});
