// Checks that the Hub cache llamatrain writes is the one Python's huggingface_hub reads, and the other way round,
// against the fake Hub of the tests on 127.0.0.1 (never the real one). Needs `npm run build` and a Python with
// huggingface_hub: PYTHON=/path/to/python node tools/hub-python-crosscheck.mjs (default: python3).
//   1. llamatrain downloads org/tiny; Python, offline, finds every file (hf_hub_download, snapshot_download),
//      scan_cache_dir reports the repo with its ref and no warning, and the .no_exist markers read as absent files.
//   2. Python downloads org/tiny (hf_hub_download); llamatrain, offline, resolves it without a request.
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { commitOf, startFakeHub } from '../dist/test/io/fake-hub.js';
import { resolveModelDir } from '../dist/src/node.js';

const python = process.env.PYTHON ?? 'python3';
// the fake Hub answers from this process: Python runs asynchronously beside it
const py = async (code, env) => (await promisify(execFile)(python, ['-c', code], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } })).stdout;
const hub = await startFakeHub();
const F = 'test/fixtures/hf-llama-tiny';
const main = commitOf('main');
const file = (f) => new Uint8Array(readFileSync(join(F, f)));
hub.repos.set('org/tiny', { refs: { main }, commits: { [main]: {
  'config.json': file('config.json'), 'generation_config.json': file('generation_config.json'), 'model.safetensors': file('model.safetensors'),
  'tokenizer.json': new TextEncoder().encode('{"version": "1.0"}'),
} } });
try {
  const a = mkdtempSync(join(tmpdir(), 'hub-xcheck-a-'));
  const snap = await resolveModelDir('org/tiny', { env: { HF_HOME: a, HF_ENDPOINT: hub.url } });
  const out = await py(`
from huggingface_hub import hf_hub_download, snapshot_download, scan_cache_dir, try_to_load_from_cache, _CACHED_NO_EXIST
print(hf_hub_download('org/tiny', 'model.safetensors'))
print(snapshot_download('org/tiny'))
info = scan_cache_dir()
assert not info.warnings, info.warnings
(repo,) = info.repos
print(repo.repo_id, sorted(f.file_name for r in repo.revisions for f in r.files), sorted(ref for r in repo.revisions for ref in r.refs))
print(try_to_load_from_cache('org/tiny', 'special_tokens_map.json') is _CACHED_NO_EXIST)
`, { HF_HOME: a, HF_HUB_OFFLINE: '1' });
  assert.deepEqual(out.trim().split('\n'), [join(snap, 'model.safetensors'), snap,
    "org/tiny ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json'] ['main']", 'True']);
  console.log('1. Python reads what llamatrain downloaded: ok');

  const b = mkdtempSync(join(tmpdir(), 'hub-xcheck-b-'));
  await py(`
from huggingface_hub import hf_hub_download
for f in ['config.json', 'model.safetensors', 'tokenizer.json']: hf_hub_download('org/tiny', f)
`, { HF_HOME: b, HF_ENDPOINT: hub.url });
  const n = hub.requests.length;
  assert.equal(await resolveModelDir('org/tiny', { env: { HF_HOME: b, HF_HUB_OFFLINE: '1' } }), join(b, 'hub', 'models--org--tiny', 'snapshots', main));
  assert.equal(hub.requests.length, n);
  console.log('2. llamatrain reads what Python downloaded, offline: ok');
} finally { await hub.close(); }
