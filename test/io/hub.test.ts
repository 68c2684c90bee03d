// Models by Hub id: resolved in the cache layout of Python's huggingface_hub, downloaded into it from a fake Hub on
// 127.0.0.1 (never the real one) when missing, used without a request once there; offline mode, gated and missing
// models, revisions, a snapshot with a shard missing, a local directory named like an id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { parseSafetensors, refBackend, serializeSafetensors } from '../../src/index.js';
import { HubError, hubCacheDir, loadPretrained, parseHubId, resolveModelDir, type HubOptions, type HubProgress } from '../../src/node.js';
import { commitOf, gitOid, startFakeHub, type FakeHub, type Files } from './fake-hub.js';

const FIXTURE = 'test/fixtures/hf-llama-tiny';
const read = (f: string) => new Uint8Array(readFileSync(join(FIXTURE, f)));
const text = (s: string) => new TextEncoder().encode(s);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const TOKENIZER = text(JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { a: 0 }, merges: [] } }));

/** The tiny checkpoint as the Hub would hold it, plus files a model must never download. */
function tinyFiles(): Files {
  return {
    'config.json': read('config.json'), 'generation_config.json': read('generation_config.json'), 'model.safetensors': read('model.safetensors'),
    'tokenizer.json': TOKENIZER, 'tokenizer_config.json': text('{"eos_token": "a"}'), 'README.md': text('# tiny'),
    'pytorch_model.bin': text('pickle, never fetched'), 'onnx/model.onnx': text('never fetched'), 'model.gguf': text('never fetched'),
  };
}

/** The same weights in two shards with model.safetensors.index.json, as transformers' save_pretrained writes them. */
function shardedFiles(): Files {
  const { tensors } = parseSafetensors(read('model.safetensors'));
  const names = [...tensors.keys()].sort();
  const halves = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const shardName = (i: number) => `model-0000${i + 1}-of-00002.safetensors`;
  const files: Files = { 'config.json': read('config.json'), 'tokenizer.json': TOKENIZER };
  const weightMap: Record<string, string> = {};
  halves.forEach((h, i) => {
    files[shardName(i)] = serializeSafetensors(h.map((n) => [n, tensors.get(n)!] as const));
    for (const n of h) weightMap[n] = shardName(i);
  });
  files['model.safetensors.index.json'] = text(JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return files;
}

const MAIN = commitOf('main');
const V2 = commitOf('v2');

async function setup(): Promise<{ hub: FakeHub; home: string; opts: HubOptions; cache: string }> {
  const hub = await startFakeHub();
  const v2 = { ...tinyFiles(), 'config.json': text(JSON.stringify({ ...JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')), num_hidden_layers: 1 })) };
  hub.repos.set('org/tiny', { refs: { main: MAIN, v2: V2 }, commits: { [MAIN]: tinyFiles(), [V2]: v2 } });
  hub.repos.set('org/sharded', { refs: { main: MAIN }, commits: { [MAIN]: shardedFiles() } });
  hub.repos.set('org/gated', { refs: { main: MAIN }, commits: { [MAIN]: tinyFiles() }, token: 'hf_secret' });
  const home = mkdtempSync(join(tmpdir(), 'llamatrain-hub-'));
  // only what the test sets: no HF_TOKEN, HF_HUB_OFFLINE or HF_HUB_CACHE from the machine running the tests
  const opts: HubOptions = { env: { HF_HOME: home, HF_ENDPOINT: hub.url } };
  return { hub, home, opts, cache: join(home, 'hub') };
}

test('a Hub id downloads into an empty cache in the Python layout: refs/main, snapshots/<commit> linking into blobs/', async () => {
  const { hub, opts, cache } = await setup();
  try {
    const events: HubProgress[] = [];
    const dir = await resolveModelDir('org/tiny', { ...opts, onProgress: (p) => events.push(p) });
    const folder = join(cache, 'models--org--tiny');
    assert.equal(dir, join(folder, 'snapshots', MAIN));
    assert.equal(readFileSync(join(folder, 'refs', 'main'), 'utf8'), MAIN);
    const files = tinyFiles();
    const wanted = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
    assert.deepEqual(readdirSync(dir).sort(), wanted);
    for (const f of wanted) {
      // a relative link to the blob, named by the sha256 (LFS files) or the git blob id, as Python names it
      assert.ok(lstatSync(join(dir, f)).isSymbolicLink(), `${f} is a link`);
      const blob = f.endsWith('.safetensors') ? sha256(files[f]) : gitOid(files[f]);
      assert.equal(readlinkSync(join(dir, f)), join('..', '..', 'blobs', blob));
      assert.deepEqual(new Uint8Array(readFileSync(join(folder, 'blobs', blob))), files[f]);
    }
    // never the pickles, ONNX, GGUF or the README
    for (const f of ['pytorch_model.bin', 'model.onnx', 'model.gguf', 'README.md']) {
      assert.ok(!hub.requests.some((r) => r.endsWith(`/${f}`)), `${f} not requested: ${hub.requests.join('\n')}`);
    }
    // files the model lacks are recorded as absent (.no_exist), as Python does
    assert.ok(existsSync(join(folder, '.no_exist', MAIN, 'special_tokens_map.json')));
    assert.ok(existsSync(join(folder, '.no_exist', MAIN, 'model.safetensors.index.json')));
    // one start and one done per file, the done with every byte
    const done = events.filter((e) => e.phase === 'done');
    assert.deepEqual(done.map((e) => e.file).sort(), wanted);
    for (const e of done) assert.equal(e.bytes, files[e.file].byteLength);
    assert.equal(events.filter((e) => e.phase === 'start').length, wanted.length);
    // the snapshot is a model
    const model = await loadPretrained(dir, { backend: refBackend });
    assert.equal(model.config.numHiddenLayers, 2);

    // a second resolve uses the cache: not one request, online or offline
    const before = hub.requests.length;
    assert.equal(await resolveModelDir('org/tiny', opts), dir);
    assert.equal(await resolveModelDir('org/tiny', { ...opts, env: { ...opts.env, HF_HUB_OFFLINE: '1' } }), dir);
    assert.equal(await resolveModelDir(`org/tiny@${MAIN}`, opts), dir, 'a commit hash is a snapshot directly');
    assert.deepEqual(hub.requests.slice(before), []);
  } finally { await hub.close(); }
});

test('HF_HUB_OFFLINE with an empty cache: an error naming the repo, what is missing and where, and no request', async () => {
  const { hub, opts, cache } = await setup();
  try {
    const offline = { ...opts, env: { ...opts.env, HF_HUB_OFFLINE: '1' } };
    await assert.rejects(resolveModelDir('org/tiny', offline), (e: Error) => {
      assert.ok(e instanceof HubError && e.kind === 'offline', String(e));
      assert.ok(e.message.includes(join(cache, 'models--org--tiny', 'refs', 'main')), e.message);
      assert.match(e.message, /^org\/tiny: not in the Hugging Face cache .*unset HF_HUB_OFFLINE/i);
      return true;
    });
    await assert.rejects(resolveModelDir(`org/tiny@${V2}`, offline), new RegExp(`no ${join(cache, 'models--org--tiny', 'snapshots', V2)}`));
    assert.deepEqual(hub.requests, []);
  } finally { await hub.close(); }
});

test('a snapshot with a shard missing is completed (only that shard is fetched); offline, the error names the shard', async () => {
  const { hub, opts } = await setup();
  try {
    const dir = await resolveModelDir('org/sharded', opts);
    const shard2 = 'model-00002-of-00002.safetensors';
    assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model-00001-of-00002.safetensors', shard2, 'model.safetensors.index.json', 'tokenizer.json']);
    // as an interrupted download leaves it: the link and the blob of one shard gone
    rmSync(resolve(dir, readlinkSync(join(dir, shard2))));
    rmSync(join(dir, shard2));
    await assert.rejects(resolveModelDir('org/sharded', { ...opts, offline: true }),
      (e: Error) => e instanceof HubError && e.kind === 'offline' && e.message.includes(`'${shard2}'`) && e.message.includes(dir));
    const before = hub.requests.length;
    const started: string[] = [];
    assert.equal(await resolveModelDir('org/sharded', { ...opts, onProgress: (p) => { if (p.phase === 'start') started.push(p.file); } }), dir);
    assert.deepEqual(started, [shard2], 'only the missing shard downloads');
    const fileRequests = hub.requests.slice(before).filter((r) => r.includes('/resolve/') || r.includes('/paths-info/'));
    assert.ok(fileRequests.length > 0 && fileRequests.every((r) => r.endsWith(shard2) || r.includes('/paths-info/')), fileRequests.join('\n'));
    const model = await loadPretrained(dir, { backend: refBackend });
    const ref = await loadPretrained(FIXTURE, { backend: refBackend });
    const got = new Map(model.namedParameters());
    for (const [n, p] of ref.namedParameters()) assert.deepEqual(got.get(n)!.dataSync(), p.dataSync(), n);
  } finally { await hub.close(); }
});

test('a gated model: 401 says so and how to give a token; HF_TOKEN and the token file give access', async () => {
  const { hub, home, opts } = await setup();
  try {
    await assert.rejects(resolveModelDir('org/gated', { ...opts, token: 'not-a-token' }), /does not start with 'hf_'/);
    await assert.rejects(resolveModelDir('org/gated', opts), (e: Error) => {
      assert.ok(e instanceof HubError && e.kind === 'gated', String(e));
      assert.match(e.message, /org\/gated: the model is gated or private \(HTTP 401\)/);
      assert.match(e.message, /HF_TOKEN=hf_… .*'hf auth login' \('huggingface-cli login' in older versions; it writes .*\/token\)/);
      return true;
    });
    await assert.rejects(resolveModelDir('org/gated', { ...opts, env: { ...opts.env, HF_TOKEN: 'hf_wrong' } }),
      /gated or private \(HTTP 401\)\. The token given has no access/);
    const dir = await resolveModelDir('org/gated', { ...opts, env: { ...opts.env, HF_TOKEN: 'hf_secret' } });
    assert.ok(existsSync(join(dir, 'model.safetensors')));
    // the token file Python's `huggingface-cli login` writes ($HF_HOME/token)
    rmSync(join(home, 'hub'), { recursive: true });
    writeFileSync(join(home, 'token'), 'hf_secret\n');
    assert.equal(await resolveModelDir('org/gated', opts), dir);
  } finally { await hub.close(); }
});

test('no such model: 404 (and the Hub\'s 401 RepoNotFound) say so; a revision that does not exist says so', async () => {
  const { hub, opts } = await setup();
  try {
    await assert.rejects(resolveModelDir('org/nope', opts),
      (e: Error) => e instanceof HubError && e.kind === 'not-found' && /^org\/nope: no such model on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404\), and no local directory/.test(e.message));
    hub.failWith = { status: 401, code: 'RepoNotFound' };
    await assert.rejects(resolveModelDir('org/tiny', opts), (e: Error) => e instanceof HubError && e.kind === 'not-found');
    hub.failWith = null;
    await assert.rejects(resolveModelDir('org/tiny@v9', opts),
      (e: Error) => e instanceof HubError && e.kind === 'revision-not-found' && e.message.includes("no revision 'v9'"));
    hub.failWith = { status: 500 };
    await assert.rejects(resolveModelDir('org/tiny', opts), (e: Error) => e instanceof HubError && e.kind === 'network' && /HTTP 500/.test(e.message));
  } finally { await hub.close(); }
  // nothing listening: a network error that says what to do
  await assert.rejects(resolveModelDir('org/tiny', opts), (e: Error) => e instanceof HubError && e.kind === 'network' && /cannot reach .*HF_HUB_OFFLINE=1/.test(e.message));
});

test('a revision: a branch is recorded in refs/<branch>; a commit hash downloads into its own snapshot', async () => {
  const { hub, opts, cache } = await setup();
  try {
    const folder = join(cache, 'models--org--tiny');
    const dir = await resolveModelDir('org/tiny@v2', opts);
    assert.equal(dir, join(folder, 'snapshots', V2));
    assert.equal(readFileSync(join(folder, 'refs', 'v2'), 'utf8'), V2);
    assert.ok(!existsSync(join(folder, 'refs', 'main')));
    assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).num_hidden_layers, 1, 'the files of v2');
    const byHash = await resolveModelDir(`org/tiny@${MAIN}`, opts);
    assert.equal(byHash, join(folder, 'snapshots', MAIN));
    assert.equal(JSON.parse(readFileSync(join(byHash, 'config.json'), 'utf8')).num_hidden_layers, 2);
    assert.deepEqual(readdirSync(join(folder, 'refs')), ['v2'], 'a commit hash needs no ref');
  } finally { await hub.close(); }
});

test('a cache Python filled with only the files it needed: completed online; used as it is when the Hub is unreachable', async () => {
  const { hub, opts, cache } = await setup();
  const folder = join(cache, 'models--org--tiny');
  const snap = join(folder, 'snapshots', MAIN);
  // what Python's hf_hub_download of three files leaves: no generation config, no tokenizer config, no .no_exist
  const pythonLike = () => {
    rmSync(folder, { recursive: true, force: true });
    mkdirSync(snap, { recursive: true });
    mkdirSync(join(folder, 'refs'));
    writeFileSync(join(folder, 'refs', 'main'), MAIN);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) writeFileSync(join(snap, f), tinyFiles()[f]);
  };
  try {
    pythonLike();
    const started: string[] = [];
    assert.equal(await resolveModelDir('org/tiny', { ...opts, onProgress: (p) => { if (p.phase === 'start') started.push(p.file); } }), snap);
    assert.deepEqual(started.sort(), ['generation_config.json', 'tokenizer_config.json']);
  } finally { await hub.close(); }
  pythonLike();
  assert.equal(await resolveModelDir('org/tiny', opts), snap, 'the Hub is gone: the cached model is used');
  rmSync(join(snap, 'tokenizer.json'));
  await assert.rejects(resolveModelDir('org/tiny', opts), /cannot reach/, 'not when it lacks a file a model needs');
});

test('a cut download is refused and leaves nothing behind; the next resolve downloads it whole', async () => {
  const { hub, opts } = await setup();
  try {
    hub.truncateBodies = 100;
    await assert.rejects(resolveModelDir('org/tiny', opts), /arrived with 100 bytes, expected \d+; resolve again/);
    hub.truncateBodies = null;
    const dir = await resolveModelDir('org/tiny', opts);
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))), tinyFiles()['model.safetensors']);
  } finally { await hub.close(); }
});

test('progress: a slow download reports its bytes as they arrive', async () => {
  const { hub, opts } = await setup();
  try {
    const size = tinyFiles()['model.safetensors'].byteLength;
    hub.slowChunks = Math.ceil(size / 8); // 8 chunks, 100 ms apart
    const seen: number[] = [];
    await resolveModelDir('org/tiny', { ...opts, onProgress: (p) => { if (p.file === 'model.safetensors' && p.phase === 'progress') seen.push(p.bytes); } });
    assert.ok(seen.some((b) => b > 0 && b < size), `bytes part way: ${seen}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), 'never backwards');
  } finally { await hub.close(); }
});

test('two resolves of one model at once download it once (the second waits, then finds it cached)', async () => {
  const { hub, opts } = await setup();
  try {
    hub.slowChunks = 64 * 1024;
    const [a, b] = await Promise.all([resolveModelDir('org/tiny', opts), resolveModelDir('org/tiny', opts)]);
    assert.equal(a, b);
    const gets = hub.requests.filter((r) => r.startsWith('GET ') && r.endsWith('/model.safetensors'));
    assert.equal(gets.length, 2, `one 1-byte probe and one download: ${gets.join(', ')}`);
    assert.equal(hub.requests.filter((r) => r.includes('/revision/')).length, 1, 'the second asks the Hub nothing');
    assert.deepEqual(new Uint8Array(readFileSync(join(a, 'model.safetensors'))), tinyFiles()['model.safetensors']);
  } finally { await hub.close(); }
});

test('an existing local directory named like a Hub id wins, without a request', async () => {
  const { hub, opts } = await setup();
  const cwd = process.cwd();
  const root = mkdtempSync(join(tmpdir(), 'llamatrain-hub-local-'));
  mkdirSync(join(root, 'org', 'tiny'), { recursive: true });
  try {
    process.chdir(root);
    assert.equal(await resolveModelDir('org/tiny', opts), 'org/tiny');
    assert.deepEqual(hub.requests, []);
  } finally { process.chdir(cwd); await hub.close(); }
});

test('Hub ids and cache directories as Python reads them', () => {
  assert.deepEqual(parseHubId('HuggingFaceTB/SmolLM2-135M'), { repo: 'HuggingFaceTB/SmolLM2-135M', revision: 'main' });
  assert.deepEqual(parseHubId('Qwen/Qwen3-0.6B@refs/pr/1'), { repo: 'Qwen/Qwen3-0.6B', revision: 'refs/pr/1' });
  for (const notAnId of ['runs', './org/name', '../org/name', 'a/b/c', '/abs/path', '~/models/x']) assert.equal(parseHubId(notAnId), null, notAnId);
  for (const bad of ['org--x/name', 'org/na..me', 'org/-name', 'org/name.', 'org/na me', 'org/name@', 'org/name@../../x', `org/${'x'.repeat(100)}`]) {
    assert.throws(() => parseHubId(bad), /not a valid Hugging Face Hub id|the revision after '@'/, bad);
  }
  assert.equal(hubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }), '/c');
  assert.equal(hubCacheDir({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' }), join('/h', 'hub'));
  assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), join('/x', 'huggingface', 'hub'));
  assert.match(hubCacheDir({}), /\.cache\/huggingface\/hub$/);
});
