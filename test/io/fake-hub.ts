// A stand-in for the Hugging Face Hub on 127.0.0.1: the endpoints @huggingface/hub calls to download a model —
// model info (/api/models/{repo}/revision/{rev}), the file tree (/api/models/{repo}/tree/{rev}), paths-info
// (POST /api/models/{repo}/paths-info/{rev}) and the files (/{repo}/resolve/{rev}/{file}, with a 1-byte range probe,
// ETag and X-Repo-Commit) — answered as the Hub answers them, with every request recorded. Tests never touch the
// real Hub.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** One commit of a repository: its files. */
export type Files = Record<string, Uint8Array>;
export interface FakeRepo {
  /** branch or tag → commit hash (40 hex) */
  refs: Record<string, string>;
  /** commit hash → the files at that commit */
  commits: Record<string, Files>;
  /** only a request with `Authorization: Bearer <token>` may read it; others get 401 GatedRepo, as the Hub answers */
  token?: string;
}

export interface FakeHub {
  url: string;
  /** "METHOD path" of every request, in order */
  requests: string[];
  repos: Map<string, FakeRepo>;
  /** answer this status (and X-Error-Code) to every request while set */
  failWith: { status: number; code?: string } | null;
  /** serve this many bytes of each full file body (a cut connection), when set */
  truncateBodies: number | null;
  /** send full file bodies in chunks of this many bytes, 100 ms apart (a slow connection), when set */
  slowChunks: number | null;
  close(): Promise<void>;
}

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** The git blob id of a file, as the Hub reports `oid`. */
export const gitOid = (b: Uint8Array) => sha1(Buffer.concat([Buffer.from(`blob ${b.byteLength}\0`), b]));
/** Files stored with Git LFS on the Hub (their etag, and the cache's blob name, is the sha256). */
export const isLfs = (name: string) => /\.(safetensors|bin|onnx|gguf|pth)$/.test(name);
/** A commit hash made from a label (any 40 hex digits would do). */
export const commitOf = (label: string) => sha1(new TextEncoder().encode(label));

function entry(name: string, b: Uint8Array, commit: string) {
  return {
    type: 'file', oid: gitOid(b), size: b.byteLength, path: name,
    ...(isLfs(name) ? { lfs: { oid: sha256(b), size: b.byteLength, pointerSize: 134 } } : {}),
    lastCommit: { id: commit, title: 'upload', date: '2026-01-01T00:00:00.000Z' },
  };
}

export async function startFakeHub(): Promise<FakeHub> {
  const hub: FakeHub = { url: '', requests: [], repos: new Map(), failWith: null, truncateBodies: null, slowChunks: null, close: async () => {} };
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, code: string | undefined, message: string) =>
    json(res, status, { error: message }, code ? { 'x-error-code': code } : {});

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const path = decodeURIComponent(u.pathname);
    hub.requests.push(`${req.method} ${path}`);
    let body = '';
    for await (const chunk of req) body += String(chunk);
    if (hub.failWith) return error(res, hub.failWith.status, hub.failWith.code, `failing with ${hub.failWith.status}`);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)$/.exec(path);
    const file = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const repoName = api?.[1] ?? file?.[1];
    const repo = repoName ? hub.repos.get(repoName) : undefined;
    if (!repo) return error(res, 404, 'RepoNotFound', 'Repository not found');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return error(res, 401, 'GatedRepo', `Access to model ${repoName} is restricted. You must have access to it and be authenticated to access it.`);
    }
    const rev = api?.[3] ?? file![2];
    const commit = repo.commits[rev] ? rev : repo.refs[rev];
    const files = commit ? repo.commits[commit] : undefined;
    if (!commit || !files) return error(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    if (api?.[2] === 'revision') return json(res, 200, { _id: 'x', id: repoName, sha: commit, private: false, gated: false, downloads: 0, likes: 0 });
    if (api?.[2] === 'tree') return json(res, 200, Object.entries(files).map(([n, b]) => entry(n, b, commit)));
    if (api?.[2] === 'paths-info') {
      const paths = (JSON.parse(body) as { paths: string[] }).paths;
      return json(res, 200, paths.filter((n) => files[n]).map((n) => entry(n, files[n], commit)));
    }
    const name = file![3];
    const b = files[name];
    if (!b) return error(res, 404, 'EntryNotFound', `${name} does not exist at ${commit}`);
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream', 'x-repo-commit': commit, etag: `"${isLfs(name) ? sha256(b) : gitOid(b)}"`,
      ...(isLfs(name) ? { 'x-linked-etag': `"${sha256(b)}"`, 'x-linked-size': String(b.byteLength) } : {}),
    };
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (range) {
      const [s, e] = [Number(range[1]), Math.min(Number(range[2]), b.byteLength - 1)];
      res.writeHead(206, { ...headers, 'content-range': `bytes ${s}-${e}/${b.byteLength}`, 'content-length': String(e - s + 1) });
      return res.end(b.subarray(s, e + 1));
    }
    const out = hub.truncateBodies === null ? b : b.subarray(0, hub.truncateBodies);
    res.writeHead(200, { ...headers, 'content-length': String(out.byteLength) });
    if (hub.slowChunks === null) return res.end(out);
    for (let i = 0; i < out.byteLength; i += hub.slowChunks) {
      res.write(out.subarray(i, i + hub.slowChunks));
      await new Promise((r) => setTimeout(r, 100));
    }
    res.end();
  };
  const server: Server = createServer((req, res) => { handle(req, res).catch((e) => { res.writeHead(500); res.end(String(e)); }); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return hub;
}
