// `llamatrain playground`: serves the browser playground — the static folder playground/dist that
// tools/build-playground.mjs builds as part of `npm run build` and of the published package — with the
// cross-origin isolation headers (COOP/COEP) that SharedArrayBuffer, and so the wasm backend's threads, need.
// Node only. The page itself is in playground/ (its own bundle); nothing here knows about it beyond its folder.

import { spawn } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import { isIP } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Schema, UsageError, helpText, parseCommandLine } from './options.js';

export const playgroundSchema = {
  port: { type: 'int', default: 8080, min: 0, max: 65535, help: 'port to listen on; the default moves on to the next free port when 8080 is taken (0 = any free port)' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (browsers isolate only localhost or https pages: threads need one of them)' },
  open: { type: 'boolean', default: false, help: 'open the page in the default browser' },
  dir: { type: 'string', default: '', help: "a built playground folder to serve instead of the package's own" },
} satisfies Schema;

export const playgroundHelp = helpText('playground', 'Serve the browser playground: train a LLaMA in a browser tab, with live curves, samples, ' +
  'the loss opened up token by token, and Hugging Face export/import.', playgroundSchema, 'llamatrain playground [--port N] [--open]');

/** The package's built page: <package>/playground/dist (this file is <package>/dist/src/cli/playground.js). */
export function defaultPlaygroundDir(): string {
  return fileURLToPath(new URL('../../../playground/dist/', import.meta.url));
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.gz': 'application/gzip', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8',
};

/** Headers on every response: cross-origin isolation (threads), and no caching of a page that is rebuilt in place. */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
} as const;

export interface PlaygroundServer { url: string; port: number; server: Server; close(): Promise<void> }

/** Starts the static server for `dir` on host:port (port 0: any free one); resolves once it listens. */
export async function startPlaygroundServer(opts: {
  dir?: string; port?: number; host?: string; tryNextPorts?: number;
  /** Send the cross-origin isolation headers (default true; false shows how the page runs on a host without them). */
  isolation?: boolean;
} = {}): Promise<PlaygroundServer> {
  const dir = resolve(opts.dir || defaultPlaygroundDir());
  if (opts.dir && existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new UsageError(`--dir ${opts.dir}: is a file, not a folder; give the folder that holds the built page (index.html), e.g. playground/dist`);
  }
  if (!existsSync(join(dir, 'index.html'))) {
    throw new UsageError(`the playground is not built: ${join(dir, 'index.html')} is missing. Run \`npm run build:playground\` ` +
      '(after `npm run build`) in a clone of llamatrain, or reinstall the package');
  }
  const host = opts.host ?? '127.0.0.1';
  // a dotted quad that is no IPv4 address (999.1.1.1) would go to DNS as a host name: refuse it without a lookup
  if (/^[\d.]+$/.test(host) && isIP(host) === 0) {
    throw new UsageError(`--host ${host}: not an IP address (each of the four numbers is 0–255); use 127.0.0.1, 0.0.0.0, localhost or an address of this machine`);
  }
  const realDir = realpathSync(dir); // links inside the folder are followed only to files inside it
  const server = createServer(async (req, res) => {
    const headers = { ...(opts.isolation === false ? {} : ISOLATION_HEADERS), 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end(); return; }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400, headers).end('bad request path');
      return;
    }
    const file = normalize(join(dir, path.endsWith('/') ? `${path}index.html` : path));
    if (file !== dir && !file.startsWith(dir + sep)) { res.writeHead(403, headers).end('forbidden'); return; }
    try {
      const real = await realpath(file);
      if (real !== realDir && !real.startsWith(realDir + sep)) { res.writeHead(403, headers).end('forbidden'); return; }
      const st = await stat(real);
      if (!st.isFile()) throw new Error('not a file');
      const body = await readFile(real);
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${path}`);
    }
  });
  let port = opts.port ?? 8080;
  for (let tries = opts.tryNextPorts ?? 0; ; tries--, port++) {
    try {
      await new Promise<void>((ok, fail) => {
        server.once('error', fail);
        server.listen(port, host, () => { server.off('error', fail); ok(); });
      });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE' && tries > 0) continue;
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') throw new UsageError(`port ${port} is in use; pick another with --port N (or --port 0 for any free one)`);
      if (code === 'EADDRNOTAVAIL') {
        throw new UsageError(`--host ${host}: this machine has no such address to listen on; use 127.0.0.1 (this machine only) or 0.0.0.0 (every network interface)`);
      }
      if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NONAME') {
        throw new UsageError(`--host ${host}: not an IP address, and no such host name resolves; use 127.0.0.1, 0.0.0.0, localhost or an address of this machine`);
      }
      if (code === 'EACCES' || code === 'EPERM') {
        throw new UsageError(`--port ${port}: permission denied to listen there (ports below 1024 need privileges); use a port ≥ 1024, e.g. --port 8080`);
      }
      throw e;
    }
  }
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${actual}/`, port: actual, server,
    close: () => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }),
  };
}

/** Opens `url` in the system's browser; says so when it cannot (the URL is printed either way). */
function openBrowser(url: string, log: (s: string) => void): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', () => log(`llamatrain playground: could not open a browser (${cmd} failed); open ${url} yourself`));
  child.unref();
}

/** The command: serves until Ctrl+C (or SIGTERM). */
export async function runPlayground(argv: string[], log: (s: string) => void): Promise<void> {
  const { values: o } = parseCommandLine(playgroundSchema, argv);
  const portGiven = argv.some((a) => a === '--port' || a.startsWith('--port='));
  const pg = await startPlaygroundServer({ dir: o.dir, port: o.port, host: o.host, tryNextPorts: portGiven ? 0 : 20 });
  log(`llamatrain playground: ${pg.url}  (serving ${o.dir || defaultPlaygroundDir()} with cross-origin isolation headers; Ctrl+C stops it)`);
  if (o.open) openBrowser(pg.url, log);
  await new Promise<void>((done) => {
    const stop = () => { process.off('SIGINT', stop); process.off('SIGTERM', stop); pg.close().then(done); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
