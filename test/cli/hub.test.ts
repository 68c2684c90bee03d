// --model and --from take a Hugging Face Hub id: downloaded from a fake Hub on 127.0.0.1 into a temporary HF_HOME
// (stderr says what downloads), then used from the cache; offline with an empty cache, or a bad id, is a usage error
// (exit status 2) before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainByteLevelBPE } from '../../src/index.js';
import { commitOf, startFakeHub } from '../io/fake-hub.js';
import { runCli } from './helpers.js';

const FIXTURE = 'test/fixtures/hf-llama-tiny';
const ENV_KEYS = ['HF_HOME', 'HF_ENDPOINT', 'HF_HUB_OFFLINE', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN', 'TRANSFORMERS_OFFLINE'] as const;

/** Runs `fn` with these Hub variables (and none of the machine's own). */
async function withEnv<T>(vars: Partial<Record<(typeof ENV_KEYS)[number], string>>, fn: () => Promise<T>): Promise<T> {
  const saved = ENV_KEYS.map((k) => [k, process.env[k]] as const);
  for (const k of ENV_KEYS) delete process.env[k];
  Object.assign(process.env, vars);
  try { return await fn(); } finally {
    for (const [k, v] of saved) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}

test('generate --model=org/name downloads into the Hub cache, then runs from it without a request', async () => {
  const hub = await startFakeHub();
  const home = mkdtempSync(join(tmpdir(), 'llamatrain-hub-cli-'));
  // a byte-level tokenizer of exactly 256 ids, the tiny model's vocabulary
  const tok = trainByteLevelBPE(['the cat sat'], { vocabSize: 256, specialTokens: [] });
  const main = commitOf('main');
  const file = (f: string) => new Uint8Array(readFileSync(join(FIXTURE, f)));
  hub.repos.set('org/tiny', { refs: { main }, commits: { [main]: {
    'config.json': file('config.json'), 'model.safetensors': file('model.safetensors'),
    'tokenizer.json': new TextEncoder().encode(JSON.stringify(tok.toJSON())),
  } } });
  try {
    await withEnv({ HF_HOME: home, HF_ENDPOINT: hub.url }, async () => {
      const argv = ['generate', '--model=org/tiny', '--prompt=the', '--max-new-tokens=4', '--temperature=0', '--backend=ref'];
      const a = await runCli(argv);
      assert.equal(a.code, 0, a.err);
      assert.match(a.err, /llamatrain: downloading org\/tiny model\.safetensors \(\d+ bytes\) \[\d\/3\]/);
      assert.ok(a.out.startsWith('the'), a.out);
      assert.ok(existsSync(join(home, 'hub', 'models--org--tiny', 'snapshots', main, 'model.safetensors')));
      const n = hub.requests.length;
      const b = await runCli(argv);
      assert.equal(b.code, 0, b.err);
      assert.equal(b.out, a.out, 'the same greedy text from the cached model');
      assert.doesNotMatch(b.err, /downloading/);
      assert.equal(hub.requests.length, n, 'no request once cached');
    });
  } finally { await hub.close(); }
});

test('offline with an empty cache, and a malformed id, are usage errors (exit 2) before any work', async () => {
  const home = mkdtempSync(join(tmpdir(), 'llamatrain-hub-cli-'));
  const out = join(home, 'run');
  await withEnv({ HF_HOME: home, HF_HUB_OFFLINE: '1', HF_ENDPOINT: 'http://127.0.0.1:9' }, async () => {
    const r = await runCli(['train', '--from=org/tiny', `--out=${out}`, '--steps=1', '--backend=ref']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /--from org\/tiny: not in the Hugging Face cache \(no .*models--org--tiny\/refs\/main.*Unset HF_HUB_OFFLINE/s);
    assert.equal(existsSync(out), false, 'no run directory');
    const bad = await runCli(['generate', '--model=org--x/tiny', '--backend=ref']);
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /--model org--x\/tiny: no such directory, and not a valid Hugging Face Hub id/);
  });
});
