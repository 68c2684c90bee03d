// Models by Hugging Face Hub id ("org/name", "org/name@revision"): found in the cache that Python's huggingface_hub
// uses, and downloaded into that same cache when missing. Node only (file system, network).
//
// The cache layout (what Python writes and reads):
//   <cache>/models--org--name/refs/<revision>            the commit hash the revision (branch, tag) points at
//   <cache>/models--org--name/snapshots/<commit>/<file>  a symlink into blobs/ (a copy where links are refused)
//   <cache>/models--org--name/blobs/<etag>               the bytes (an LFS file's etag is its sha256)
//   <cache>/models--org--name/.no_exist/<commit>/<file>  an empty file: <file> is known to be absent at <commit>
// Downloads go through @huggingface/hub (downloadFileToCacheDir writes that layout), loaded only when needed.

import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { describeFsError } from '../data/node-fs-errors.js';
import { InputError, LlamatrainError } from '../core/errors.js';

/** A Hub id taken apart: `repo` is "org/name", `revision` a branch, tag or 40-hex commit ("main" when not given). */
export interface HubId { repo: string; revision: string }

/** Where the Hub's files go and how they are fetched; every field defaults as in Python's huggingface_hub. */
export interface HubOptions {
  /** The cache directory: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** The Hub's address: $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** An access token (gated and private models): $HF_TOKEN, else the file $HF_HOME/token. */
  token?: string;
  /** Never touch the network: $HF_HUB_OFFLINE (1, true, yes, on). */
  offline?: boolean;
  /** Called as files download (one 'start' and one 'done' per file, 'progress' in between). */
  onProgress?: (p: HubProgress) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
  /** The environment to read the defaults from (default: process.env). */
  env?: Record<string, string | undefined>;
}

/** One file's download: `bytes` of `total` so far; `index` of `count` files this resolve downloads. */
export interface HubProgress { phase: 'start' | 'progress' | 'done'; repo: string; file: string; bytes: number; total: number; index: number; count: number }

/**
 * Why a model could not be had from the Hub. `kind`: 'not-found' (no such model, or no access to see it),
 * 'revision-not-found', 'gated' (gated or private: a token is missing or lacks access), 'offline' (HF_HUB_OFFLINE
 * and the cache lacks a file), 'no-weights' (the model has no safetensors weights), 'network' (the Hub could not be
 * reached, or answered an unexpected status).
 */
export class HubError extends LlamatrainError {
  constructor(message: string, readonly kind: 'not-found' | 'revision-not-found' | 'gated' | 'offline' | 'no-weights' | 'network',
              options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The files a model needs besides its weights; any of them may be absent from a model. */
export const HUB_MODEL_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json',
  'special_tokens_map.json', 'chat_template.jinja', 'vocab.json', 'merges.txt'] as const;
/** Without these a cached snapshot is not a usable model (the weights are checked apart). */
const REQUIRED_FILES = ['config.json', 'tokenizer.json'] as const;
const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';
const COMMIT = /^[0-9a-f]{40}$/;
const DEFAULT_ENDPOINT = 'https://huggingface.co';

const truthy = (v: string | undefined) => v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
const expandHome = (p: string) => (p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p);
const envOf = (o: HubOptions) => o.env ?? process.env;
/** Python's HF_HOME: $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
const hfHome = (env: Record<string, string | undefined>) =>
  expandHome(env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface'));

/** The Hub cache directory, as Python's huggingface_hub chooses it. */
export function hubCacheDir(env: Record<string, string | undefined> = process.env): string {
  const dir = env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE;
  return dir ? expandHome(dir) : join(hfHome(env), 'hub');
}

/** The access token, as Python finds it: $HF_TOKEN (or the older $HUGGING_FACE_HUB_TOKEN), else the token file. */
export function hubToken(env: Record<string, string | undefined> = process.env): string | undefined {
  const t = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN;
  if (t?.trim()) return t.trim();
  const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(hfHome(env), 'token');
  try { return readFileSync(file, 'utf8').trim() || undefined; } catch { return undefined; }
}

/**
 * "org/name" or "org/name@revision" taken apart, or null when `s` does not look like a Hub id (a path such as
 * "./x", "a/b/c" or "x" is not one). Throws InputError when it looks like one but breaks the Hub's naming rules.
 */
export function parseHubId(s: string): HubId | null {
  const at = s.indexOf('@');
  const repo = at < 0 ? s : s.slice(0, at);
  const revision = at < 0 ? 'main' : s.slice(at + 1);
  if (!/^[^/\\]+\/[^/\\]+$/.test(repo) || repo.startsWith('.') || repo.startsWith('~')) return null;
  // the Hub's rules (Python's validate_repo_id): letters, digits, '-', '_', '.'; no '--' or '..'; ≤ 96 characters
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo) || /--|\.\./.test(repo) || /(^|\/)[-.]|[-.]($|\/)/.test(repo) || repo.length > 96) {
    throw new InputError(`'${s}' is not a valid Hugging Face Hub id: expected org/name (letters, digits, '-', '_', '.'; ` +
      `no '--' or '..'; not starting or ending with '-' or '.'; at most 96 characters), optionally @revision`);
  }
  if (!revision || revision.split('/').some((p) => p === '' || p === '.' || p === '..') || /[\\\0]/.test(revision)) {
    throw new InputError(`'${s}': the revision after '@' must be a branch, tag or commit hash (e.g. ${repo}@main)`);
  }
  return { repo, revision };
}

/** The folder of a model in the cache: models--org--name. */
export function hubRepoFolder(repo: string, cacheDir: string): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

/** What a snapshot directory lacks to be a usable model: file names relative to it ([] = complete). */
function missingInSnapshot(snap: string, noExist: string | null): string[] {
  const missing: string[] = REQUIRED_FILES.filter((f) => !existsSync(join(snap, f)));
  const indexPath = join(snap, INDEX);
  if (existsSync(indexPath)) {
    missing.push(...shardsOf(indexPath).filter((f) => !existsSync(join(snap, f))));
  } else if (!existsSync(join(snap, SINGLE))) {
    // an index that is known not to exist leaves model.safetensors as the only way; otherwise either would do
    missing.push(noExist && existsSync(join(noExist, INDEX)) ? SINGLE : `${SINGLE} (or ${INDEX} and its shards)`);
  }
  return missing;
}

/** The shard files a model.safetensors.index.json names, each once. */
function shardsOf(indexPath: string): string[] {
  let map: unknown;
  try { map = (JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown }).weight_map; } catch (e) {
    throw new InputError(`${indexPath}: not valid JSON (${(e as Error).message}); delete it from the cache and resolve again to download it anew`, { source: indexPath });
  }
  if (typeof map !== 'object' || map === null || Array.isArray(map) || !Object.values(map).every((v) => typeof v === 'string')) {
    throw new InputError(`${indexPath}: expected a "weight_map" object of tensor name → shard file`, { source: indexPath });
  }
  const shards = [...new Set(Object.values(map as Record<string, string>))];
  for (const f of shards) {
    if (f.includes('/') || f.includes('\\') || f === '.' || f === '..') {
      throw new InputError(`${indexPath}: shard '${f}' is not a file name in the model's directory`, { source: indexPath });
    }
  }
  return shards;
}

/**
 * The commit a revision points at in the cache, or null: a 40-hex revision is a commit; otherwise refs/<revision>.
 */
function cachedCommit(folder: string, revision: string): string | null {
  if (COMMIT.test(revision)) return revision;
  try {
    const c = readFileSync(join(folder, 'refs', revision), 'utf8').trim();
    return COMMIT.test(c) ? c : null;
  } catch { return null; }
}

/**
 * The local directory of a model: `idOrPath` itself when it exists (a local path always wins), else the snapshot
 * directory of the Hub id `org/name[@revision]` in the Hugging Face cache, downloaded there first when the cache
 * lacks any of the model's files (config.json, the safetensors weights, tokenizer and generation files; never
 * *.bin, *.pth, *.onnx, *.gguf). A complete cached snapshot is used without any request.
 * `loadPretrained(await resolveModelDir('org/name'))` loads a model from the Hub.
 */
export async function resolveModelDir(idOrPath: string, opts: HubOptions = {}): Promise<string> {
  if (existsSync(idOrPath)) return idOrPath;
  const id = parseHubId(idOrPath);
  if (!id) throw new InputError(`'${idOrPath}': no such file or directory, and not a Hugging Face Hub id (org/name or org/name@revision)`);
  const env = envOf(opts);
  const cacheDir = opts.cacheDir ?? hubCacheDir(env);
  const folder = hubRepoFolder(id.repo, cacheDir);
  const offline = opts.offline ?? truthy(env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE);
  const where = `${id.repo}${id.revision === 'main' ? '' : `@${id.revision}`}`;

  const cached = fromCache(id, folder, cacheDir, where, offline);
  if (typeof cached === 'string') return cached;
  // one download of a model at a time among llamatrain processes (Python's locks are its own); whoever waited
  // finds the files there afterwards
  const lockPath = join(cacheDir, '.locks', `${basename(folder)}.llamatrain.lock`);
  let release: () => Promise<void>;
  try {
    mkdirSync(dirname(lockPath), { recursive: true });
    release = await lockfile.lock(folder, {
      lockfilePath: lockPath, realpath: false,
      stale: 30_000, retries: { retries: 100_000, minTimeout: 500, maxTimeout: 1000 }, // a dead holder's lock goes stale
      onCompromised: () => { /* the lock only avoids a second download; losing it costs at most that */ },
    });
  } catch (e) {
    throw describeFsError(lockPath, e, `locking the Hugging Face cache ${cacheDir} to download ${where}; HF_HUB_CACHE chooses another cache directory`);
  }
  try {
    const now = fromCache(id, folder, cacheDir, where, offline);
    if (typeof now === 'string') return now;
    try {
      return await downloadModel(id, folder, cacheDir, where, opts);
    } catch (e) {
      // as Python: when the Hub cannot be reached (or fails), a cached snapshot that holds a model is used
      if (now.usable && e instanceof HubError && e.kind === 'network') return now.usable;
      throw e;
    }
  } finally {
    await release().catch(() => {});
  }
}

/**
 * The cached snapshot when it can be used without a request; else `usable`, a cached snapshot that holds a model
 * though maybe not every file, or null. Offline, what the cache lacks is an error.
 */
function fromCache(id: HubId, folder: string, cacheDir: string, where: string, offline: boolean): string | { usable: string | null } {
  const commit = cachedCommit(folder, id.revision);
  let usable: string | null = null;
  if (commit && existsSync(join(folder, 'snapshots', commit))) {
    const snap = join(folder, 'snapshots', commit);
    const noExist = join(folder, '.no_exist', commit);
    const missing = missingInSnapshot(snap, noExist);
    // online, every file a model may have must be there or known absent; offline, the required ones suffice
    const unknown = HUB_MODEL_FILES.filter((f) => !existsSync(join(snap, f)) && !existsSync(join(noExist, f)));
    if (missing.length === 0 && (offline || unknown.length === 0)) return snap;
    if (missing.length === 0) usable = snap;
    if (offline) {
      throw new HubError(`${where}: the Hugging Face cache lacks ${missing.map((f) => `'${f}'`).join(', ')} in ${snap}, and HF_HUB_OFFLINE ` +
        `forbids downloading. Unset HF_HUB_OFFLINE to download the missing files, or give a local model directory.`, 'offline');
    }
  } else if (offline) {
    const what = COMMIT.test(id.revision) ? `snapshots/${id.revision}` : `refs/${id.revision}`;
    throw new HubError(`${where}: not in the Hugging Face cache (no ${join(folder, what)}: the revision '${id.revision}' was never downloaded ` +
      `into ${cacheDir}), and HF_HUB_OFFLINE forbids downloading. Unset HF_HUB_OFFLINE to download it (or run Python's ` +
      `'hf download ${id.repo}${id.revision === 'main' ? '' : ` --revision ${id.revision}`}'), set HF_HUB_CACHE/HF_HOME to the cache ` +
      'that holds it, or give a local model directory.', 'offline');
  }
  return { usable };
}

/** A file of a repository as the Hub lists it. */
interface HubEntry { type: string; path: string; size: number; oid?: string; xetHash?: string; lfs?: { oid?: string; size?: number } }

async function downloadModel(id: HubId, folder: string, cacheDir: string, where: string, opts: HubOptions): Promise<string> {
  const env = envOf(opts);
  const endpoint = (opts.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, '');
  const token = opts.token ?? hubToken(env);
  if (token !== undefined && !token.startsWith('hf_')) {
    throw new InputError(`the Hugging Face token (HF_TOKEN or ${join(hfHome(env), 'token')}) does not start with 'hf_': ` +
      'give an access token from https://huggingface.co/settings/tokens');
  }
  const hub = await import('@huggingface/hub');
  // the status and X-Error-Code of the last failed response: HubApiError keeps the status only
  let failed: { status: number; code: string } | null = null;
  const baseFetch = opts.fetch ?? fetch;
  const tracked = (async (input: string | URL | Request, init?: RequestInit) => {
    let res: Response;
    try { res = await baseFetch(input, init); } catch (e) {
      throw new HubError(`cannot reach ${endpoint} (${describeCause(e)}) to download ${where}: check the connection or HF_ENDPOINT, ` +
        `or set HF_HUB_OFFLINE=1 to use only what the cache (${cacheDir}) holds`, 'network', { cause: e });
    }
    if (!res.ok) failed = { status: res.status, code: res.headers.get('x-error-code') ?? '' };
    return res;
  }) as typeof fetch;
  const common = { hubUrl: endpoint, fetch: tracked, ...(token ? { accessToken: token } : {}) };
  const call = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    failed = null;
    try { return await f(); } catch (e) {
      if (e instanceof LlamatrainError) throw e;
      throw explain(e, failed, { what, where, repo: id.repo, revision: id.revision, endpoint, hasToken: !!token, env });
    }
  };

  const info = await call('model info', () => hub.modelInfo({ name: id.repo, revision: id.revision, additionalFields: ['sha'], ...common }));
  const commit = (info as { sha?: unknown }).sha;
  if (typeof commit !== 'string' || !COMMIT.test(commit)) {
    throw new HubError(`${endpoint}: the model info of ${where} has no commit hash ('sha'): is HF_ENDPOINT a Hugging Face Hub?`, 'network');
  }
  if (id.revision !== commit) { // as Python: the ref records which commit the revision meant when it was downloaded
    mkdirSync(dirname(join(folder, 'refs', id.revision)), { recursive: true });
    writeFileSync(join(folder, 'refs', id.revision), commit);
  }
  const snap = join(folder, 'snapshots', commit);
  const noExist = join(folder, '.no_exist', commit);
  const listing = new Map<string, HubEntry>();
  await call('file list', async () => {
    for await (const e of hub.listFiles({ repo: id.repo, revision: commit, ...common })) listing.set(e.path, e as HubEntry);
  });

  const fetchFiles = async (names: string[]) => {
    const todo = names.filter((f) => !existsSync(join(snap, f)));
    for (let i = 0; i < todo.length; i++) {
      const file = todo[i];
      const entry = listing.get(file)!;
      const total = entry.lfs?.size ?? entry.size;
      const p = { repo: id.repo, file, total, index: i + 1, count: todo.length };
      let bytes = 0;
      opts.onProgress?.({ phase: 'start', bytes, ...p });
      // progress from the size of the blob being written (the library writes <blob>.incomplete, then renames it):
      // the same for a plain download and a Xet one; the blob is named as the library names it
      const incomplete = join(folder, 'blobs', `${entry.lfs?.oid ?? entry.xetHash ?? entry.oid}.incomplete`);
      const poll = opts.onProgress && setInterval(() => {
        let n = bytes;
        try { n = statSync(incomplete).size; } catch { /* not started yet, or renamed: done soon */ }
        if (n !== bytes) opts.onProgress!({ phase: 'progress', bytes: (bytes = n), ...p });
      }, 200);
      // the library reports each download with console.debug, which is stdout in Node: stdout may carry a
      // command's output (generate's text), so it is silenced while the library runs
      const debug = console.debug;
      console.debug = () => {};
      let path: string;
      try {
        path = await call(`'${file}'`, () => hub.downloadFileToCacheDir({ repo: id.repo, path: file, revision: commit, cacheDir, ...common }));
      } finally {
        console.debug = debug;
        if (poll) clearInterval(poll);
      }
      const got = statSync(path).size;
      if (got !== total) { // a cut connection: drop the link and the blob, so the next resolve downloads it again
        const blob = join(dirname(path), readLinkTarget(path));
        rmSync(path, { force: true });
        if (blob !== path) rmSync(blob, { force: true });
        throw new HubError(`${where}: '${file}' arrived with ${got} bytes, expected ${total}; resolve again to download it anew`, 'network');
      }
      opts.onProgress?.({ phase: 'done', bytes: got, ...p });
    }
  };

  const present = HUB_MODEL_FILES.filter((f) => listing.has(f));
  let weights: string[];
  if (listing.has(INDEX)) {
    await fetchFiles([INDEX]);
    weights = shardsOf(join(snap, INDEX));
    const absent = weights.filter((f) => !listing.has(f));
    if (absent.length > 0) {
      throw new HubError(`${where}: ${INDEX} names shard${absent.length > 1 ? 's' : ''} ${absent.map((f) => `'${f}'`).join(', ')} that the model ` +
        'does not have (at commit ' + commit + '); the model is broken there: try another revision (org/name@revision)', 'no-weights');
    }
  } else if (listing.has(SINGLE)) {
    weights = [SINGLE];
  } else {
    const other = [...listing.keys()].filter((f) => /\.(bin|pth|pt|ckpt|gguf|onnx|safetensors)$/.test(f));
    throw new HubError(`${where}: no ${SINGLE} or ${INDEX} in the model (at commit ${commit})` +
      (other.length ? `; it has ${other.slice(0, 5).join(', ')}${other.length > 5 ? ', …' : ''}` : '') +
      '. llamatrain reads safetensors weights only (pickled .bin/.pth files can run code when loaded): use a model that ships ' +
      'model.safetensors, or convert it with transformers (save_pretrained writes safetensors)', 'no-weights');
  }
  if (!present.includes('config.json')) {
    throw new HubError(`${where}: the model has no config.json (at commit ${commit}); it is not a transformers checkpoint`, 'no-weights');
  }
  await fetchFiles([...present, ...weights]);
  // as Python: an empty file per file known to be absent at this commit, so the next resolve needs no request
  for (const f of [...HUB_MODEL_FILES, INDEX].filter((x) => !listing.has(x))) {
    mkdirSync(noExist, { recursive: true });
    writeFileSync(join(noExist, f), '');
  }
  return snap;
}

function readLinkTarget(path: string): string {
  try { return readlinkSync(path); } catch { return '.'; } // a copy, not a link: the file is its own blob
}

function describeCause(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  return c?.code ?? c?.message ?? (e as Error).message ?? String(e);
}

/** A library error turned into a message that says what happened and what to do. */
function explain(e: unknown, failed: { status: number; code: string } | null,
                 c: { what: string; where: string; repo: string; revision: string; endpoint: string; hasToken: boolean; env: Record<string, string | undefined> }): Error {
  const status = failed?.status ?? (e as { statusCode?: number }).statusCode;
  const code = failed?.code ?? '';
  const page = `${c.endpoint}/${c.repo}`;
  const tokenHint = `give an access token: HF_TOKEN=hf_… in the environment, or 'hf auth login' ('huggingface-cli login' in older versions; it writes ${join(hfHome(c.env), 'token')})`;
  if (code === 'RepoNotFound' || code === 'RepositoryNotFound' || (status === 404 && c.what === 'model info' && code !== 'RevisionNotFound')) {
    return new HubError(`${c.where}: no such model on ${c.endpoint} (HTTP ${status}), and no local directory of that name. ` +
      `Check the id at ${page}` + (c.hasToken ? '' : `; if the model is private, ${tokenHint}`), 'not-found', { cause: e });
  }
  if (code === 'RevisionNotFound' || (status === 404 && c.what === 'file list')) {
    return new HubError(`${c.where}: ${c.repo} has no revision '${c.revision}' (HTTP ${status}); see its branches and tags at ${page}/tree/main`, 'revision-not-found', { cause: e });
  }
  if (code === 'GatedRepo' || status === 401 || status === 403) {
    return new HubError(`${c.where}: the model is gated or private (HTTP ${status}). ` + (c.hasToken
      ? `The token given has no access to it: accept its terms at ${page} with the account of the token, or use a token of an account that has access`
      : `Accept its terms at ${page}, then ${tokenHint}`), 'gated', { cause: e });
  }
  return new HubError(`${c.where}: downloading the ${c.what} from ${c.endpoint} failed` + (status ? ` (HTTP ${status})` : '') +
    `: ${(e as Error).message ?? String(e)}`, 'network', { cause: e });
}
